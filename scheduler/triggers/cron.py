"""Cron expressions: parsed by ``cronsim`` (Debian cron semantics), searched a month at a time.

Syntax. Five fields (minute, hour, day-of-month, month, day-of-week) separated by ASCII spaces or
tabs - any other space (a no-break space, U+3000...) is refused, naming it - or a shortcut
(``@hourly``, ``@daily``/``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``/``@annually``).
Each field takes values, names (``JAN``..``DEC``, ``SUN``..``SAT``, any case), ranges ``a-b``,
steps ``*/n`` and ``a-b/n`` (n at least 1) and lists. Day-of-month also takes ``L`` (the last
day), ``LW`` (the last weekday) and ``nW`` (the weekday nearest day n, within the month, as in
Quartz: a Saturday moves to the Friday before, a Sunday to the Monday after, never across the
month's ends). Day-of-week takes ``0`` and ``7`` for Sunday, ``n#k`` (the k-th such weekday of
the month, k 1..5) and ``nL`` (the last one). A range ending on Sunday (``MON-SUN``, ``fri-sun``)
means up to Sunday. A range that runs backwards (``NOV-MAR``, ``fri-mon``, ``22-2``) is refused
with a message giving the two ranges it would mean (``NOV-DEC,JAN-MAR``): Vixie cron does not
wrap ranges either. Day-of-month and day-of-week combine with OR when neither starts with ``*``,
else with AND (Debian cron).

Evaluation. Which days of a month match depends only on the month, the weekday of its first day
and its length: there are 91 kinds of month (12 x 7, February twice). The matching days of each
kind are computed once per expression (shared by every job that uses it) and a search then goes
a month at a time. Every kind of month recurs within :data:`HORIZON_YEARS` years in the 400-year
Gregorian cycle (a test checks it), so a search that finds nothing within that horizon never
will: a cron search costs at most ``12 * HORIZON_YEARS`` month steps, and an expression that
matches no date is refused when the job is created. Counting the wall times in a span (for
catch-up and for ``repeat.count``) goes a year at a time, with whole 400-year cycles multiplied.
DST is left to :func:`~scheduler.triggers.dst.resolve_local`; tests compare the results with
cronsim's own aware iteration.
"""

from __future__ import annotations

import calendar
import functools
import itertools
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from scheduler.errors import InvalidSchedule
from scheduler.triggers.dst import CRON_FIXED, CRON_WILDCARD, DstRule
from scheduler.triggers.wallclock import WallClockTrigger

__all__ = ["ALIASES", "HORIZON_YEARS", "CronSpec", "CronTrigger", "parse_cron"]

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
    ("day-of-month", "1-31, L, LW or nW"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT (0 and 7 are Sunday), n#k or nL"),
)
_SYNTAX = "a value, *, a range a-b, a step */n or a-b/n, or a list a,b"
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES: tuple[tuple[str, ...], ...] = (
    (),
    (),
    (),
    tuple(name.upper() for name in calendar.month_abbr[1:]),
    ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"),
)
#: Every kind of month (month, weekday of the 1st, length) recurs within this many years.
HORIZON_YEARS = 40
_SEPARATOR = re.compile(r"[ \t]+")
_RANGE = re.compile(r"(\w+)-(\w+)(/\d+)?")
_NEAREST = re.compile(r"(\d{1,2})W")
_DOW, _DOM, _MONTH = 4, 2, 3
# cronsim needs some start to parse against; only the parsed fields are used.
_PARSE_START = datetime.combine(date(2000, 1, 1), time())
_TINY = timedelta(microseconds=1)
_CYCLE = 400  # years in the Gregorian cycle


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A valid cron expression: ``text`` as written (spaces normalised), ``fields`` what the
    five fields mean, in cronsim's spelling (upper case, ``MON-SUN`` as ``MON-7``)."""

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

    A date that can never occur (``0 0 30 2 *``) is rejected here or, for combinations only a
    search shows (``0 0 1 * MON#5``), by the compilation, so a stored cron job always has a
    next run.
    """
    stripped = text.strip(" \t\r\n") if isinstance(text, str) else ""
    if not stripped:
        raise InvalidSchedule(
            f"{field}: expected a cron expression like '0 9 * * 1-5' or '@daily', got {text!r}",
            field=field,
        )
    _check_spaces(stripped, field)
    normalised = " ".join(_SEPARATOR.split(stripped))
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
    parts = expanded.split(" ")
    if len(parts) != 5:
        raise InvalidSchedule(
            f"{field}: expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(parts)} in {normalised!r}",
            field=field,
        )
    fields = tuple(_normalise(index, part, field) for index, part in enumerate(parts))
    _check(fields, field)
    return CronSpec(normalised, fields)


def _check_spaces(text: str, field: str) -> None:
    """Only ASCII space and tab separate fields: anything else would be read differently by
    other cron implementations, or hide a typo."""
    for char in text:
        if char.isspace() and char not in " \t":
            name = unicodedata.name(char, "a control character")
            raise InvalidSchedule(
                f"{field}: U+{ord(char):04X} ({name}) is not a field separator; separate the "
                "fields with ASCII spaces or tabs",
                field=field,
            )


def _normalise(index: int, text: str, field: str) -> str:
    """One field in cronsim's spelling, after the checks cronsim does not make."""
    terms = []
    for written in text.upper().split(","):
        _check_step(index, written, field)
        term = _single_range(written)
        if index == _DOW:
            term = _sunday_ends(term)
        _check_order(index, term, field)
        terms.append(term)
    return ",".join(terms)


def _bad(index: int, value: str, field: str, why: str = "") -> InvalidSchedule:
    name, values = _FIELDS[index]
    reason = f"{why}; " if why else ""
    return InvalidSchedule(
        f"{field}: bad {name} field {value!r} ({reason}expected {values}; {_SYNTAX})", field=field
    )


def _check_step(index: int, term: str, field: str) -> None:
    _, slash, step = term.partition("/")
    if slash and step.isdigit() and int(step) == 0:
        raise _bad(index, term, field, "a step must be 1 or more")


def _single_range(term: str) -> str:
    """``5-5/10`` -> ``5``: cronsim reads a one-value range with a step as ``5-59/10``."""
    match = _RANGE.fullmatch(term)
    if match and match[3] and match[1] == match[2]:
        return match[1]
    return term


def _sunday_ends(term: str) -> str:
    """``MON-SUN`` -> ``MON-7`` and ``7-TUE`` -> ``0-TUE``: Sunday is 0 and 7 in day-of-week."""
    match = _RANGE.fullmatch(term)
    if match is None:
        return term
    start, end, step = match[1], match[2], match[3] or ""
    if end in {"0", "SUN"} and start not in {"0", "SUN"}:
        end = "7"
    if start == "7" and end != "7":
        start = "0"
    return f"{start}-{end}{step}"


def _value(index: int, text: str) -> int | None:
    if text.isdigit():
        return int(text)
    names = _NAMES[index]
    if text in names:
        return names.index(text) + (1 if index == _MONTH else 0)
    return None


def _check_order(index: int, term: str, field: str) -> None:
    """A range that runs backwards is refused with the two ranges it would mean."""
    match = _RANGE.fullmatch(term)
    if match is None:
        return
    start, end = _value(index, match[1]), _value(index, match[2])
    if start is None or end is None or start <= end:
        return
    low, high = _BOUNDS[index]
    if index == _DOW:
        high = 6
    top, bottom = str(high), str(low)
    if match[1].isalpha() and _NAMES[index]:
        top = _NAMES[index][high - (1 if index == _MONTH else 0)]
        bottom = _NAMES[index][low - (1 if index == _MONTH else 0)]
    step = match[3] or ""
    raise _bad(
        index,
        term,
        field,
        f"the range runs backwards; cron ranges do not wrap around, write "
        f"{match[1]}-{top}{step},{bottom}-{match[2]}{step}",
    )


def _check(fields: tuple[str, ...], field: str) -> None:
    """Name the first field cronsim rejects on its own, else the impossible date."""
    try:
        _calendar(fields)
    except CronSimError:
        pass
    else:
        return
    for index, (name, values) in enumerate(_FIELDS):
        alone = ["*"] * 5
        alone[index] = fields[index]
        try:
            _calendar(tuple(alone))
        except CronSimError:
            raise InvalidSchedule(
                f"{field}: bad {name} field {fields[index]!r} (expected {values}; {_SYNTAX})",
                field=field,
            ) from None
    raise InvalidSchedule(
        f"{field}: day-of-month {fields[2]!r} never occurs in month {fields[3]!r}", field=field
    )


@functools.lru_cache(maxsize=4096)
def _calendar(fields: tuple[str, ...]) -> _Calendar:
    return _Calendar(fields)


class _Calendar:
    """The matching wall times of one expression, month kind by month kind (see the module
    docstring); shared by every trigger of the same expression."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        plain, nearest = _split_nearest(fields[_DOM])
        sim_fields = (*fields[:_DOM], plain or "1", *fields[_DOM + 1 :])
        self._sim = CronSim(" ".join(sim_fields), _PARSE_START)
        self._plain = bool(plain)
        self._nearest = nearest
        self._and = fields[_DOM].startswith("*") or fields[_DOW].startswith("*")
        self.months = tuple(sorted(self._sim.months))
        self.times = tuple(
            time(hour, minute)
            for hour in sorted(self._sim.hours)
            for minute in sorted(self._sim.minutes)
        )
        self._kinds: dict[tuple[int, int, int], tuple[int, ...]] = {}
        self._years: dict[tuple[bool, int], int] = {}
        self._cycle: int | None = None

    # --- days --------------------------------------------------------------------------------

    def days(self, year: int, month: int) -> tuple[int, ...]:
        """The matching days of a month (empty for a month not in the month field)."""
        first, length = calendar.monthrange(year, month)
        key = (month, first, length)
        found = self._kinds.get(key)
        if found is None:
            found = self._kinds[key] = self._match_month(year, month, length)
        return found

    def _match_month(self, year: int, month: int, length: int) -> tuple[int, ...]:
        if month not in self.months:
            return ()
        return tuple(day for day in range(1, length + 1) if self._matches(date(year, month, day)))

    def _matches(self, day: date) -> bool:
        dom = (self._plain and self._sim.match_dom(day)) or any(
            _nearest_weekday(day.year, day.month, n) == day.day for n in self._nearest
        )
        dow = self._sim.match_dow(day)
        return (dom and dow) if self._and else (dom or dow)

    # --- searching ---------------------------------------------------------------------------

    def walls(self, start: datetime) -> Iterator[datetime]:
        """Matching wall times at or after ``start``, ascending, up to the horizon."""
        times = self.times
        year, month, day = start.year, start.month, start.day
        first_time = bisect_left(times, start.time())
        last_year = min(year + HORIZON_YEARS + 1, date.max.year)
        while year <= last_year:
            for found in self.days(year, month):
                if found < day:
                    continue
                moments = times[first_time:] if found == day else times
                day_of = date(year, month, found)
                for moment in moments:
                    yield datetime.combine(day_of, moment)
            day, first_time = 0, 0
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    # --- counting ----------------------------------------------------------------------------

    def count(self, low: datetime, high: datetime) -> int:
        """Matching wall times in ``[low, high)``."""
        if high <= low:
            return 0
        if low.year == high.year:
            return self._from(low) - self._from(high)
        total = self._from(low) + self.year_count(high.year) - self._from(high)
        full = high.year - low.year - 1
        cycles, rest = divmod(full, _CYCLE)
        if cycles:
            total += cycles * self._cycle_count()
        return total + sum(self.year_count(low.year + 1 + i) for i in range(rest))

    def year_count(self, year: int) -> int:
        key = (calendar.isleap(year), calendar.weekday(year, 1, 1))
        found = self._years.get(key)
        if found is None:
            found = self._years[key] = len(self.times) * sum(
                len(self.days(year, month)) for month in self.months
            )
        return found

    def _cycle_count(self) -> int:
        if self._cycle is None:
            self._cycle = sum(self.year_count(2000 + i) for i in range(_CYCLE))
        return self._cycle

    def _from(self, wall: datetime) -> int:
        """Matching wall times in ``wall``'s year at or after ``wall``."""
        times = self.times
        total = 0
        for month in self.months:
            if month < wall.month:
                continue
            days = self.days(wall.year, month)
            if month > wall.month:
                total += len(days) * len(times)
                continue
            total += sum(1 for day in days if day > wall.day) * len(times)
            if wall.day in days:
                total += len(times) - bisect_left(times, wall.time())
        return total

    def nth(self, first: datetime, n: int) -> datetime | None:
        """The ``n``-th matching wall time (from 1) at or after ``first``, or None."""
        in_first = self._from(first)
        if n > in_first:
            n -= in_first
            year = first.year + 1
            while year <= date.max.year and n > self.year_count(year):
                n -= self.year_count(year)
                year += 1
            if year > date.max.year:
                return None
            first = datetime.combine(date(year, 1, 1), time())
        return next(itertools.islice(self.walls(first), n - 1, None), None)


def _split_nearest(text: str) -> tuple[str, tuple[int, ...]]:
    """Day-of-month terms cronsim reads, and the days of the ``nW`` terms (which it does not)."""
    plain, nearest = [], []
    for term in text.split(","):
        match = _NEAREST.fullmatch(term)
        if match is None:
            plain.append(term)
        elif 1 <= int(match[1]) <= 31:
            nearest.append(int(match[1]))
        else:
            raise CronSimError("Bad day-of-month")
    return ",".join(plain), tuple(nearest)


def _nearest_weekday(year: int, month: int, day: int) -> int | None:
    """Quartz's ``nW``: the weekday nearest ``day``, within the month; None if it has no such
    day."""
    first, length = calendar.monthrange(year, month)
    if day > length:
        return None
    weekday = (first + day - 1) % 7
    if weekday == 5:  # Saturday: the Friday before, or the Monday after the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before the last day
        return day + 1 if day < length else day - 2
    return day


class CronTrigger(WallClockTrigger):
    """Runs at the wall times a cron expression matches, in the job's zone.

    ``first``, ``until`` (wall times, inclusive) and ``count`` bound the wall times; they serve
    ``repeat`` patterns that a cron expression can state (see :mod:`.repeat`).
    """

    __slots__ = ("_cal", "_count", "_first", "_last", "_until")

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
        self._cal = _calendar(spec.fields)
        self._first = first
        self._until = until
        self._count = count
        self._last: tuple[datetime | None] | None = None

    def _walls(self, start: datetime) -> Iterator[datetime]:
        if self._first is not None and start < self._first:
            start = self._first
        last = self._last_wall()
        if last is None:
            return self._cal.walls(start)
        return itertools.takewhile(last.__ge__, self._cal.walls(start))

    def _count_walls(self, low: datetime, high: datetime) -> int:
        if self._first is not None:
            low = max(low, self._first)
        last = self._last_wall()
        if last is not None:
            high = min(high, last + _TINY)
        return self._cal.count(low, high)

    def _last_wall(self) -> datetime | None:
        """``until``, or the ``count``-th wall time from ``first`` if earlier (counted once)."""
        if self._count is None:
            return self._until
        if self._last is None:
            self._last = (self._cal.nth(self._first or _PARSE_START, self._count),)
        counted = self._last[0]
        if counted is None or self._until is None:
            return counted or self._until
        return min(counted, self._until)
