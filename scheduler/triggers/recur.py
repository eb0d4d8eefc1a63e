"""RFC 5545 recurrence rules, evaluated with bounded work: the parts, the step budget, the days.

dateutil iterates a rule period by period (and a per-second rule second by second, up to
86,400 inner steps a day): a rule that matches rarely, such as
``FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=23;BYMINUTE=59;BYSECOND=59``, costs seconds per
query. The scheduler evaluates rules itself, in two shapes chosen by :func:`expansion`:

- :mod:`.daygrid` - DAILY, WEEKLY without BYSETPOS, HOURLY, MINUTELY, SECONDLY: which days can
  match is a per-day calendar test, tabulated once per kind of year (14 kinds), and which
  hours/minutes/seconds of a day lie on the INTERVAL grid is arithmetic on residues. A search
  skips whole years that cannot match, then whole days, then finds the time of day directly.
- :mod:`.periods` - YEARLY, MONTHLY, WEEKLY with BYSETPOS: whole periods, each expanded from its
  kind (a year's from its kind of year, a month's from its kind of month), so skipping an empty
  period costs one look-up.

Every query gets a :class:`Budget` of :data:`QUERY_STEPS` steps (a step is one year, one day,
one period, one table entry or one hour-minute pair examined); a query that would need more
raises :class:`TooCostly`, a 400 naming ``schedule.rrule``. A search or count needs far fewer:
at most about 10,200 steps for a day-at-a-time rule (a year each up to 9999, a day each through
one year, the hour-minute pairs of one day), 430 for YEARLY (400-year cycle, then a check that
no kind of year has a run), 4,830 for MONTHLY (4,800-month cycle), and one per BYMONTH month
visited for WEEKLY with BYSETPOS. Only resolving a large COUNT can run out, and COUNT is
resolved when the rule is compiled, so such a rule is refused when the job is created (where an
arithmetic bound shows the budget cannot suffice, at once: :meth:`Budget.require`); the
tests check over random rules that no query of an accepted rule runs out. (A catch-up count
over decades may: it then reports a lower bound, see ``WallClockTrigger.count``.)

Semantics follow dateutil (the tests compare with it) except where RFC 5545 says otherwise:
BYDAY mixing plain and numbered days (``MO,1TU``) means their union, as RFC 5545 says (dateutil
intersects them and never matches), and the parts RFC 5545 forbids for a frequency (a numbered
BYDAY outside MONTHLY/YEARLY, BYWEEKNO outside YEARLY, BYYEARDAY with DAILY/WEEKLY/MONTHLY,
BYMONTHDAY with WEEKLY) are refused when the rule is parsed. Week numbers follow ISO 8601
(with WKST), where dateutil gives a year that starts on a Friday or Saturday 53 weeks.
"""

from __future__ import annotations

import calendar
import functools
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Protocol

from scheduler.errors import InvalidSchedule

__all__ = [
    "DAILY",
    "HOURLY",
    "MINUTELY",
    "MONTHLY",
    "QUERY_STEPS",
    "SECONDLY",
    "WEEKLY",
    "YEARLY",
    "Budget",
    "Expansion",
    "Parts",
    "TooCostly",
    "YearInfo",
    "explicit",
    "year_info",
    "year_kind",
    "year_length",
]

YEARLY, MONTHLY, WEEKLY, DAILY, HOURLY, MINUTELY, SECONDLY = range(7)
#: Steps one query (or the compilation's first search, or COUNT) may take; see the module
#: docstring for what a step is and what an accepted rule needs.
QUERY_STEPS = 20_000
LAST_YEAR = date.max.year


class TooCostly(InvalidSchedule):
    """A rule whose evaluation would exceed the step budget."""


class Budget:
    """Steps left for one query; running out raises :class:`TooCostly` naming ``field``."""

    __slots__ = ("field", "left", "spent")

    def __init__(self, steps: int = QUERY_STEPS, field: str = "schedule.rrule") -> None:
        self.left = steps
        self.spent = 0
        self.field = field

    def require(self, steps: int) -> None:
        """Raise :class:`TooCostly` at once if the query is known (from an arithmetic lower
        bound) to need more than the steps left: a refusal then costs nothing, where walking
        until the budget runs out would hold the loop for the whole budget (~50 ms)."""
        if steps > self.left:
            raise self._exhausted()

    def spend(self, steps: int = 1) -> None:
        self.left -= steps
        self.spent += steps
        if self.left < 0:
            raise self._exhausted()

    def _exhausted(self) -> TooCostly:
        return TooCostly(
            f"{self.field}: this rule matches too rarely (or COUNT is too large) to be "
            f"evaluated within {QUERY_STEPS} steps; simplify it (fewer BY parts, a smaller "
            "INTERVAL or COUNT, or a coarser FREQ)",
            field=self.field,
        )


@dataclass(frozen=True, slots=True)
class Parts:
    """A rule with every part explicit (what dateutil would infer from DTSTART is filled in).

    Day parts are tuples (empty: not given); ``weekdays`` are plain BYDAY days (0 = Monday),
    ``nth`` the numbered ones. ``hours``/``minutes``/``seconds`` are never empty for a
    frequency coarser than theirs; for HOURLY and finer an empty tuple means any value.
    """

    freq: int
    interval: int
    wkst: int
    dtstart: datetime
    months: tuple[int, ...] = ()
    weeknos: tuple[int, ...] = ()
    yeardays: tuple[int, ...] = ()
    monthdays: tuple[int, ...] = ()
    weekdays: tuple[int, ...] = ()
    nth: tuple[tuple[int, int], ...] = ()
    hours: tuple[int, ...] = ()
    minutes: tuple[int, ...] = ()
    seconds: tuple[int, ...] = ()
    setpos: tuple[int, ...] = ()

    @property
    def day_parts(self) -> bool:
        return bool(self.weeknos or self.yeardays or self.monthdays or self.weekdays or self.nth)

    def times(self) -> tuple[time, ...]:
        """The times of day of a DAILY or coarser rule, ascending."""
        return tuple(
            time(hour, minute, second)
            for hour in self.hours
            for minute in self.minutes
            for second in self.seconds
        )


def explicit(parts: Parts) -> Parts:
    """``parts`` with what dateutil infers from DTSTART made explicit, and sorted."""
    start, freq = parts.dtstart, parts.freq
    months, monthdays, weekdays = parts.months, parts.monthdays, parts.weekdays
    if not parts.day_parts:
        if freq == YEARLY:
            months = months or (start.month,)
            monthdays = (start.day,)
        elif freq == MONTHLY:
            monthdays = (start.day,)
        elif freq == WEEKLY:
            weekdays = (start.weekday(),)
    hours = parts.hours or ((start.hour,) if freq < HOURLY else ())
    minutes = parts.minutes or ((start.minute,) if freq < MINUTELY else ())
    seconds = parts.seconds or ((start.second,) if freq < SECONDLY else ())
    return Parts(
        freq=freq,
        interval=parts.interval,
        wkst=parts.wkst,
        dtstart=start,
        months=tuple(sorted(set(months))),
        weeknos=tuple(sorted(set(parts.weeknos))),
        yeardays=tuple(sorted(set(parts.yeardays))),
        monthdays=tuple(sorted(set(monthdays))),
        weekdays=tuple(sorted(set(weekdays))),
        nth=tuple(sorted(set(parts.nth))),
        hours=tuple(sorted(set(hours))),
        minutes=tuple(sorted(set(minutes))),
        seconds=tuple(sorted(set(seconds))),
        setpos=tuple(sorted(set(parts.setpos))),
    )


class Expansion(Protocol):
    """The wall times of a rule (naive, from DTSTART on), as :class:`~.rrule.RRuleTrigger`
    asks for them."""

    def walls(self, start: datetime, budget: Budget) -> Iterator[datetime]:
        """Wall times at or after ``start``, ascending, while the budget lasts."""
        ...

    def count(self, low: datetime, high: datetime, budget: Budget) -> int:
        """How many wall times lie in ``[low, high)``."""
        ...

    def nth(self, n: int, budget: Budget) -> datetime | None:
        """The ``n``-th wall time (from 1) from DTSTART on, or None (for COUNT)."""
        ...


# --- the calendar --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class YearInfo:
    """One year: its first day (ordinal), length, the ordinal of each month's first day (and
    of the next year's), and the start of its week 1 for each WKST."""

    year: int
    first: int
    length: int
    months: tuple[int, ...]

    @property
    def leap(self) -> bool:
        return self.length == 366

    @property
    def weekday(self) -> int:
        """The weekday of 1 January (0 = Monday)."""
        return (self.first - 1) % 7

    def month_of(self, ordinal: int) -> int:
        return bisect_right(self.months, ordinal)

    def week_one(self, wkst: int) -> int:
        """The ordinal of the first day of week 1 (see :func:`week_one`)."""
        return week_one(self.year, wkst)


@functools.lru_cache(maxsize=1024)
def year_info(year: int) -> YearInfo:
    first = date(year, 1, 1).toordinal()
    starts = [first]
    for month in range(1, 13):
        starts.append(starts[-1] + calendar.monthrange(year, month)[1])
    return YearInfo(year, first, starts[-1] - first, tuple(starts))


def first_ordinal(year: int) -> int:
    """The ordinal of 1 January of ``year``, also for year 10000 (which ``date`` lacks)."""
    y = year - 1
    return 365 * y + y // 4 - y // 100 + y // 400 + 1


def week_one(year: int, wkst: int) -> int:
    """The ordinal of the first day of ``year``'s week 1: the first week (starting on
    ``wkst``) with at least four days in the year (RFC 5545; ISO 8601 when ``wkst`` is Monday)."""
    first = first_ordinal(year)
    back = (weekday(first) - wkst) % 7
    return first - back if back <= 3 else first - back + 7


def year_kind(year: int, *, neighbours: bool = False) -> tuple[int, ...]:
    """What a year's matching days depend on: leap year and weekday of 1 January (14 kinds);
    with ``neighbours`` (BYWEEKNO: weeks cross into the years around) also whether the years
    before and after are leap years."""
    kind = (calendar.isleap(year), weekday(first_ordinal(year)))
    if not neighbours:
        return kind
    return (calendar.isleap(year - 1), *kind, calendar.isleap(year + 1))


def year_length(year: int) -> int:
    return 366 if calendar.isleap(year) else 365


def weekday(ordinal: int) -> int:
    """0 = Monday (day 1 of year 1 was a Monday)."""
    return (ordinal - 1) % 7


class DayTest:
    """Whether a day matches the day parts of a rule, within a year; see :meth:`days`."""

    __slots__ = ("_nth_in_month", "_parts")

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        # Numbered weekdays count within the month (MONTHLY, or YEARLY with BYMONTH) or the year.
        self._nth_in_month = parts.freq == MONTHLY or bool(parts.months)

    def days(self, info: YearInfo, low: int, high: int) -> list[int]:
        """The matching days (ordinals) in ``[low, high]``, a span within ``info``'s year,
        ascending. Candidates come from the most selective part, then every part is checked,
        so the cost is that of the candidates, not of the span."""
        candidates = self._candidates(info, low, high)
        parts = self._parts
        if not (parts.monthdays or parts.yeardays or parts.weeknos or parts.nth):
            return sorted(candidates)  # the candidates are exactly the months' weekdays
        return sorted({day for day in candidates if self.matches(info, day)})

    def matches(self, info: YearInfo, day: int) -> bool:
        parts = self._parts
        month = info.month_of(day)
        if parts.months and month not in parts.months:
            return False
        if parts.monthdays:
            number = day - info.months[month - 1] + 1
            length = info.months[month] - info.months[month - 1]
            if number not in parts.monthdays and number - length - 1 not in parts.monthdays:
                return False
        if parts.yeardays:
            number = day - info.first + 1
            if number not in parts.yeardays and number - info.length - 1 not in parts.yeardays:
                return False
        if parts.weeknos and not self._week_matches(info, day):
            return False
        if parts.weekdays or parts.nth:
            return weekday(day) in parts.weekdays or self._nth_matches(info, day, month)
        return True

    def _nth_matches(self, info: YearInfo, day: int, month: int) -> bool:
        if not self._parts.nth:
            return False
        if self._nth_in_month:
            low, high = info.months[month - 1], info.months[month] - 1
        else:
            low, high = info.first, info.first + info.length - 1
        wd = weekday(day)
        return (wd, (day - low) // 7 + 1) in self._parts.nth or (
            wd,
            -((high - day) // 7 + 1),
        ) in self._parts.nth

    def _week_matches(self, info: YearInfo, day: int) -> bool:
        """BYWEEKNO: the day's week, numbered in the week-year it belongs to (the last week of
        the year before, or week 1 of the year after, for days at the year's ends)."""
        wkst, year = self._parts.wkst, info.year
        if day < week_one(year, wkst):
            year -= 1
        elif day >= week_one(year + 1, wkst):
            year += 1
        start = week_one(year, wkst)
        weeks = (week_one(year + 1, wkst) - start) // 7
        number = (day - start) // 7 + 1
        return number in self._parts.weeknos or number - weeks - 1 in self._parts.weeknos

    def _candidates(self, info: YearInfo, low: int, high: int) -> list[int]:
        parts = self._parts
        months = [
            m
            for m in range(info.month_of(low), info.month_of(high) + 1)
            if not parts.months or m in parts.months
        ]
        if parts.monthdays:
            found = []
            for month in months:
                first, stop = info.months[month - 1], info.months[month]
                for number in parts.monthdays:
                    day = first + number - 1 if number > 0 else stop + number
                    if first <= day < stop and low <= day <= high:
                        found.append(day)
            return found
        if parts.yeardays:
            end = info.first + info.length
            days = (info.first + n - 1 if n > 0 else end + n for n in parts.yeardays)
            return [day for day in days if low <= day <= high]
        if parts.weeknos:  # the days of the numbered weeks of this week-year and its neighbours
            found = []
            for year in (info.year - 1, info.year, info.year + 1):
                first = week_one(year, parts.wkst)
                weeks = (week_one(year + 1, parts.wkst) - first) // 7
                for number in parts.weeknos:
                    week = number if number > 0 else weeks + 1 + number
                    if 1 <= week <= weeks:
                        start = first + 7 * (week - 1)
                        found += range(max(low, start), min(high, start + 6) + 1)
            return found
        spans = [(max(low, info.months[m - 1]), min(high, info.months[m] - 1)) for m in months]
        if (parts.weekdays or parts.nth) and not parts.weeknos:
            wanted = set(parts.weekdays) | {wd for wd, _ in parts.nth}
            return [
                day
                for first, last in spans
                for wd in wanted
                for day in range(first + (wd - weekday(first)) % 7, last + 1, 7)
            ]
        return [day for first, last in spans for day in range(first, last + 1)]


def select(days: list[int], times: int, positions: tuple[int, ...]) -> list[tuple[int, int]]:
    """BYSETPOS over a period's ``days`` x ``times`` (in that order): the chosen (day index,
    time index) pairs, ascending; all of them without BYSETPOS."""
    size = len(days) * times
    if not positions:
        return [(d, t) for d in range(len(days)) for t in range(times)]
    chosen = set()
    for position in positions:
        index = position - 1 if position > 0 else size + position
        if 0 <= index < size:
            chosen.add(divmod(index, times))
    return sorted(chosen)
