"""``scheduler check``: validate a config file without starting, and show what it would run.

Exit status follows sysexits(3): 0 when the file is good, ``EX_CONFIG`` (78) with one line per
problem otherwise, so an operator (or ``ExecStartPre=``) sees every mistake in one go. With
``--state DIR`` the state directory is verified too, read only, exactly as a start would read it:
damage is reported naming the file and byte offset with ``EX_DATAERR`` (65), the code
``scheduler run`` exits with on the same directory.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from scheduler.clock import SystemClock, to_datetime
from scheduler.config import StaticJob, load_config
from scheduler.durations import format_duration
from scheduler.errors import ConfigError, CorruptState
from scheduler.model import Schedule
from scheduler.persistence.recovery import state_error
from scheduler.preview import upcoming
from scheduler.schedules import load_zone
from scheduler.triggers import compile_schedule

EX_CONFIG = 78
EX_DATAERR = 65
PREVIEW_RUNS = 5


def check_command(config_path: str, *, state: str | None) -> int:
    """Print ``ok: FILE`` and each static job's next runs (exit 0), or the problems (exit 78).

    ``state``: also verify that state directory (see the module docstring); exit 65 on damage.
    """
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return EX_CONFIG
    print(f"ok: {config_path}")
    now = to_datetime(SystemClock().time()).replace(microsecond=0)  # whole seconds read better
    for job in config.jobs:
        print(f"{job.name}: {describe_schedule(job.schedule)} in {job.timezone}, task {job.task}")
        for line in preview_lines(job, now):
            print(f"  {line}")
    return 0 if state is None else check_state(Path(state))


def check_state(directory: Path) -> int:
    """Verify a state directory without writing to it: 0, 65 on damage, 78 if unusable."""
    error = state_error(directory)
    if error is None:
        print(f"ok: state {directory}")
        return 0
    print(error.message)
    return EX_DATAERR if isinstance(error, CorruptState) else EX_CONFIG


def preview_lines(job: StaticJob, now: datetime) -> list[str]:
    """The job's next runs after ``now`` as local ISO 8601 times with their offsets."""
    trigger = compile_schedule(job.schedule, load_zone(job.timezone), created=now)
    runs = upcoming(trigger, now, PREVIEW_RUNS)
    return [run.isoformat() for run in runs] or ["(no upcoming runs)"]


def describe_schedule(schedule: Schedule) -> str:
    """A one-line summary of a schedule, as a user would write it."""
    if schedule.cron is not None:
        return f"cron {schedule.cron!r}"
    if schedule.every is not None:
        return f"every {format_duration(schedule.every)}"
    if schedule.repeat is not None:
        return f"repeat {schedule.repeat.freq}"
    if schedule.rrule is not None:
        return f"rrule {schedule.rrule!r}"
    if schedule.at is not None:
        return f"at {schedule.at}"
    if schedule.delay is not None:
        return f"after {format_duration(schedule.delay)}"
    return "immediately"
