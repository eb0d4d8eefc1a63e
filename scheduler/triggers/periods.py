"""YEARLY, MONTHLY and WEEKLY-with-BYSETPOS rules, a whole period at a time.

Each period of the INTERVAL grid (a year, a month, a week from WKST; the first period starts at
DTSTART's year, month or day, as dateutil's does) is expanded to its days that pass the day
parts, times the times of day, and BYSETPOS picks among that set. What a year or a month yields
depends only on its kind (a year's on its leap-ness and the weekday of 1 January, with the
neighbouring years' leap-ness under BYWEEKNO; a month's on its number, the weekday of its first
day and its length), so each kind is expanded once and skipping an empty period costs one
look-up: a search costs a step per period, within the ~8,000 years to 9999 for YEARLY, and a
period of a kind that yields nothing recurs at most 400 years (4,800 months) apart. A WEEKLY
rule with BYMONTH jumps from a week outside those months to the next such month.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterator
from datetime import date, datetime, time

from scheduler.triggers.recur import (
    LAST_YEAR,
    MONTHLY,
    WEEKLY,
    YEARLY,
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

__all__ = ["PeriodRule"]

_LAST_DAY = date.max.toordinal()


class PeriodRule:
    """The wall times of a YEARLY, MONTHLY, or WEEKLY-with-BYSETPOS rule (see the module
    docstring)."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._test = DayTest(parts)
        self._times = parts.times()
        self._kinds: dict[tuple[int, ...], tuple[tuple[int, int], ...]] = {}
        start = parts.dtstart
        step = parts.interval
        # Periods of one kind recur with the 400-year cycle (400 years, 4,800 months, 20,871
        # weeks): after a whole cycle of the grid without a run there is never one.
        cycle = {YEARLY: 400, MONTHLY: 4800}.get(parts.freq, 20871)
        self._cycle = cycle // math.gcd(cycle, step)
        if parts.freq == WEEKLY and not parts.months:
            self._cycle = 2  # every whole week is alike: the first (partial) one, then one more
        # Whether no period yields a run (None: not known yet). For WEEKLY: BYSETPOS beyond
        # the size of a whole week's set picks nothing in any week.
        self._dead: bool | None = None
        if parts.freq == WEEKLY:
            self._dead = not select(list(parts.weekdays), len(self._times), parts.setpos)
        self._year_runs: dict[tuple[tuple[int, ...], int], int] = {}
        if parts.freq == YEARLY:
            self._origin, self._step = start.year, step
        elif parts.freq == MONTHLY:
            self._origin, self._step = start.year * 12 + start.month - 1, step
        else:
            ordinal = start.toordinal()
            self._origin = ordinal - (weekday(ordinal) - parts.wkst) % 7
            self._step = 7 * step

    # --- periods ----------------------------------------------------------------------------

    def _period_of(self, moment: datetime) -> int:
        if self._parts.freq == YEARLY:
            return moment.year
        if self._parts.freq == MONTHLY:
            return moment.year * 12 + moment.month - 1
        ordinal = moment.toordinal()
        return ordinal - (weekday(ordinal) - self._parts.wkst) % 7

    def _aligned(self, index: int) -> int:
        """The first period of the grid at or after ``index``."""
        if index <= self._origin:
            return self._origin
        return self._origin - (self._origin - index) // self._step * self._step

    def _span(self, index: int) -> tuple[int, int] | None:
        """The period's first and last day (ordinals), or None past year 9999."""
        if self._parts.freq == YEARLY:
            if index > LAST_YEAR:
                return None
            first = first_ordinal(index)
            return first, first + year_length(index) - 1
        if self._parts.freq == MONTHLY:
            year, month = divmod(index, 12)
            if year > LAST_YEAR:
                return None
            first = date(year, month + 1, 1).toordinal()
            return first, first + calendar.monthrange(year, month + 1)[1] - 1
        if index > _LAST_DAY:
            return None
        first = max(index, self._parts.dtstart.toordinal()) if index == self._origin else index
        return first, min(index + 6, _LAST_DAY)

    def _chosen(self, index: int, span: tuple[int, int]) -> tuple[tuple[int, int], ...]:
        """The period's runs, as (day ordinal, index into the times of day), ascending."""
        first, last = span
        freq = self._parts.freq
        kind: tuple[int, ...] | None = None
        if freq == YEARLY:
            kind = year_kind(index, neighbours=bool(self._parts.weeknos))
        elif freq == MONTHLY:
            kind = (index % 12, weekday(first), last - first)
        elif index != self._origin:  # a whole week: its days' months are all that matter
            day = date.fromordinal(first)
            split = calendar.monthrange(day.year, day.month)[1] - day.day + 1
            kind = (day.month, min(split, 7))
        found = self._kinds.get(kind) if kind is not None else None
        if found is None:
            days = self._days(first, last)
            picked = select(days, len(self._times), self._parts.setpos)
            found = tuple((days[day] - first, moment) for day, moment in picked)
            if kind is not None:
                self._kinds[kind] = found
        return tuple((first + offset, moment) for offset, moment in found)

    def _never(self) -> bool:
        """Whether no kind of period yields a run at all (checked once, when a search has met
        a run of empty periods): then the rule has no run left, without a cycle's search."""
        if self._dead is None:
            freq = self._parts.freq
            if freq == YEARLY:
                # 2000-2399 holds every kind of year, with every kind of neighbour.
                spans = [(year, self._span(year)) for year in range(2000, 2400)]
            else:  # 2000-2027 holds every kind of month
                spans = [(index, self._span(index)) for index in range(24000, 24336)]
            self._dead = not any(
                self._chosen(index, span) for index, span in spans if span is not None
            )
        return self._dead

    def _days(self, first: int, last: int) -> list[int]:
        days: list[int] = []
        while first <= last:
            info = year_info(date.fromordinal(first).year)
            end = min(last, info.first + info.length - 1)
            days += self._test.days(info, first, end)
            first = end + 1
        return days

    def _following(self, index: int, span: tuple[int, int], empty: bool) -> int:
        """The next period to look at; a WEEKLY rule with BYMONTH skips to its next month."""
        if empty and self._parts.freq == WEEKLY and self._parts.months:
            after = date.fromordinal(min(span[1] + 1, _LAST_DAY))
            year, month = after.year, after.month
            for _ in range(12):
                if month in self._parts.months:
                    break
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            if year > LAST_YEAR:
                return _LAST_DAY + 1
            target = max(date(year, month, 1).toordinal(), span[1] + 1)
            return self._aligned(target - (weekday(target) - self._parts.wkst) % 7)
        return index + self._step

    def _periods(
        self, start: datetime, budget: Budget
    ) -> Iterator[tuple[int, tuple[tuple[int, int], ...]]]:
        """Each period's first day and runs, from the period holding ``start`` on."""
        index = self._aligned(self._period_of(start))
        empty = 0
        while not self._dead and (span := self._span(index)) is not None and empty <= self._cycle:
            budget.spend()
            chosen = self._chosen(index, span)
            empty = 0 if chosen else empty + 1
            if empty == 30 and self._parts.freq != WEEKLY and self._never():
                return
            yield span[0], chosen
            index = self._following(index, span, not chosen)

    def _wall(self, run: tuple[int, int]) -> datetime:
        return datetime.combine(date.fromordinal(run[0]), self._times[run[1]])

    # --- the Expansion interface ---------------------------------------------------------------

    def walls(self, start: datetime, budget: Budget) -> Iterator[datetime]:
        start = max(start, self._parts.dtstart)
        for _, chosen in self._periods(start, budget):
            for run in chosen:
                wall = self._wall(run)
                if wall >= start:
                    yield wall

    def count(self, low: datetime, high: datetime, budget: Budget) -> int:
        low = max(low, self._parts.dtstart)
        if high <= low:
            return 0
        total, stop = 0, high.toordinal()
        for first, chosen in self._periods(low, budget):
            if first > stop:
                break
            total += sum(1 for run in chosen if low <= self._wall(run) < high)
        return total

    def nth(self, n: int, budget: Budget) -> datetime | None:
        start = self._parts.dtstart
        bounded = self._parts.freq != WEEKLY
        for first, chosen in self._periods(start, budget):
            runs = [run for run in chosen if self._wall(run) >= start]
            if n <= len(runs):
                return self._wall(runs[n - 1])
            n -= len(runs)
            if not bounded and runs and first >= self._origin + self._step:
                bounded = True  # a whole week has runs: see _weekly_steps
                budget.require(self._weekly_steps(n, first))
            # After the year's last month on the grid, skip whole years (not only after a
            # December: with INTERVAL=2 from an odd month, December is never on the grid).
            if self._parts.freq == MONTHLY and date.fromordinal(first).month + self._step > 12:
                n, year = self._skip_years(n, date.fromordinal(first).year + 1, budget)
                if year > LAST_YEAR:
                    return None
                if year > date.fromordinal(first).year + 1:
                    return self.nth_from(n, datetime.combine(date(year, 1, 1), time()), budget)
        return None

    def _weekly_steps(self, n: int, first: int) -> int:
        """WEEKLY: a lower bound on the steps (weeks) a COUNT search still takes after the
        whole week starting on ``first``, which had runs. Week kinds recur with the grid's
        cycle, so no run of empty weeks ends the search: it visits every week of the grid
        (with BYMONTH, at least every one starting in a BYMONTH month) until it has seen
        ``n`` more runs, at most one per BYSETPOS position a week, or reached year 9999."""
        to_count = -(-n // len(self._parts.setpos))
        if not self._parts.months:
            return min(to_count, (_LAST_DAY - first) // self._step)
        # Every week of the grid that overlaps a stretch of consecutive BYMONTH months is
        # visited: at least (its shortest length, February 28 days, + the 6 days before it
        # in which such a week may start) // the grid's step of them each whole year.
        per_year = sum(days // self._step for days in _month_stretches(self._parts.months))
        return min(to_count, per_year * (LAST_YEAR - date.fromordinal(first).year - 1))

    def nth_from(self, n: int, start: datetime, budget: Budget) -> datetime | None:
        """The ``n``-th run from ``start`` on (``start`` a period boundary after DTSTART)."""
        for _, chosen in self._periods(start, budget):
            if n <= len(chosen):
                return self._wall(chosen[n - 1])
            n -= len(chosen)
        return None

    def _skip_years(self, n: int, year: int, budget: Budget) -> tuple[int, int]:
        """MONTHLY: whole years from ``year`` on with fewer than ``n`` runs; the runs left and
        the year the ``n``-th lies in (a year's runs counted once per kind of year and phase of
        the grid)."""
        while year <= LAST_YEAR:
            budget.spend()
            phase = (year * 12 - self._origin) % self._step
            key = (year_kind(year), phase)
            runs = self._year_runs.get(key)
            if runs is None:
                months = [
                    year * 12 + m
                    for m in range(12)
                    if (year * 12 + m - self._origin) % self._step == 0
                ]
                runs = 0
                for index in months:
                    span = self._span(index)
                    if span is not None:
                        runs += len(self._chosen(index, span))
                self._year_runs[key] = runs
            if n <= runs:
                break
            n, year = n - runs, year + 1
        return n, year


#: The shortest length of each month (February: 28 days).
_SHORTEST = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _month_stretches(months: tuple[int, ...]) -> list[int]:
    """For each stretch of consecutive ``months`` within a year, the days in which a week
    overlapping it may start: its shortest length, and the 6 days before it unless they lie
    in a stretch too (a stretch from January after a December one)."""
    stretches: list[int] = []
    previous = -1
    for month in sorted(months):
        if month == previous + 1 and stretches:
            stretches[-1] += _SHORTEST[month - 1]
        else:
            before = 0 if month == 1 and 12 in months else 6
            stretches.append(before + _SHORTEST[month - 1])
        previous = month
    return stretches
