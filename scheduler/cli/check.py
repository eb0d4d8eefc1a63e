"""``scheduler check``: validate a config file without starting, and show what it would run.

Exit status follows sysexits(3): 0 when the file is good, ``EX_CONFIG`` (78) with one line per
problem otherwise, so an operator (or ``ExecStartPre=``) sees every mistake in one go. A good
file's static jobs are listed with their next runs, and its maintenance windows with their next
openings. With
``--state DIR`` the state directory is verified too, read only, exactly as a start would read it:
damage is reported naming the file and byte offset with ``EX_DATAERR`` (65), the code
``scheduler run`` exits with on the same directory. ``--state`` alone (no ``-c``) checks only the
state directory. A directory in use by a running scheduler is still checked (read only, it
never takes the lock) and the output says which pid holds it. With ``--connect`` a config with
``[cluster]`` is also tried for real: the database must answer and its schema must be at the
version this scheduler knows.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from scheduler.cli.next import upcoming
from scheduler.cli.problems import problem_text
from scheduler.clock import SystemClock, to_datetime
from scheduler.config.load import load_config
from scheduler.durations import format_duration
from scheduler.errors import ConfigError, CorruptState, PersistenceError
from scheduler.i18n import _
from scheduler.jobspec import JobSpec
from scheduler.maintenance import WindowSpec, openings
from scheduler.model import Schedule
from scheduler.persistence.recovery import state_error
from scheduler.persistence.statelock import holder

EX_CONFIG = 78
EX_DATAERR = 65
PREVIEW_RUNS = 5


def check_command(config_path: str | None, *, state: str | None, connect: bool = False) -> int:
    """Check the config file, the state directory, or both (see the module docstring).

    ``config_path``: print ``ok: FILE`` and each static job's next runs, or the problems
    (exit 78). ``connect``: then reach the ``[cluster]`` database and check its schema
    version (exit 78 when that fails). ``state``: then verify that state directory; exit 65
    on damage.
    """
    if config_path is not None:
        code = check_config(config_path)
        if code == 0 and connect:
            code = check_connection(config_path)
        if code != 0:
            return code
    return 0 if state is None else check_state(Path(state))


def check_connection(config_path: str) -> int:
    """``--connect``: ``ok: database HOST:PORT/DB schema S version N`` (0), or one line saying
    why not (78): no ``[cluster]``, the database unreachable, the schema missing or of another
    version (naming the command to run). The password is never printed."""
    config = load_config(config_path)  # checked just before: it loads
    try:
        from scheduler.cluster.cli import connect_check
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("psycopg", "psycopg_pool"):
            raise
        needs = _("{path}: --connect needs the PostgreSQL driver: pip install 'scheduler[cluster]'")
        print(needs.format(path=config_path))
        return EX_CONFIG
    return connect_check(config, config_path, environ=os.environ, problem_text=problem_text)


def check_config(config_path: str) -> int:
    """Print ``ok: FILE``, each static job's next runs and each maintenance window's next
    openings (exit 0), or the problems (exit 78)."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem_text(problem))
        return EX_CONFIG
    print(_("ok: {path}").format(path=config_path))
    now = to_datetime(SystemClock().time()).replace(microsecond=0)  # whole seconds read better
    for job in config.jobs:
        said = _("{name}: {schedule} in {zone}, task {task}")
        schedule = describe_schedule(job.schedule)
        print(said.format(name=job.name, schedule=schedule, zone=job.timezone, task=job.task))
        for line in preview_lines(job, now):
            print(f"  {line}")
    for window in config.maintenance:
        tasks = ", ".join(window.tasks) if window.tasks else _("every task")
        said = _("maintenance {name}: {rule} for {duration} in {zone}, {tasks}")
        length = format_duration(window.duration)
        zone, rule = window.timezone, window.rule
        print(said.format(name=window.name, rule=rule, duration=length, zone=zone, tasks=tasks))
        for line in window_lines(window, now):
            print(f"  {line}")
    return 0


def check_state(directory: Path) -> int:
    """Verify a state directory without writing to it: 0, 65 on damage, 78 if unusable."""
    in_use = _report_holder(directory)
    error = state_error(directory)
    if error is not None and in_use:
        # The live scheduler may have rotated or removed a file between our listing and our
        # read (snapshot cleanup): what is really damaged is still damaged on a second read.
        error = state_error(directory)
    if error is None:
        print(_("ok: state {directory}").format(directory=directory))
        return 0
    print(error.message)
    return EX_DATAERR if isinstance(error, CorruptState) else EX_CONFIG


def _report_holder(directory: Path) -> bool:
    """Say whether a running scheduler holds ``directory``; True when one does."""
    try:
        in_use, pid = holder(directory)
    except PersistenceError:
        return False  # the lock file cannot be read: the state check says what is wrong
    if in_use:
        who = f"pid {pid}" if pid is not None else _("a process still starting")
        said = _("state {directory} is in use by a running scheduler ({who}): checked read-only")
        print(said.format(directory=directory, who=who))
    return in_use


def preview_lines(job: JobSpec, now: datetime) -> list[str]:
    """The job's next runs after ``now`` as local ISO 8601 times with their offsets."""
    trigger = job.trigger(now.timestamp())
    runs = upcoming(trigger, now, PREVIEW_RUNS)
    return [run.isoformat() for run in runs] or [_("(no upcoming runs)")]


def window_lines(window: WindowSpec, now: datetime) -> list[str]:
    """A window's next openings from ``now`` (one open now first) as ``START to END``, local
    ISO 8601 times with their offsets."""
    zone = ZoneInfo(window.timezone)
    spans = openings(window, now.timestamp(), PREVIEW_RUNS)
    lines = [
        _("{start} to {end}").format(
            start=datetime.fromtimestamp(span.start, zone).isoformat(),
            end=datetime.fromtimestamp(span.end, zone).isoformat(),
        )
        for span in spans
    ]
    return lines or [_("(no upcoming openings)")]


def describe_schedule(schedule: Schedule) -> str:
    """A one-line summary of a schedule, as a user would write it."""
    if schedule.cron is not None:
        return f"cron {schedule.cron!r}"
    if schedule.every is not None:
        return _("every {duration}").format(duration=format_duration(schedule.every))
    if schedule.repeat is not None:
        return _("repeat {freq}").format(freq=schedule.repeat.freq)
    if schedule.rrule is not None:
        return f"rrule {schedule.rrule!r}"
    if schedule.at is not None:
        return _("at {time}").format(time=schedule.at)
    if schedule.delay is not None:
        return _("after {duration}").format(duration=format_duration(schedule.delay))
    return _("immediately")
