"""The search shared by calendar triggers: wall times from a rule -> the next instant.

A calendar rule (cron, repeat, rrule) only knows local wall-clock times. A subclass yields them
in ascending order from a start wall time; this module maps each through
:func:`~scheduler.triggers.dst.resolve_local` and returns the earliest instant strictly after
``after``. Because the DST policy may move a wall time across its neighbours (``shift``,
``both``, ``last``), the search starts early enough and stops late enough to see every wall
time that could map just past ``after``; with the default policies of cron and repeat the first
candidate is the answer. Within a day of an offset change the runs of the wall times around it
are resolved once and kept (:meth:`WallClockTrigger._search_near_change`), so that a per-second
rule does not resolve thousands of wall times on each query there.

Catch-up needs two more questions answered without walking every occurrence (see
:mod:`scheduler.engine.misfire`): :meth:`WallClockTrigger.latest` (the last run in a span, by
bisection over ``next_after``: O(log n) queries) and :meth:`WallClockTrigger.count` (the runs
in a span: the rule counts its wall times arithmetically, and only the wall times around the
zone's offset changes are resolved one by one).
"""

from __future__ import annotations

import abc
import itertools
import math
from bisect import bisect_right
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from scheduler.errors import InvalidSchedule
from scheduler.model import DstFold, DstGap
from scheduler.triggers.dst import (
    DstRule,
    OffsetChange,
    local_wall,
    offset_before,
    offset_changes,
    offsets_near,
    resolve_stamped,
    utc_wall,
)
from scheduler.triggers.recur import TooCostly

__all__ = [
    "EXACT_YEARS",
    "NeverRuns",
    "Tally",
    "WallClockTrigger",
    "last_run",
    "require_aware",
]

#: Longest span whose runs :meth:`WallClockTrigger.count` counts exactly; a longer one is
#: counted over its first EXACT_YEARS years and reported as a lower bound.
EXACT_YEARS = 50
_EXACT_SPAN = EXACT_YEARS * 365.2425 * 86400
#: Most wall times one count resolves one by one around offset changes (a per-minute rule has
#: 180 around each pair of changes of an hour, a per-second rule 10,800); past it the count is
#: a lower bound.
WINDOW_BUDGET = 8192
_TINY = timedelta(microseconds=1)
_DAY = 86400.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Tally(NamedTuple):
    """How many runs a span holds: ``runs`` is exact, or a lower bound when ``exact`` is false."""

    runs: int
    exact: bool = True


class NeverRuns(InvalidSchedule):
    """A calendar rule with no run at all (from its start, before its end).

    For ``repeat`` and an RRULE without DTSTART this depends on the creation instant (an
    INTERVAL phase can miss every matching date), so validation without one may ignore it.
    """


def require_aware(after: datetime) -> float:
    """``after`` as epoch seconds; a naive datetime is a programming error, not a local time."""
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError(f"next_after needs an aware datetime, got naive {after.isoformat()}")
    return after.timestamp()


class WallClockTrigger(abc.ABC):
    """Instants of the wall times a calendar rule yields in ``zone``, rendered in ``out``.

    ``zone`` is where the rule reads its wall times (the job's zone, or UTC / a TZID named by
    an RRULE's DTSTART); ``out`` is the job's zone, used for the returned datetimes. ``end``
    (epoch seconds, inclusive) bounds the instants, for an RRULE whose UNTIL is in UTC.
    """

    __slots__ = ("_end", "_near", "_out", "_rule", "_zone")

    def __init__(
        self,
        zone: ZoneInfo,
        rule: DstRule,
        *,
        out: ZoneInfo | None = None,
        end: float | None = None,
    ) -> None:
        self._zone = zone
        self._rule = rule
        self._out = out or zone
        self._end = end
        self._near: tuple[float, tuple[list[float], list[datetime]]] | None = None

    @abc.abstractmethod
    def _walls(self, start: datetime) -> Iterator[datetime]:
        """Naive wall times of the rule at or after ``start``, ascending, over a bounded span
        (each kind of rule supplies its own)."""

    @abc.abstractmethod
    def _count_walls(self, low: datetime, high: datetime) -> int:
        """How many wall times of the rule lie in ``[low, high)`` (naive), without listing
        them; 0 when ``high <= low``."""

    def first_run(self, created: datetime) -> datetime | None:
        """The first run of a job created at ``created``: the first after it."""
        return self.next_after(created)

    def latest(self, since: datetime, until: datetime) -> datetime | None:
        """The last run in ``[since, until]``, or None (see :func:`last_run`)."""
        return last_run(self.next_after, since, until)

    def count(self, after: datetime, until: datetime) -> Tally:
        """The runs in ``(after, until]``.

        Away from the zone's offset changes each wall time is one run, so the rule counts its
        wall times arithmetically; the wall times near each change (see :func:`_windows`:
        where the DST policy may merge, drop, move or double them) are resolved and
        deduplicated one by one. Exact unless the span is longer than
        :data:`EXACT_YEARS` or holds more than :data:`WINDOW_BUDGET` wall times near changes;
        then a lower bound.
        """
        low, high = require_aware(after), require_aware(until)
        if self._end is not None:
            high = min(high, self._end)
        exact = high - low <= _EXACT_SPAN
        high = min(high, low + _EXACT_SPAN)
        if high <= low:
            return Tally(0, exact)
        try:
            return self._count_span(low, high, exact=exact)
        except TooCostly:
            # Past the step budget (a per-second rule over decades, say): the runs of the first
            # year are a lower bound; none if even that is too much.
            year = min(high, low + 365 * _DAY)
            try:
                return self._count_span(low, year, exact=False)
            except TooCostly:
                return Tally(0, False)

    def _count_span(self, low: float, high: float, *, exact: bool) -> Tally:
        wall_low = local_wall(low, self._zone) + _TINY
        wall_high = local_wall(high, self._zone) + _TINY
        total = self._count_walls(wall_low, wall_high)
        seen: set[float] = set()
        budget = WINDOW_BUDGET
        changes = offset_changes(self._zone, low - _DAY, high + _DAY)
        windows = _windows(changes)
        alone = len(windows) == len(changes)  # no two changes' windows overlap
        for change, (start, stop) in zip(changes, windows, strict=False):
            total -= self._count_walls(max(start, wall_low), min(stop, wall_high))
            width = abs(change.after - change.before).total_seconds()
            inside = low < change.at - width and change.at + width <= high
            runs = self._window_runs(change, start, stop, budget) if alone and inside else None
            if runs is not None:
                total, budget = total + runs[0], budget - runs[1]
                continue
            size = self._count_walls(start, stop)
            if size > budget:
                exact = False
                continue
            budget -= size
            # Exactly the window's wall times: no search past the window for the next one.
            for wall in itertools.islice(self._walls(start), size):
                seen.update(
                    at
                    for at, _ in resolve_stamped(wall, self._zone, self._rule)
                    if low < at <= high
                )
        return Tally(total + len(seen), exact)

    def _window_runs(
        self, change: OffsetChange, start: datetime, stop: datetime, budget: int
    ) -> tuple[int, int] | None:
        """How many runs the wall times of a change's window give, without resolving them one
        by one, and how many wall times that listed; None if that would list more than
        ``budget``."""
        if change.after < change.before:  # a fold: its wall times run once, or twice (both)
            both = self._rule.fold is DstFold.BOTH
            return self._count_walls(start, stop) * (2 if both else 1), 0
        width = change.after - change.before
        gap_end = start + width
        in_gap = self._count_walls(start, gap_end)
        real = self._count_walls(gap_end, stop)
        if not in_gap or self._rule.gap is DstGap.SKIP:
            return real, 0
        if self._rule.gap is DstGap.NEXT:  # all run at the gap's end, as its first real time
            return real + (self._count_walls(gap_end, gap_end + _TINY) == 0), 0
        if in_gap + real > budget:
            return None
        # shift: a gap wall time runs at the real wall time one gap later; shared runs count once
        moved = {wall + width for wall in itertools.islice(self._walls(start), in_gap)}
        shared = sum(1 for wall in itertools.islice(self._walls(gap_end), real) if wall in moved)
        return in_gap + real - shared, in_gap + real

    def next_after(self, after: datetime) -> datetime | None:
        """The earliest run strictly after ``after`` (aware), in the job's zone, or None."""
        limit = require_aware(after)
        found = self._search(limit)
        if found is None or (self._end is not None and found.timestamp() > self._end):
            return None
        return found if self._out is self._zone else found.astimezone(self._out)

    def _search(self, limit: float) -> datetime | None:
        rule = self._rule
        if rule.reaches_back or not rule.monotone:
            smallest, largest = offsets_near(limit, self._zone)
            if smallest != largest:  # an offset change within a day
                return self._search_near_change(limit)
        return self._scan(limit, self._start_wall(limit))

    def _scan(self, limit: float, start: datetime) -> datetime | None:
        """The earliest run after ``limit`` among the wall times from ``start`` on, read one
        by one (and past the first candidate only as far as an earlier run is possible)."""
        zone, rule = self._zone, self._rule
        best: datetime | None = None
        best_at = math.inf
        stop: datetime | None = None
        for wall in self._walls(start):
            for at, instant in resolve_stamped(wall, zone, rule):
                if limit < at < best_at:
                    if rule.monotone:
                        return instant
                    best, best_at = instant, at
                    stop = self._stop_wall(instant, at)
            if stop is not None and wall >= stop:
                break
        return best

    def _search_near_change(self, limit: float) -> datetime | None:
        """The search within a day of an offset change, for a policy that may reorder runs
        there. Before and after the change's window (see :func:`_windows`) each wall time is
        one run, in order; the window's runs are resolved once and kept, so that a per-second
        rule does not resolve thousands of wall times on every query near the change."""
        changes = offset_changes(self._zone, limit - 2 * _DAY, limit + 2 * _DAY)
        if len(changes) != 1:
            return self._scan(limit, self._start_wall(limit))
        change = changes[0]
        [(start, stop)] = _windows(changes)
        before = utc_wall(limit) + change.before
        if before < start:  # the first later wall time may come before the window
            wall = next(iter(self._walls(before + _TINY)), None)
            if wall is None or wall < start:
                return self._regular(wall)
        after = utc_wall(limit) + change.after
        if after < stop:  # the answer may be among the window's runs
            window = self._change_window(change, start, stop)
            if window is None:
                return self._scan(limit, self._start_wall(limit))
            stamps, instants = window
            index = bisect_right(stamps, limit)
            if index < len(stamps):
                return instants[index]
        wall = next(iter(self._walls(max(stop, after + _TINY))), None)
        if wall is None or wall < stop + timedelta(days=1):  # still one offset, one run each
            return self._regular(wall)
        return self._scan(limit, wall)  # far on, maybe near another change

    def _regular(self, wall: datetime | None) -> datetime | None:
        """The run of a wall time away from offset changes (it has exactly one)."""
        if wall is None:
            return None
        [(_, instant)] = resolve_stamped(wall, self._zone, self._rule)
        return instant

    def _change_window(
        self, change: OffsetChange, start: datetime, stop: datetime
    ) -> tuple[list[float], list[datetime]] | None:
        """The runs of the wall times in ``[start, stop)`` around ``change``, by instant (kept
        for the last change asked about); None when there are too many to keep."""
        if self._near is not None and self._near[0] == change.at:
            return self._near[1]
        size = self._count_walls(start, stop)
        if size > 2 * WINDOW_BUDGET:
            return None
        runs = {
            at: instant
            for wall in itertools.islice(self._walls(start), size)
            for at, instant in resolve_stamped(wall, self._zone, self._rule)
        }
        stamps = sorted(runs)
        window = (stamps, [runs[at] for at in stamps])
        self._near = (change.at, window)
        return window

    def _start_wall(self, limit: float) -> datetime:
        """The first wall time whose instant may lie after ``limit``.

        Normally the wall time of ``limit`` itself. When the policy reaches back (``shift``,
        ``last``, ``both``) an earlier wall time may map past ``limit``; reading ``limit`` with
        the smallest offset in force nearby starts early enough for any nearby change.
        """
        if not self._rule.reaches_back:
            return local_wall(limit, self._zone)
        smallest, _ = offsets_near(limit, self._zone)
        return utc_wall(limit) + smallest

    def _stop_wall(self, found: datetime, at: float) -> datetime:
        """A wall time from which no instant can come before ``found`` (at epoch ``at``).

        A later wall time ``w`` maps no earlier than ``w`` minus the largest offset in force
        shortly before ``found`` (a wall time mapping earlier would need a larger offset there).
        Away from offset changes that is the wall time of ``found`` itself, so the search
        stops without reading further.
        """
        return utc_wall(at) + offset_before(found, self._zone)


def last_run(
    next_after: Callable[[datetime], datetime | None], since: datetime, until: datetime
) -> datetime | None:
    """The last run in ``[since, until]`` of a trigger, by bisection over its ``next_after``.

    Each round either moves the known run past the middle of what is left or halves what is
    left, so a span of n runs costs O(log n) queries (about 2 log2(n) + 2). Instants are
    compared in whole microseconds, so no rounding can step over a run.
    """
    found = next_after(since - _TINY)
    high = _micros(until)
    if found is None or _micros(found) > high:
        return None
    while True:
        following = next_after(found)
        if following is None or _micros(following) > high:
            return found
        found = following
        low = _micros(found)
        middle = low + (high - low) // 2
        probe = next_after(_EPOCH + timedelta(microseconds=middle))
        if probe is not None and _micros(probe) <= high:
            found = probe
        else:
            high = middle


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _TINY


def _windows(changes: list[OffsetChange]) -> list[tuple[datetime, datetime]]:
    """Wall-time spans around offset changes where a wall time may not be exactly one run in
    order, merged where they overlap: a fold's wall times (they occur twice), and a gap's wall
    times (they never occur) followed by as long a span of real ones (where ``next`` and
    ``shift`` move the gap's runs, so that two wall times may share a run or swap order)."""
    spans: list[tuple[datetime, datetime]] = []
    for change in changes:
        moment = utc_wall(change.at)
        width = abs(change.after - change.before)
        if change.after > change.before:  # a gap: walls [T + before, T + after) do not exist
            start, stop = moment + change.before, moment + change.after + width
        else:  # a fold: walls [T + after, T + before) occur twice
            start, stop = moment + change.after, moment + change.before
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(stop, spans[-1][1]))
        else:
            spans.append((start, stop))
    return spans
