"""The search shared by calendar triggers: wall times from a rule -> the next instant.

A calendar rule (cron, repeat, rrule) only knows local wall-clock times. A subclass yields them
in ascending order from a start wall time; this module maps each through
:func:`~scheduler.triggers.dst.resolve_local` and returns the earliest instant strictly after
``after``. Because the DST policy may move a wall time across its neighbours (``shift``,
``both``, ``last``), the search starts early enough and stops late enough to see every wall
time that could map just past ``after``; with the default policies of cron and repeat the first
candidate is the answer.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from scheduler.errors import InvalidSchedule
from scheduler.triggers.dst import (
    DstRule,
    local_wall,
    offset_before,
    offsets_near,
    resolve_stamped,
    utc_wall,
)

__all__ = ["NeverRuns", "WallClockTrigger", "horizon", "nth", "require_aware"]


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

    __slots__ = ("_end", "_out", "_rule", "_zone")

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

    @abc.abstractmethod
    def _walls(self, start: datetime) -> Iterator[datetime]:
        """Naive wall times of the rule at or after ``start``, ascending, over a bounded span
        (each kind of rule supplies its own)."""

    def next_after(self, after: datetime) -> datetime | None:
        """The earliest run strictly after ``after`` (aware), in the job's zone, or None."""
        limit = require_aware(after)
        found = self._search(limit)
        if found is None or (self._end is not None and found.timestamp() > self._end):
            return None
        return found if self._out is self._zone else found.astimezone(self._out)

    def _search(self, limit: float) -> datetime | None:
        zone, rule = self._zone, self._rule
        best: datetime | None = None
        best_at = math.inf
        stop: datetime | None = None
        for wall in self._walls(self._start_wall(limit)):
            for at, instant in resolve_stamped(wall, zone, rule):
                if limit < at < best_at:
                    if rule.monotone:
                        return instant
                    best, best_at = instant, at
                    stop = self._stop_wall(instant, at)
            if stop is not None and wall >= stop:
                break
        return best

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


def horizon(start: datetime, years: int) -> datetime:
    """``start`` plus about ``years`` years, clamped to the last representable second."""
    try:
        return start + timedelta(days=365.25 * years)
    except OverflowError:
        return datetime.combine(date.max, time(23, 59, 59))


def nth(items: Iterable[datetime], n: int) -> datetime | None:
    """The ``n``-th item (from 1), or None when there are fewer: where COUNT ends a rule."""
    return next(itertools.islice(items, n - 1, None), None)
