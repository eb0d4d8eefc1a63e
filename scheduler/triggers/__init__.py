"""Pure triggers: ``compile_schedule(schedule, tz, created=...) -> Trigger``.

A trigger answers ``next_after(after)``: the first run strictly after an aware instant, as an
aware datetime in the job's zone, or None when the schedule has no more runs. For catch-up it
also answers ``latest(since, until)`` (the last run in a span) and ``count(after, until)`` (how
many runs a span holds, exact or a stated lower bound) without walking the runs one by one, and
``first_run(created)`` gives a new job's first run. Triggers never read the clock and do no I/O,
so the same inputs always give the same answer.

Compare the returned datetimes by instant (``.timestamp()``, or after ``astimezone(UTC)``):
Python compares two datetimes that share a ``tzinfo`` by wall time, ignoring ``fold``, which is
wrong inside a DST fold.

Each kind lives in its own module: ``once`` (immediate, delay, at), ``interval`` (every),
``cron``, ``rrule`` and ``repeat``; the DST rule lives only in :mod:`.dst`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from scheduler.durations import parse_duration
from scheduler.errors import InvalidInput, InvalidSchedule
from scheduler.model import DstPolicy, Schedule
from scheduler.triggers.cron import CronTrigger, parse_cron
from scheduler.triggers.dst import AT, REPEAT, RRULE, DstRule, resolve_local, with_override
from scheduler.triggers.interval import IntervalTrigger
from scheduler.triggers.once import OnceTrigger, local_instants
from scheduler.triggers.repeat import compile_repeat
from scheduler.triggers.rfc5545 import parse_rrule
from scheduler.triggers.rrule import compile_rrule
from scheduler.triggers.wallclock import Tally

__all__ = [
    "DstRule",
    "Tally",
    "Timeline",
    "Trigger",
    "compile_schedule",
    "compile_stored",
    "resolve_local",
]


class Trigger(Protocol):
    """What the engine, the API and catch-up ask of a schedule (all instants aware)."""

    def next_after(self, after: datetime) -> datetime | None:
        """The first run strictly after ``after``, aware in the job's zone, or None."""
        ...

    def first_run(self, created: datetime) -> datetime | None:
        """The first run of a job created at ``created``: its first run after ``created``,
        except that an RRULE without DTSTART runs every occurrence from its start (the creation
        minute, or the next whole second for FREQ=SECONDLY), so its first run may lie up to a
        minute before ``created``."""
        ...

    def latest(self, since: datetime, until: datetime) -> datetime | None:
        """The last run in ``[since, until]``, or None; O(1) for ``every``, O(log n) queries
        for calendar rules."""
        ...

    def count(self, after: datetime, until: datetime) -> Tally:
        """How many runs lie in ``(after, until]``: exact, or a lower bound (``exact`` false)
        when counting exactly would cost too much (see :mod:`.wallclock`)."""
        ...


class Timeline:
    """A trigger in epoch seconds, as the engine and
    :func:`scheduler.engine.misfire.plan_fire` use it (it satisfies
    :class:`scheduler.engine.misfire.Timeline`)."""

    __slots__ = ("_trigger",)

    def __init__(self, trigger: Trigger) -> None:
        self._trigger = trigger

    def next_after(self, instant: float) -> float | None:
        return _stamp(self._trigger.next_after(_moment(instant)))

    def latest(self, since: float, until: float) -> float | None:
        return _stamp(self._trigger.latest(_moment(since), _moment(until)))

    def count(self, after: float, until: float) -> tuple[int, bool]:
        tally = self._trigger.count(_moment(after), _moment(until))
        return tally.runs, tally.exact


def _moment(instant: float) -> datetime:
    return datetime.fromtimestamp(instant, UTC)  # UTC: exact, whatever the job's zone


def _stamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def compile_schedule(
    schedule: Schedule, tz: ZoneInfo, *, created: datetime, field: str = "schedule"
) -> Trigger:
    """The trigger for ``schedule`` in the job's zone ``tz``; ``created`` is the job's creation.

    Immediate runs once at ``created``; ``delay`` once at ``created + delay``; ``every`` from
    ``start`` (default ``created + every``); ``repeat`` and an RRULE without DTSTART are
    anchored at ``created``. Raises :class:`InvalidSchedule` (naming ``field``) for a schedule
    that cannot run. The first run of a new job is ``first_run(created)``.
    """
    if created.tzinfo is None:
        raise ValueError("created must be an aware datetime")
    if schedule.delay is not None:  # UTC: adding to a zoned datetime would add wall time
        return OnceTrigger(((_utc(created) + timedelta(seconds=schedule.delay)).astimezone(tz),))
    if schedule.at is not None:
        rule = with_override(AT, schedule.dst)
        return OnceTrigger(local_instants(schedule.at, tz, rule, field=f"{field}.at"))
    if schedule.every is not None:
        return _every(schedule, tz, created, field)
    if schedule.cron is not None:
        return _cron(schedule.cron, schedule.dst, tz, created, field)
    if schedule.repeat is not None:
        rule = with_override(REPEAT, schedule.dst)
        return compile_repeat(
            schedule.repeat, tz, created=created, rule=rule, field=f"{field}.repeat"
        )
    if schedule.rrule is not None:
        spec = parse_rrule(schedule.rrule, field=f"{field}.rrule")
        rule = with_override(RRULE, schedule.dst)
        return compile_rrule(spec, tz, created=created, rule=rule, field=f"{field}.rrule")
    return OnceTrigger((created.astimezone(tz),))


def compile_stored(
    schedule: Schedule, tz: ZoneInfo, *, created: datetime
) -> tuple[Trigger, InvalidSchedule | None]:
    """:func:`compile_schedule` for a job already stored. A schedule the current validation
    refuses (stored by an older version: an RRULE part RFC 5545 forbids, a cron with a
    no-break space, a rule too costly to evaluate) gives a trigger with no run and the reason,
    so that the engine can end the job with a message instead of failing on every query."""
    try:
        return compile_schedule(schedule, tz, created=created), None
    except InvalidSchedule as error:
        return OnceTrigger(()), error


def _cron(text: str, dst: DstPolicy | None, tz: ZoneInfo, created: datetime, field: str) -> Trigger:
    if text.strip().lower().startswith("@every"):
        every = Schedule(every=_every_seconds(text, f"{field}.cron"))
        return _every(every, tz, created, field)
    spec = parse_cron(text, field=f"{field}.cron")
    return CronTrigger(spec, tz, with_override(spec.default_dst, dst))


def _every_seconds(text: str, field: str) -> float:
    try:
        return parse_duration(text.strip()[len("@every") :].strip(), field=field)
    except InvalidInput as error:
        raise InvalidSchedule(error.message, field=field) from None


def _every(schedule: Schedule, tz: ZoneInfo, created: datetime, field: str) -> Trigger:
    assert schedule.every is not None
    step = timedelta(seconds=schedule.every)
    start = _bound(schedule.start, tz, f"{field}.start") or _utc(created) + step
    end = _bound(schedule.end, tz, f"{field}.end")
    if end is not None and end.timestamp() < start.timestamp():
        raise InvalidSchedule(
            f"{field}.end: is before start {start.isoformat()}", field=f"{field}.end"
        )
    return IntervalTrigger(start, step, tz, end)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _bound(text: str | None, tz: ZoneInfo, field: str) -> datetime | None:
    """``start``/``end`` of ``every``: local times read like ``at`` (a gap time -> gap end)."""
    if text is None:
        return None
    instants = local_instants(text, tz, AT, field=field)
    return instants[0] if instants else None
