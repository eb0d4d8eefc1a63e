"""One parser for a job's input: the HTTP API's camelCase JSON and config's snake_case [[jobs]].

Both callers go through :func:`validate_job_input`, so a job means the same whichever way it
arrives. The policy:

- Keys are checked against the caller's spelling (``workflowId`` or ``workflow_id``); an unknown
  key is an error naming it, with a suggestion when it is the other style's spelling or a near miss
  (for a few keys only, whatever a client sends: see :mod:`scheduler.checks`).
- A payload must be storable: nested at most 64 levels, integers of at most 64 bits
  (:func:`~scheduler.checks.expect_payload`).
- Every problem is an :class:`~scheduler.errors.InvalidInput` whose ``field`` is the key path in
  the caller's style (``retry.maxDelay``, ``jobs[2].retry.max_delay``) and whose message says what
  was expected and what was given. All problems of a job are collected, not just the first.
- camel style: the schedule is an object under ``schedule``, which may name its own ``timezone``;
  a different top-level ``timezone`` is an error rather than a silent pick. snake style (TOML):
  the schedule keys sit inline in the job's table.
- A key set to null is omitted, except where null means something (``misfire.grace``: catch
  up however late), so clients may send every key. A ``timeout`` left out (or null) is the
  task's when the job runs, else ``[retry] timeout``.
- Omitted policies come from :class:`JobDefaults` (config's [scheduler] and [retry]); a partial
  ``retry`` table overrides only the keys it names, so config defaults still apply to the rest.
- The schedule is compiled in the job's zone, so a schedule that cannot run is never stored;
  the spec keeps that compilation (:meth:`JobSpec.trigger`), so the job built from it need not
  compile it again.

The generic ``expect_*`` checkers live in :mod:`scheduler.checks`; they are re-exported here
for the modules that import them from this one.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from scheduler import schedules
from scheduler.checks import (
    Check,
    Style,
    camel,
    choice,
    expect_bool,
    expect_choice,
    expect_duration,
    expect_duration_or_zero,
    expect_fraction,
    expect_int,
    expect_payload,
    expect_str,
    expect_str_list,
    expect_str_map,
    expect_table,
    invalid,
    read_keys,
    unknown_key,
    unknown_keys,
)
from scheduler.clock import SystemClock, to_datetime
from scheduler.errors import InvalidInput, UnknownTask, describe
from scheduler.model import (
    IMMEDIATE,
    Backoff,
    Coalesce,
    MisfirePolicy,
    OnCrash,
    Overlap,
    Policy,
    Priority,
    RetryPolicy,
    Schedule,
)
from scheduler.schedules import load_zone, parse_schedule
from scheduler.triggers import Trigger, compile_schedule

__all__ = [  # the checkers are re-exported for the modules that import them from here
    "RETRY_CHECKS",
    "SCHEDULE_KEYS",
    "Check",
    "JobDefaults",
    "JobSpec",
    "Style",
    "check_retry_table",
    "choice",
    "expect_bool",
    "expect_choice",
    "expect_duration",
    "expect_duration_or_zero",
    "expect_fraction",
    "expect_int",
    "expect_payload",
    "expect_str",
    "expect_str_list",
    "expect_str_map",
    "expect_table",
    "invalid",
    "merge_retry",
    "parse_job_input",
    "read_keys",
    "unknown_key",
    "unknown_keys",
    "validate_job_input",
]

# --- the job input ---------------------------------------------------------------------------


class JobDefaults(msgspec.Struct, frozen=True):
    """What a job gets for the keys it leaves out (config's [scheduler] and [retry]); config
    builds them (:func:`scheduler.config.job_defaults`). A run's time budget is not one of
    them: a job without ``timeout`` takes its task's, else ``[retry] timeout``, when it runs
    (so a task's own timeout wins over the general default)."""

    timezone: str = "Asia/Seoul"
    retry: RetryPolicy = RetryPolicy()


#: What ``dict.get`` gives for a key that is absent (None is a value a client may send).
_ABSENT: Final = object()

#: Where a spec keeps its compiled schedule: in its ``__dict__``, outside its fields.
_COMPILED: Final = "_compiled"


class JobSpec(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """A validated job input: everything the store needs to create the job, nothing it assigns.

    ``task`` is None only when the caller gave no task and passed no ``tasks`` to resolve the
    default (``workflow``) against. A config ``[[jobs]]`` entry is a spec with its ``name`` set.

    A spec from :func:`validate_job_input` also holds the trigger its schedule was compiled to
    when it was checked, with the creation instant it was compiled for (see :meth:`trigger`).
    That is a cache, not part of the value: it is kept outside the fields (msgspec's ``dict``
    option), so it is neither compared nor encoded, and :func:`msgspec.structs.replace` drops it.
    """

    task: str | None = None
    payload: Any = None
    schedule: Schedule = IMMEDIATE
    timezone: str
    priority: Priority = Priority.NORMAL
    policy: Policy = Policy()
    workflow_id: str | None = None
    workflow_name: str | None = None
    unique_key: str | None = None
    name: str | None = None

    def trigger(self, created: float) -> Trigger:
        """The schedule compiled in the job's zone for a job created at ``created`` (epoch
        seconds). The compilation that validated the spec is reused when it was for the same
        instant (to the microsecond); any other instant compiles it and keeps the result in
        its place. Raises :class:`~scheduler.errors.InvalidSchedule` as
        :func:`~scheduler.triggers.compile_schedule` does."""
        moment = datetime.fromtimestamp(created, UTC)
        kept: tuple[datetime, Trigger] | None = self.__dict__.get(_COMPILED)
        if kept is not None and kept[0] == moment:
            return kept[1]
        trigger = compile_schedule(self.schedule, load_zone(self.timezone), created=moment)
        _keep(self, moment, trigger)
        return trigger

    @property
    def compiled_for(self) -> float | None:
        """The creation instant (epoch seconds) of the compilation the spec holds, if any."""
        kept: tuple[datetime, Trigger] | None = self.__dict__.get(_COMPILED)
        return None if kept is None else kept[0].timestamp()

    def spec(self) -> JobSpec:
        """The spec itself. Deprecated: for code written when a ``[[jobs]]`` entry was a type
        of its own (``StaticJob``) whose ``spec()`` gave this."""
        return self


def _keep(spec: JobSpec, created: datetime, trigger: Trigger) -> None:
    """Remember ``trigger`` as ``spec``'s schedule compiled for a job created at ``created``."""
    spec.__dict__[_COMPILED] = (created, trigger)


RETRY_CHECKS: dict[str, Check] = {
    "max": lambda value, field: expect_int(value, field, minimum=0, maximum=1000),
    "backoff": choice(Backoff),
    "delay": expect_duration,
    "max_delay": expect_duration,
    "jitter": expect_fraction,
}
"""The keys of a retry table (config's [retry] and a job's ``retry``), snake_case."""

_MISFIRE_CHECKS: dict[str, Check] = {
    "grace": lambda value, field: None if value is None else expect_duration_or_zero(value, field),
    "coalesce": choice(Coalesce),
}

_STRING_KEYS = ("task", "workflow_id", "workflow_name", "unique_key", "name")
_POLICY_KEYS = ("retry", "max_retries", "timeout", "misfire", "overlap", "on_crash")
_OTHER_KEYS = ("payload", "timezone", "priority")
SCHEDULE_KEYS = tuple(key for key in schedules.SCHEDULE_KEYS if key != "timezone")
"""Schedule keys, written inline in a snake_case (config) job (its zone is the job's)."""


def check_retry_table(value: object, field: str, base: RetryPolicy, style: Style) -> RetryPolicy:
    """A (partial) retry table over ``base``; raises the first problem."""
    table = expect_table(value, field)
    problems: list[InvalidInput] = []
    changes = read_keys(table, RETRY_CHECKS, f"{field}.", problems, style=style)
    if problems:
        raise problems[0]
    return merge_retry(base, changes, prefix=f"{field}.", style=style)


def merge_retry(
    base: RetryPolicy, changes: Mapping[str, Any], *, prefix: str, style: Style
) -> RetryPolicy:
    """``base`` with checked ``changes``; a cap below the delay is a mistake, not a silent clamp."""
    policy = msgspec.structs.replace(base, **changes)
    if policy.max_delay < policy.delay:
        field = f"{prefix}{'maxDelay' if style == 'camel' else 'max_delay'}"
        raise InvalidInput(
            f"{field}: expected at least the retry delay ({policy.delay:g}s),"
            f" got {policy.max_delay:g}s",
            field=field,
        )
    return policy


def parse_job_input(
    raw: Mapping[str, Any],
    *,
    defaults: JobDefaults,
    style: Style,
    prefix: str = "",
    tasks: Collection[str] | None = None,
    created: datetime | None = None,
) -> JobSpec:
    """Validate one job's input; raise its first problem (see :func:`validate_job_input`)."""
    spec, problems = validate_job_input(
        raw, defaults=defaults, style=style, prefix=prefix, tasks=tasks, created=created
    )
    if problems:
        raise problems[0]
    assert spec is not None
    return spec


def validate_job_input(
    raw: object,
    *,
    defaults: JobDefaults,
    style: Style,
    prefix: str = "",
    tasks: Collection[str] | None = None,
    created: datetime | None = None,
) -> tuple[JobSpec | None, list[InvalidInput]]:
    """Validate one job's input and return ``(spec, [])`` or ``(None, problems)``.

    ``prefix`` is prepended to every field path (config passes ``"jobs[2]."``). With ``tasks``
    (names from config and the code registry) the task must be one of them, and a job without a
    task runs ``workflow`` when that exists. ``created`` (default: now) anchors the trial
    compilation of the schedule.
    """
    if not isinstance(raw, Mapping):
        where = prefix.removesuffix(".") or "job"
        return None, [invalid(where, "an object of job keys", raw)]
    reader = _JobReader(raw, style=style, prefix=prefix, defaults=defaults)
    spec = reader.read(tasks=tasks, created=created)
    return (None, reader.problems) if reader.problems else (spec, [])


def _cannot_fail(schedule: Schedule) -> bool:
    """Whether compiling ``schedule`` is certain to succeed: immediate, or a delay alone."""
    return schedule == IMMEDIATE or schedule == Schedule(delay=schedule.delay)


class _JobReader:
    """Reads one job's keys, collecting problems instead of stopping at the first."""

    def __init__(
        self, raw: Mapping[str, Any], *, style: Style, prefix: str, defaults: JobDefaults
    ) -> None:
        self.raw = raw
        self.style = style
        self.prefix = prefix
        self.defaults = defaults
        self.problems: list[InvalidInput] = []
        self.failed: set[str] = set()  # snake_case keys whose value was bad
        self.compiled: tuple[datetime, Trigger] | None = None  # the trial compilation

    def key(self, snake: str) -> str:
        return camel(snake) if self.style == "camel" else snake  # camel() is cached

    def field(self, snake: str) -> str:
        return f"{self.prefix}{self.key(snake)}"

    def get(self, snake: str, check: Check, default: Any = None, *, nullable: bool = False) -> Any:
        """The checked value of a key, or ``default`` when it is absent or bad.

        JSON ``null`` counts as absent unless the key gives it a meaning (``nullable``: a null
        ``timeout`` is no timeout), so clients may send every key and null the unused ones.
        """
        key = camel(snake) if self.style == "camel" else snake
        value = self.raw.get(key, _ABSENT)
        if value is _ABSENT or (value is None and not nullable):
            return default
        try:
            return check(value, self.field(snake))
        except InvalidInput as exc:
            self.problems.append(exc)
            self.failed.add(snake)
            return default

    def read(self, *, tasks: Collection[str] | None, created: datetime | None) -> JobSpec:
        self.reject_unknown_keys()
        strings = {key: self.get(key, expect_str) for key in _STRING_KEYS}
        schedule, timezone = self.schedule_and_zone(created)
        task = self.resolve_task(strings.pop("task"), tasks)
        spec = JobSpec(
            task=task,
            payload=self.get("payload", expect_payload),
            schedule=schedule,
            timezone=timezone,
            priority=self.get("priority", choice(Priority), Priority.NORMAL),
            policy=self.policy(),
            **strings,
        )
        if self.compiled is not None:
            _keep(spec, *self.compiled)
        return spec

    def reject_unknown_keys(self) -> None:
        self.problems.extend(unknown_keys(self.raw, _job_keys(self.style), self.prefix))

    def policy(self) -> Policy:
        retry = self.get(
            "retry",
            lambda v, f: check_retry_table(v, f, self.defaults.retry, self.style),
            self.defaults.retry,
        )
        max_retries = self.get("max_retries", RETRY_CHECKS["max"])
        retry_table = self.raw.get(self.key("retry"))
        if max_retries is not None and isinstance(retry_table, Mapping) and "max" in retry_table:
            field = self.field("max_retries")
            self.problems.append(
                InvalidInput(
                    f"{field}: give either {self.key('max_retries')} or retry.max, not both",
                    field=field,
                )
            )
        elif max_retries is not None:
            retry = msgspec.structs.replace(retry, max=max_retries)
        return Policy(
            retry=retry,
            timeout=self.get("timeout", _optional_duration, None, nullable=True),
            misfire=self.get("misfire", self.misfire, MisfirePolicy()),
            overlap=self.get("overlap", choice(Overlap), Overlap.SKIP),
            on_crash=self.get("on_crash", choice(OnCrash), OnCrash.RERUN),
        )

    def misfire(self, value: object, field: str) -> MisfirePolicy:
        problems: list[InvalidInput] = []
        values = read_keys(expect_table(value, field), _MISFIRE_CHECKS, f"{field}.", problems)
        if problems:
            raise problems[0]
        return MisfirePolicy(**values)

    def schedule_and_zone(self, created: datetime | None) -> tuple[Schedule, str]:
        """The schedule, the job's zone name, and a trial compilation of the two."""
        before = len(self.problems)
        zone_name: str | None = self.get("timezone", _zone_name)
        schedule, inner_zone = self.schedule()
        if inner_zone is not None:
            if zone_name is not None and inner_zone != zone_name:
                field = f"{self.prefix}schedule.timezone"
                self.problems.append(
                    InvalidInput(
                        f"{field}: expected the same zone as timezone ({zone_name!r}) or"
                        f" none, got {inner_zone!r}",
                        field=field,
                    )
                )
            zone_name = inner_zone
        zone_name = zone_name or self.defaults.timezone
        schedule = schedule or IMMEDIATE
        # Compiling with a zone or schedule in doubt says nothing. An immediate run or a delay
        # (bounded when parsed) cannot fail to compile, and a new job's first run needs no
        # trigger for them: most creates skip the trial (compiled on demand, at most once).
        if len(self.problems) == before and not _cannot_fail(schedule):
            self.try_compile(schedule, zone_name, created)
        return schedule, zone_name

    def schedule(self) -> tuple[Schedule | None, str | None]:
        try:
            # Compiled once, by try_compile, for the job's zone and creation.
            return parse_schedule(
                self.schedule_input(), field=self.schedule_field, compile_check=False
            )
        except InvalidInput as exc:
            self.problems.append(self.rerooted(exc))
            return None, None

    def rerooted(self, exc: InvalidInput) -> InvalidInput:
        """A schedule error under the snake style's inline keys: without a prefix (the
        library's calls) ``schedule.cron`` is really ``cron``, so name the key as written."""
        if self.style == "camel" or self.prefix or not (exc.field or "").startswith("schedule."):
            return exc
        field = (exc.field or "").removeprefix("schedule.")
        return type(exc)(exc.message.removeprefix("schedule."), field=field)

    def schedule_input(self) -> Any:
        if self.style == "camel":
            return self.raw.get("schedule")
        return {key: self.raw[key] for key in SCHEDULE_KEYS if key in self.raw}

    @property
    def schedule_field(self) -> str:
        """Where schedule keys live: ``schedule`` (camel), the job itself (snake)."""
        if self.style == "camel":
            return f"{self.prefix}schedule"
        return self.prefix.removesuffix(".") or "schedule"

    def try_compile(self, schedule: Schedule, zone_name: str, created: datetime | None) -> None:
        """Compile the schedule for a job created at ``created`` (default: now); the trigger
        is kept for the spec (:meth:`JobSpec.trigger`), a problem is reported."""
        created = created or to_datetime(SystemClock().time())
        try:
            trigger = compile_schedule(
                schedule, load_zone(zone_name), created=created, field=self.schedule_field
            )
        except InvalidInput as exc:
            self.problems.append(self.rerooted(exc))
        else:
            self.compiled = (created, trigger)

    def resolve_task(self, task: str | None, tasks: Collection[str] | None) -> str | None:
        """Check the task against the known names; no task means ``workflow`` when defined."""
        if tasks is None or "task" in self.failed:
            return task
        field = self.field("task")
        if task is None:
            if "workflow" in tasks:
                return "workflow"
            self.problems.append(
                UnknownTask(
                    f"{field}: expected a task name (no 'workflow' task is defined to run by"
                    " default)",
                    field=field,
                )
            )
        elif task not in tasks:
            names = sorted(tasks)
            listed = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            self.problems.append(
                UnknownTask(
                    f"{field}: expected a task defined in config or registered in code"
                    f" ({listed or 'none defined'}), got {describe(task)}",
                    field=field,
                )
            )
        return task


@functools.cache
def _job_keys(style: Style) -> tuple[str, ...]:
    """Every key of a job in ``style``."""
    keys = [
        camel(k) if style == "camel" else k for k in (*_STRING_KEYS, *_POLICY_KEYS, *_OTHER_KEYS)
    ]
    return (*keys, *(SCHEDULE_KEYS if style == "snake" else ("schedule",)))


def _optional_duration(value: object, field: str) -> float | None:
    """A timeout: a positive duration, or null for none."""
    return None if value is None else expect_duration(value, field)


def _zone_name(value: object, field: str) -> str:
    name = expect_str(value, field)
    load_zone(name, field=field)
    return name
