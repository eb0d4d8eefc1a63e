"""DAILY, WEEKLY (without BYSETPOS), HOURLY, MINUTELY and SECONDLY rules, a day at a time.

Such a rule runs at the *units* (days, hours, minutes or seconds) of a grid that starts at
DTSTART and steps by INTERVAL (WEEKLY: the BYDAY days of every INTERVAL-th week), on the days
that pass the day parts (BYMONTH, BYMONTHDAY, BYYEARDAY, BYDAY), at the units that pass the time
parts (BYHOUR, BYMINUTE, BYSECOND), and within each unit at the offsets the finer parts give
(BYMINUTE x BYSECOND within an hour, with BYSETPOS applied to that set).

Numbering units from 1 January of year 1, unit ``g`` of the grid satisfies
``(g - g0) mod P in A`` (``P`` = INTERVAL units and ``A`` = {0}; WEEKLY: ``P`` = 7 x INTERVAL
days and ``A`` the BYDAY days' places in the week). So what a day contributes depends only on
its *residue* ``s = (g0 - ordinal * U) mod P`` (``U`` units a day): the day has a run iff ``s``
lies in ``K = {k - a mod P : k an allowed unit, a in A}``, a bitset computed once. Whether a
whole year has a run is then one bit test too: its days that pass the day parts depend only on
its kind (14 kinds of year), and the year has a run iff ``(g0 - jan1 * U) mod P`` lies in the
sumset of ``K`` and ``{day * U mod P}`` over those days. A search thus costs one step per year
skipped (at most the ~8,000 years to 9999), at most one per day of the year it lands in, and at
most 1,440 (the hour-minute pairs of a SECONDLY rule) within the day.
"""

from __future__ import annotations

import functools
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta

from scheduler.triggers.recur import (
    DAILY,
    HOURLY,
    LAST_YEAR,
    MINUTELY,
    SECONDLY,
    WEEKLY,
    Budget,
    DayTest,
    Parts,
    first_ordinal,
    select,
    weekday,
    year_info,
    year_kind,
    year_length,
)

__all__ = ["DayGrid"]

_UNITS_PER_DAY = {DAILY: 1, WEEKLY: 1, HOURLY: 24, MINUTELY: 1440, SECONDLY: 86400}
_DAY_SECONDS = 86400


class DayGrid:
    """The wall times of a DAILY, WEEKLY (no BYSETPOS) or finer rule (see the module docstring)."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._test = DayTest(parts)
        self._per_day = per_day = _UNITS_PER_DAY[parts.freq]
        self._unit = _DAY_SECONDS // per_day
        self._grid_start, self._period, allowed = _grid(parts, per_day)
        self._allowed = allowed
        self._outer, self._last = _unit_factors(parts)
        self._offsets = _offsets(parts)
        last_values = self._last or (0,)
        self._by_residue: dict[int, tuple[int, ...]] = {}
        for value in last_values:
            residue = value % self._period
            self._by_residue[residue] = (*self._by_residue.get(residue, ()), value)
        units = _residues(self._outer, last_values, self._period)
        self._good = _sumset(units, _bits_of((-a) % self._period for a in allowed), self._period)
        if not self._offsets or not allowed:  # BYSETPOS chose nothing: no day has a run
            self._good = 0
        self._tables: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._spot_counts: dict[tuple[int, ...], dict[int, int]] = {}
        self._year_sums: dict[tuple[int, ...], int] = {}
        self._year_counts: dict[tuple[tuple[int, ...], int], int] = {}
        self._counts: dict[int, int] = {}
        self._cycle: int | None = None
        # How many of a day's prefixes and finest values fall in each residue: the units of a
        # residue are counted from these in at most 60 look-ups.
        self._prefix_counts = _histogram(self._outer or (0,), self._period)
        self._last_counts = _histogram(last_values, self._period)
        self._units_hist: dict[int, int] | None = None
        self._units_listed = False

    # --- days ------------------------------------------------------------------------------

    def _residue(self, ordinal: int) -> int:
        return (self._grid_start - ordinal * self._per_day) % self._period

    def _has_run(self, residue: int) -> bool:
        return bool(self._good >> residue & 1)

    def _table(self, year: int) -> tuple[int, ...]:
        """The days of ``year`` that pass the day parts, as offsets from 1 January (computed
        once per kind of year)."""
        kind = year_kind(year)
        found = self._tables.get(kind)
        if found is None:
            info = year_info(year)
            days = self._test.days(info, info.first, info.first + info.length - 1)
            found = self._tables[kind] = tuple(day - info.first for day in days)
        return found

    def _spots(self, year: int) -> dict[int, int]:
        """How many of the year's matching days have each ``offset * U mod P``: a day's
        residue is the year's residue minus that."""
        kind = year_kind(year)
        found = self._spot_counts.get(kind)
        if found is None:
            found = {}
            for offset in self._table(year):
                spot = offset * self._per_day % self._period
                found[spot] = found.get(spot, 0) + 1
            self._spot_counts[kind] = found
        return found

    def _year_has_run(self, year: int, first: int) -> bool:
        kind = year_kind(year)
        sums = self._year_sums.get(kind)
        if sums is None:
            spots = _bits_of(self._spots(year))
            sums = self._year_sums[kind] = _sumset(spots, self._good, self._period) if spots else 0
        return bool(sums >> self._residue(first) & 1)

    def _next_day(self, ordinal: int, budget: Budget) -> int | None:
        """The first day at or after ``ordinal`` with a run (it may lie before a given time of
        that day), or None up to year 9999."""
        year = date.fromordinal(ordinal).year
        while year <= LAST_YEAR:
            budget.spend()
            first = first_ordinal(year)
            if self._year_has_run(year, first):
                table = self._table(year)
                for offset in table[bisect_left(table, ordinal - first) :]:
                    budget.spend()
                    if self._has_run(self._residue(first + offset)):
                        return first + offset
            year += 1
        return None

    # --- units of a day ------------------------------------------------------------------------

    def _units(self, residue: int, low: int, budget: Budget) -> Iterator[int]:
        """The day's units from ``low`` on that lie on the grid, ascending."""
        if not self._outer and not self._last:  # DAILY, WEEKLY: the day itself
            if low <= 0 and any((-residue - a) % self._period == 0 for a in self._allowed):
                yield 0
            return
        start = max(0, bisect_right(self._outer, low) - 1)
        for prefix in self._outer[start:]:
            budget.spend()
            values = self._by_residue.get((residue - prefix) % self._period, ())
            for value in values[bisect_left(values, low - prefix) :]:
                yield prefix + value

    def _unit_count(self, residue: int, budget: Budget) -> int:
        """How many units of a day with ``residue`` lie on the grid (counted once per residue,
        from the residues of the day's prefixes and finest values)."""
        found = self._counts.get(residue)
        if found is None:
            if not self._outer and not self._last:  # DAILY, WEEKLY: the day itself
                found = int(any((-residue - a) % self._period == 0 for a in self._allowed))
            else:
                budget.spend(len(self._last_counts))
                prefixes, size = self._prefix_counts, self._period
                found = sum(
                    prefixes.get((residue - value) % size, 0) * times
                    for value, times in self._last_counts.items()
                )
            self._counts[residue] = found
        return found

    def _walls_of_day(self, ordinal: int, low: int, budget: Budget) -> Iterator[datetime]:
        """The day's wall times at or after ``low`` seconds into the day."""
        day = datetime.combine(date.fromordinal(ordinal), datetime.min.time())
        unit, offsets = self._unit, self._offsets
        for index in self._units(self._residue(ordinal), low // unit, budget):
            for offset in offsets:
                second = index * unit + offset
                if second >= low:
                    yield day + timedelta(seconds=second)

    def _day_count(self, ordinal: int, low: int, high: int, budget: Budget) -> int:
        """Wall times of the day in ``[low, high)`` seconds: whole units counted from the
        residue classes, the (at most two) units cut by ``low`` or ``high`` one by one."""
        if high <= low:
            return 0
        if not self._test.matches(year_info(date.fromordinal(ordinal).year), ordinal):
            return 0
        residue, unit, offsets = self._residue(ordinal), self._unit, self._offsets
        if not self._has_run(residue):
            return 0
        if low == 0 and high == _DAY_SECONDS:
            return self._unit_count(residue, budget) * len(offsets)
        first, stop = -(-low // unit), high // unit  # the whole units [first, stop)
        total = self._units_between(residue, first, stop, budget) * len(offsets)
        cut = {low // unit} if low % unit else set()
        if high % unit:
            cut.add(high // unit)
        for index in cut:
            if next(self._units(residue, index, budget), None) == index:
                total += sum(1 for offset in offsets if low <= index * unit + offset < high)
        return total

    def _units_between(self, residue: int, first: int, stop: int, budget: Budget) -> int:
        """How many units in ``[first, stop)`` of a day with ``residue`` lie on the grid."""
        if first >= stop:
            return 0
        if not self._outer and not self._last:  # DAILY, WEEKLY: the day itself
            return int(first <= 0 < stop and self._has_run(residue))
        total = 0
        start = max(0, bisect_right(self._outer, first) - 1)
        for prefix in self._outer[start:]:
            if prefix >= stop:
                break
            budget.spend()
            values = self._by_residue.get((residue - prefix) % self._period, ())
            total += bisect_left(values, stop - prefix) - bisect_left(values, first - prefix)
        return total

    # --- the Expansion interface ---------------------------------------------------------------

    def walls(self, start: datetime, budget: Budget) -> Iterator[datetime]:
        start = max(start, self._parts.dtstart)
        ordinal, low = start.toordinal(), _ceil_second(start)
        while True:
            found = self._next_day(ordinal, budget)
            if found is None:
                return
            yield from self._walls_of_day(found, low if found == ordinal else 0, budget)
            ordinal, low = found + 1, 0
            if ordinal > date.max.toordinal():
                return

    def count(self, low: datetime, high: datetime, budget: Budget) -> int:
        low = max(low, self._parts.dtstart)
        if high <= low:
            return 0
        first, last = low.toordinal(), high.toordinal()
        start, stop = _ceil_second(low), _ceil_second(high)
        if first == last:
            return self._day_count(first, start, stop, budget)
        total = self._day_count(first, start, _DAY_SECONDS, budget)
        total += self._day_count(last, 0, stop, budget)
        return total + self._days_count(first + 1, last, budget)

    def _days_count(self, first: int, stop: int, budget: Budget) -> int:
        """Wall times of the whole days ``[first, stop)``."""
        total = 0
        while first < stop:
            budget.spend()
            year = date.fromordinal(first).year
            year_first = first_ordinal(year)
            end = min(stop, year_first + year_length(year))
            if first == year_first and end == year_first + year_length(year):
                total += self._year_units(year, budget)
            elif self._year_has_run(year, year_first):
                table = self._table(year)
                low, high = first - year_first, end - year_first
                for offset in table[bisect_left(table, low) : bisect_left(table, high)]:
                    budget.spend()
                    total += self._unit_count(self._residue(year_first + offset), budget)
            first = end
        return total * len(self._offsets)

    def _year_units(self, year: int, budget: Budget) -> int:
        """Units with a run in a whole year: one term per residue its days take (counted once
        per kind of year and residue of 1 January)."""
        residue = self._residue(first_ordinal(year))
        key = (year_kind(year), residue)
        found = self._year_counts.get(key)
        if found is None:
            spots, units, size = self._spots(year), self._unit_residues(), self._period
            if units is not None and len(units) < len(spots):
                # Fewer residues among a day's units than among the year's days: a day with
                # residue s has the units of residue s, and s = the year's residue - its spot.
                budget.spend(len(units))
                found = sum(c * spots.get((residue - r) % size, 0) for r, c in units.items())
            else:
                found = 0
                for spot, days in spots.items():
                    budget.spend()
                    found += days * self._unit_count((residue - spot) % size, budget)
            self._year_counts[key] = found
        return found

    def _unit_residues(self) -> dict[int, int] | None:
        """How many of a day's allowed units have each residue, when there are few enough
        combinations to list (else None)."""
        if not self._units_listed:
            self._units_listed = True
            prefixes, values = self._prefix_counts, self._last_counts
            if not self._outer and not self._last:  # DAILY, WEEKLY: the day itself, at -a
                self._units_hist = {(-a) % self._period: 1 for a in self._allowed}
            elif len(prefixes) * len(values) > 4096:
                self._units_hist = None
            else:
                hist: dict[int, int] = {}
                for prefix, times in prefixes.items():
                    for value, more in values.items():
                        key = (prefix + value) % self._period
                        hist[key] = hist.get(key, 0) + times * more
                self._units_hist = hist
        return self._units_hist

    def nth(self, n: int, budget: Budget) -> datetime | None:
        start = self._parts.dtstart
        ordinal = start.toordinal()
        first_day = self._day_count(ordinal, _ceil_second(start), _DAY_SECONDS, budget)
        if n <= first_day:
            return _nth(self._walls_of_day(ordinal, _ceil_second(start), budget), n)
        n -= first_day
        ordinal += 1
        per_wall = len(self._offsets)
        while True:
            year = date.fromordinal(ordinal).year
            if ordinal == first_ordinal(year):
                n, year = self._skip_years(n, year, budget)
                if year > LAST_YEAR:
                    return None
                ordinal = first_ordinal(year)
            found = self._next_day(ordinal, budget)
            if found is None:
                return None
            in_day = self._unit_count(self._residue(found), budget) * per_wall
            if n <= in_day:
                return _nth(self._walls_of_day(found, 0, budget), n)
            n -= in_day
            ordinal = found + 1

    def _skip_years(self, n: int, year: int, budget: Budget) -> tuple[int, int]:
        """Whole years from ``year`` on that hold fewer than ``n`` wall times: the wall times
        left and the year the ``n``-th lies in (whole 400-year cycles at once when the grid
        repeats with the calendar)."""
        per_wall = len(self._offsets)
        cycle = self._cycle_units(year, budget) * per_wall
        if cycle and n > cycle:
            cycles = min((n - 1) // cycle, (LAST_YEAR - year) // 400)
            n, year = n - cycles * cycle, year + 400 * cycles
        while year <= LAST_YEAR:
            budget.spend()
            in_year = self._year_units(year, budget) * per_wall
            if n <= in_year:
                break
            n, year = n - in_year, year + 1
        return n, year

    def _cycle_units(self, year: int, budget: Budget) -> int:
        """Units with a run in 400 years from ``year``, when that does not depend on ``year``
        (the grid's residues repeat with the calendar's 146,097 days); else 0."""
        if (146097 * self._per_day) % self._period or year + 400 > LAST_YEAR:
            return 0
        if self._cycle is None:
            self._cycle = sum(self._year_units(year + i, budget) for i in range(400))
        return self._cycle


def _nth(walls: Iterator[datetime], n: int) -> datetime | None:
    for index, wall in enumerate(walls, 1):
        if index == n:
            return wall
    return None


def _ceil_second(moment: datetime) -> int:
    """Seconds into ``moment``'s day of the first whole second at or after it."""
    second = moment.hour * 3600 + moment.minute * 60 + moment.second
    return second + (1 if moment.microsecond else 0)


def _grid(parts: Parts, per_day: int) -> tuple[int, int, tuple[int, ...]]:
    """The grid's first unit, its period ``P`` (units) and the allowed places ``A`` in it."""
    start = parts.dtstart
    ordinal = start.toordinal()
    if parts.freq == WEEKLY:
        week = ordinal - (weekday(ordinal) - parts.wkst) % 7
        places = tuple(sorted({(day - parts.wkst) % 7 for day in parts.weekdays}))
        return week, 7 * parts.interval, places
    seconds = start.hour * 3600 + start.minute * 60 + start.second
    unit = seconds // (_DAY_SECONDS // per_day)
    return ordinal * per_day + unit, parts.interval, (0,)


def _unit_factors(parts: Parts) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A day's allowed units as (the sums of the coarser parts, ascending; the finest part's
    values): a SECONDLY unit is ``3600 h + 60 m + s``, so the first holds ``3600 h + 60 m``."""
    hours = parts.hours or tuple(range(24))
    minutes = parts.minutes or tuple(range(60))
    seconds = parts.seconds or tuple(range(60))
    if parts.freq == HOURLY:
        return (0,), hours
    if parts.freq == MINUTELY:
        return tuple(60 * h for h in hours), minutes
    if parts.freq == SECONDLY:
        return tuple(3600 * h + 60 * m for h in hours for m in minutes), seconds
    return (), ()


def _offsets(parts: Parts) -> tuple[int, ...]:
    """Seconds within a unit at which it runs, after BYSETPOS (which picks within the set of
    one period: a day for DAILY, an hour for HOURLY...)."""
    if parts.freq in (DAILY, WEEKLY):
        values = [
            3600 * h + 60 * m + s for h in parts.hours for m in parts.minutes for s in parts.seconds
        ]
    elif parts.freq == HOURLY:
        values = [60 * m + s for m in parts.minutes for s in parts.seconds]
    elif parts.freq == MINUTELY:
        values = list(parts.seconds)
    else:
        values = [0]
    values.sort()
    return tuple(values[t] for _, t in select([0], len(values), parts.setpos))


def _histogram(values: Iterable[int], size: int) -> dict[int, int]:
    counts: dict[int, int] = {}
    for value in values:
        counts[value % size] = counts.get(value % size, 0) + 1
    return counts


def _bits_of(values: Iterable[int]) -> int:
    bits = 0
    for value in values:
        bits |= 1 << value
    return bits


def _positions(bits: int) -> Iterator[int]:
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


def _rotate(bits: int, shift: int, size: int) -> int:
    mask = (1 << size) - 1
    return ((bits << shift) | (bits >> (size - shift))) & mask


def _sumset(a: int, b: int, size: int) -> int:
    """``{x + y mod size}`` over the members of two bitsets (rotating the denser one)."""
    if a.bit_count() > b.bit_count():
        a, b = b, a
    out = 0
    for shift in _positions(a):
        out |= _rotate(b, shift, size) if shift else b
    return out


@functools.lru_cache(maxsize=256)
def _residues(outer: tuple[int, ...], last: tuple[int, ...], size: int) -> int:
    """The residues mod ``size`` of a day's allowed units, as a bitset."""
    return _sumset(
        _bits_of(p % size for p in outer or (0,)), _bits_of(v % size for v in last), size
    )
