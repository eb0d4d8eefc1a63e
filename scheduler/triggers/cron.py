"""Cron expressions, parsed and matched by ``cronsim`` (Debian cron semantics).

cronsim parses the five fields (``*``, ranges, steps, lists, names, and its ``L``/``LW``/``#``
extensions) and decides whether a date matches (day-of-month and day-of-week combine with OR
when neither starts with ``*``, as in Debian cron). This module enumerates the matching
*wall* times day by day from cronsim's parsed fields - much faster than cronsim's
second-by-second ticking - and leaves their meaning on DST days to
:func:`~scheduler.triggers.dst.resolve_local`. Tests check the result against cronsim's own
aware iteration.
"""

from __future__ import annotations

import functools
import itertools
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from scheduler.errors import InvalidSchedule
from scheduler.triggers.dst import CRON_FIXED, CRON_WILDCARD, DstRule
from scheduler.triggers.wallclock import WallClockTrigger, nth

__all__ = ["ALIASES", "CronSpec", "CronTrigger", "parse_cron"]

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31 or L"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, 0 and 7 are Sunday"),
)
_SYNTAX = "a value, *, a range a-b, a step */n or a-b/n, or a list a,b"
#: Dates searched ahead before a rule is declared finished, as cronsim does.
HORIZON_YEARS = 50
_DAY = timedelta(days=1)
# cronsim needs some start to parse against; only the parsed fields are used.
_PARSE_START = datetime.combine(date(2000, 1, 1), time())


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A valid cron expression: ``text`` as normalised, ``fields`` the five fields it means."""

    text: str
    fields: tuple[str, ...]

    @property
    def wildcard(self) -> bool:
        """Debian cron's "wildcard job": the minute or the hour field starts with ``*``."""
        return self.fields[0].startswith("*") or self.fields[1].startswith("*")

    @property
    def default_dst(self) -> DstRule:
        return CRON_WILDCARD if self.wildcard else CRON_FIXED


def parse_cron(text: object, *, field: str) -> CronSpec:
    """A :class:`CronSpec` for ``text``, or :class:`InvalidSchedule` naming the bad part.

    Five fields or a shortcut (``@hourly``, ``@daily``/``@midnight``, ``@weekly``,
    ``@monthly``, ``@yearly``/``@annually``). A date that can never occur (``0 0 30 2 *``) is
    rejected here, so a stored cron job always has a next run.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchedule(
            f"{field}: expected a cron expression like '0 9 * * 1-5' or '@daily', got {text!r}",
            field=field,
        )
    normalised = " ".join(text.split())
    expanded = normalised
    if normalised.startswith("@"):
        expanded = ALIASES.get(normalised.lower(), "")
        if not expanded:
            raise InvalidSchedule(
                f"{field}: unknown shortcut {normalised!r} (expected "
                f"{', '.join(sorted(ALIASES))} or '@every <duration>')",
                field=field,
            )
        normalised = normalised.lower()
    fields = tuple(_single_ranges(part) for part in expanded.split())
    if len(fields) != 5:
        raise InvalidSchedule(
            f"{field}: expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)} in {normalised!r}",
            field=field,
        )
    _check(fields, field)
    return CronSpec(normalised, fields)


_SINGLE_RANGE = re.compile(r"(\w+)-(\w+)/\d+")


def _single_ranges(text: str) -> str:
    """``5-5/10`` -> ``5``: cronsim reads a one-value range with a step as ``5-59/10``."""
    terms = text.split(",")
    for index, term in enumerate(terms):
        match = _SINGLE_RANGE.fullmatch(term)
        if match and match[1].upper() == match[2].upper():
            terms[index] = match[1]
    return ",".join(terms)


def _check(fields: tuple[str, ...], field: str) -> None:
    """Name the first field cronsim rejects on its own, else the impossible date."""
    try:
        _parsed(fields)
    except CronSimError:
        pass
    else:
        return
    for index, (name, values) in enumerate(_FIELDS):
        alone = ["*"] * 5
        alone[index] = fields[index]
        try:
            _parsed(tuple(alone))
        except CronSimError:
            raise InvalidSchedule(
                f"{field}: bad {name} field {fields[index]!r} (expected {values}; {_SYNTAX})",
                field=field,
            ) from None
    raise InvalidSchedule(
        f"{field}: day-of-month {fields[2]!r} never occurs in month {fields[3]!r}", field=field
    )


@functools.lru_cache(maxsize=4096)
def _parsed(fields: tuple[str, ...]) -> CronSim:
    return CronSim(" ".join(fields), _PARSE_START)


class CronTrigger(WallClockTrigger):
    """Runs at the wall times a cron expression matches, in the job's zone.

    ``first``, ``until`` (wall times, inclusive) and ``count`` bound the wall times; they serve
    ``repeat`` patterns that a cron expression can state (see :mod:`.repeat`).
    """

    __slots__ = ("_count", "_first", "_last", "_months", "_sim", "_times", "_until")

    def __init__(
        self,
        spec: CronSpec,
        zone: ZoneInfo,
        rule: DstRule,
        *,
        first: datetime | None = None,
        until: datetime | None = None,
        count: int | None = None,
        end: float | None = None,
    ) -> None:
        super().__init__(zone, rule, end=end)
        self._sim = _parsed(spec.fields)
        self._months = frozenset(self._sim.months)
        self._times = _times_of_day(self._sim.hours, self._sim.minutes)
        self._first = first
        self._until = until
        self._count = count
        self._last: tuple[datetime | None] | None = None

    def _walls(self, start: datetime) -> Iterator[datetime]:
        if self._first is not None and start < self._first:
            start = self._first
        last = self._last_wall()
        if last is None:
            return self._days(start)
        return itertools.takewhile(last.__ge__, self._days(start))

    def _last_wall(self) -> datetime | None:
        """``until``, or the ``count``-th wall time from ``first`` if earlier (counted once)."""
        if self._count is None:
            return self._until
        if self._last is None:
            self._last = (nth(self._days(self._first or _PARSE_START), self._count),)
        counted = self._last[0]
        if counted is None or self._until is None:
            return counted or self._until
        return min(counted, self._until)

    def _days(self, start: datetime) -> Iterator[datetime]:
        """Matching wall times from ``start`` on, day by day, for :data:`HORIZON_YEARS`."""
        times, months, matches = self._times, self._months, self._sim.match_day
        day = start.date()
        first = bisect_left(times, start.time())
        last = date(min(day.year + HORIZON_YEARS, date.max.year), 12, 31)
        while day <= last:
            if day.month not in months:
                if day.month == 12 and day.year >= last.year:
                    return
                day = _first_of_next_month(day)
            else:
                if matches(day):
                    for moment in times[first:]:
                        yield datetime.combine(day, moment)
                if day == last:
                    return
                day += _DAY
            first = 0


@functools.lru_cache(maxsize=1024)
def _times_of_day_cached(hours: frozenset[int], minutes: frozenset[int]) -> tuple[time, ...]:
    return tuple(time(hour, minute) for hour in sorted(hours) for minute in sorted(minutes))


def _times_of_day(hours: set[int], minutes: set[int]) -> tuple[time, ...]:
    """Every (hour, minute) the expression allows within a matching day, ascending."""
    return _times_of_day_cached(frozenset(hours), frozenset(minutes))


def _first_of_next_month(day: date) -> date:
    if day.month == 12:
        return date(day.year + 1, 1, 1)
    return date(day.year, day.month + 1, 1)
