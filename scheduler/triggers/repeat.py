"""``repeat``: a friendly calendar pattern, evaluated as the RRULE it stands for.

``{"freq": "weekly", "interval": 2, "weekdays": ["mon", "wed"], "time": "09:00"}`` is
``FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0;BYSECOND=0`` anchored at the job's
creation: the interval counts days, weeks (from Monday) or months from the day the job was
created. Without ``weekdays`` a weekly pattern runs on the creation weekday; without
``monthDays`` a monthly one on the creation day of the month (months without that day are
skipped, as RFC 5545 does). ``until`` is inclusive (a bare date includes that day) and ``count``
counts runs from the creation. DST follows cron's fixed-time rule (:data:`~.dst.REPEAT`).

Most patterns (interval 1, whole minutes, month days 1..31 or -1) are also a cron expression;
those run on cron's matcher; the rest on the RRULE evaluator (:mod:`.rrule`). Tests check that
both read the same wall times.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec

from scheduler.errors import InvalidSchedule
from scheduler.model import Frequency, Repeat
from scheduler.triggers.cron import CronSpec, CronTrigger, parse_cron
from scheduler.triggers.dst import DstRule
from scheduler.triggers.recur import DAILY, MONTHLY, WEEKLY, Parts, explicit
from scheduler.triggers.rfc5545 import MAX_COUNT
from scheduler.triggers.rrule import RRuleTrigger, expansion
from scheduler.triggers.wallclock import NeverRuns

__all__ = [
    "WEEKDAY_NAMES",
    "as_cron",
    "compile_repeat",
    "cron_repeat",
    "normalise_repeat",
    "parse_time",
    "parse_until",
    "rrule_repeat",
]

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_INDEX = {name: i for names in (WEEKDAY_NAMES, _FULL_NAMES) for i, name in enumerate(names)}
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_FREQ = {Frequency.DAILY: DAILY, Frequency.WEEKLY: WEEKLY, Frequency.MONTHLY: MONTHLY}
MAX_INTERVAL = 10_000
_TINY = timedelta(microseconds=1)


def normalise_repeat(repeat: Repeat, field: str) -> Repeat:
    """``repeat`` with every value checked and spelled one way (``"9:00"`` -> ``"09:00"``,
    weekdays as ``mon``..``sun`` in week order), or :class:`InvalidSchedule` naming the key."""
    if not 1 <= repeat.interval <= MAX_INTERVAL:
        raise InvalidSchedule(
            f"{field}.interval: expected a whole number from 1 to {MAX_INTERVAL}, "
            f"got {repeat.interval}",
            field=f"{field}.interval",
        )
    if repeat.count is not None and not 1 <= repeat.count <= MAX_COUNT:
        raise InvalidSchedule(
            f"{field}.count: expected a whole number from 1 to {MAX_COUNT}, got {repeat.count}",
            field=f"{field}.count",
        )
    hour, minute, second = parse_time(repeat.time, f"{field}.time")
    spelled = f"{hour:02}:{minute:02}" + (f":{second:02}" if second else "")
    return msgspec.structs.replace(
        repeat,
        time=spelled,
        weekdays=tuple(WEEKDAY_NAMES[i] for i in _weekdays(repeat, field)),
        month_days=_month_days(repeat, field),
        until=_until_text(repeat.until, f"{field}.until"),
    )


def parse_time(text: str, field: str) -> tuple[int, int, int]:
    """``"HH:MM"`` or ``"HH:MM:SS"`` (24-hour) -> (hour, minute, second)."""
    match = _TIME.fullmatch(text.strip())
    if match is not None:
        hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
        if hour < 24 and minute < 60 and second < 60:
            return hour, minute, second
    raise InvalidSchedule(
        f"{field}: expected a 24-hour time like '09:00' or '17:30:15', got {text!r}", field=field
    )


def _weekdays(repeat: Repeat, field: str) -> list[int]:
    if repeat.weekdays and repeat.freq is Frequency.MONTHLY:
        raise InvalidSchedule(
            f"{field}.weekdays: only for freq daily or weekly (for 'first Monday' and the like "
            "use an rrule such as FREQ=MONTHLY;BYDAY=1MO)",
            field=f"{field}.weekdays",
        )
    days = set()
    for index, name in enumerate(repeat.weekdays):
        day = _WEEKDAY_INDEX.get(name.strip().lower())
        if day is None:
            path = f"{field}.weekdays[{index}]"
            raise InvalidSchedule(
                f"{path}: expected one of {', '.join(WEEKDAY_NAMES)}, got {name!r}", field=path
            )
        days.add(day)
    return sorted(days)


def _month_days(repeat: Repeat, field: str) -> tuple[int, ...]:
    if repeat.month_days and repeat.freq is not Frequency.MONTHLY:
        raise InvalidSchedule(
            f"{field}.monthDays: only for freq monthly", field=f"{field}.monthDays"
        )
    for index, day in enumerate(repeat.month_days):
        if not (1 <= day <= 31 or -31 <= day <= -1):
            path = f"{field}.monthDays[{index}]"
            raise InvalidSchedule(
                f"{path}: expected a day 1..31, or -1 (last day) .. -31, got {day}", field=path
            )
    return tuple(sorted(set(repeat.month_days), key=lambda day: (day < 0, day)))


def parse_until(text: str, field: str) -> tuple[datetime | None, datetime | None]:
    """``until`` -> (inclusive wall time, None), or (None, UTC instant) when it has an offset.

    A bare date (``"2027-01-01"``) includes that whole day.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidSchedule(
            f"{field}: expected a date like '2027-01-01' or a local date-time like "
            f"'2027-01-01T09:00', got {text!r}",
            field=field,
        ) from None
    if value.tzinfo is not None:
        return None, value.astimezone(UTC)
    if len(text.strip()) == 10:  # a date: the whole day is included
        value = datetime.combine(value.date(), time(23, 59, 59))
    return value.replace(microsecond=0), None


def _until_text(text: str | None, field: str) -> str | None:
    if text is None:
        return None
    parse_until(text, field)
    return text.strip()


def compile_repeat(
    repeat: Repeat, tz: ZoneInfo, *, created: datetime, rule: DstRule, field: str
) -> RRuleTrigger | CronTrigger:
    """The trigger of a ``repeat`` pattern anchored at ``created`` in the job's zone ``tz``.

    A pattern that a cron expression can state (interval 1, whole minutes, month days 1..31
    or -1) runs on :class:`CronTrigger`, which needs no RRULE evaluation;
    the rest on :class:`RRuleTrigger`. Both read the same wall times (tests compare them).
    Raises :class:`InvalidSchedule` when the pattern has no run before its ``until``.
    """
    repeat = normalise_repeat(repeat, field)
    start = created.astimezone(tz).replace(tzinfo=None, microsecond=0)
    cron = as_cron(repeat, start)
    if cron is None:
        return rrule_repeat(repeat, tz, start=start, rule=rule, field=field)
    trigger = cron_repeat(repeat, tz, cron=cron, start=start, rule=rule, field=field)
    if trigger.next_after(created.astimezone(UTC) - _TINY) is None:  # UTC: exact arithmetic
        raise NeverRuns(f"{field}: never runs before its until", field=field)
    return trigger


def as_cron(repeat: Repeat, start: datetime) -> CronSpec | None:
    """The cron expression meaning the same as ``repeat`` from ``start``, if there is one."""
    hour, minute, second = parse_time(repeat.time, "time")
    if repeat.interval != 1 or second or any(day < -1 for day in repeat.month_days):
        return None
    days = "*"
    if repeat.month_days:
        days = ",".join("L" if day == -1 else str(day) for day in repeat.month_days)
    elif repeat.freq is Frequency.MONTHLY:
        days = str(start.day)
    weekdays = "*"
    if repeat.weekdays:
        weekdays = ",".join(str((WEEKDAY_NAMES.index(name) + 1) % 7) for name in repeat.weekdays)
    elif repeat.freq is Frequency.WEEKLY:
        weekdays = str((start.weekday() + 1) % 7)
    return parse_cron(f"{minute} {hour} {days} * {weekdays}", field="repeat")


def cron_repeat(
    repeat: Repeat, tz: ZoneInfo, *, cron: CronSpec, start: datetime, rule: DstRule, field: str
) -> CronTrigger:
    """``repeat`` (normalised) from wall time ``start`` on, as the cron expression ``cron``."""
    until, end = _until(repeat, field)
    return CronTrigger(cron, tz, rule, first=start, until=until, count=repeat.count, end=end)


def rrule_repeat(
    repeat: Repeat, tz: ZoneInfo, *, start: datetime, rule: DstRule, field: str
) -> RRuleTrigger:
    """``repeat`` (normalised) from wall time ``start`` on, as an RRULE (weeks from Monday)."""
    hour, minute, second = parse_time(repeat.time, f"{field}.time")
    parts = Parts(
        freq=_FREQ[repeat.freq],
        interval=repeat.interval,
        wkst=0,
        dtstart=start,
        weekdays=tuple(WEEKDAY_NAMES.index(name) for name in repeat.weekdays),
        monthdays=tuple(repeat.month_days),
        hours=(hour,),
        minutes=(minute,),
        seconds=(second,),
    )
    until, end = _until(repeat, field)
    trigger = RRuleTrigger(
        expansion(explicit(parts)),
        dtstart=start,
        count=repeat.count,
        until=until,
        zone=tz,
        out=tz,
        rule=rule,
        end=end,
        field=field,
    )
    trigger.probe()
    return trigger


def _until(repeat: Repeat, field: str) -> tuple[datetime | None, float | None]:
    """``until`` as (inclusive wall time, or inclusive instant in epoch seconds)."""
    if repeat.until is None:
        return None, None
    wall, instant = parse_until(repeat.until, f"{field}.until")
    return wall, instant.timestamp() if instant else None
