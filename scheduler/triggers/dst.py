"""The one place that decides what a local wall time means on a daylight-saving day.

Calendar rules (cron, repeat, rrule, ``at``) produce *wall-clock* times: naive datetimes read in
the job's zone. :func:`resolve_local` turns each into zero, one or two instants, and nothing
else in the package makes that decision.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from scheduler.model import DstFold, DstGap, DstPolicy

__all__ = [
    "AT",
    "CRON_FIXED",
    "CRON_WILDCARD",
    "REPEAT",
    "RRULE",
    "DstRule",
    "OffsetChange",
    "local_wall",
    "offset_before",
    "offset_changes",
    "offsets_near",
    "resolve_local",
    "resolve_stamped",
    "utc_wall",
    "wall_spot",
    "with_override",
]

_DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - naive on purpose: wall - offset - epoch = seconds


class DstRule(NamedTuple):
    """What to do with a wall time that falls in a spring-forward gap or a fall-back fold."""

    gap: DstGap
    fold: DstFold

    @property
    def monotone(self) -> bool:
        """True when later wall times never map to earlier instants.

        ``shift`` puts a gap time after wall times that follow it (02:30 -> 03:30 while 03:10
        stays 03:10) and ``both`` emits a fold time twice; every other combination keeps the
        order, so the first wall time past ``after`` is the answer.
        """
        return self.gap is not DstGap.SHIFT and self.fold is not DstFold.BOTH

    @property
    def reaches_back(self) -> bool:
        """True when a wall time *before* the wall time of ``after`` may map past ``after``.

        ``shift`` moves a gap time forward by the gap's length and ``last``/``both`` read a fold
        time with the later (smaller) offset; ``next`` and ``first`` never move a time forward
        past a later wall time.
        """
        return self.gap is DstGap.SHIFT or self.fold is not DstFold.FIRST


#: Debian cron's rule for a fixed time: a gap time runs when the gap ends, a fold time once.
CRON_FIXED = DstRule(DstGap.NEXT, DstFold.FIRST)
#: Debian cron's rule when the minute or hour field is a wildcard: every real occurrence.
CRON_WILDCARD = DstRule(DstGap.SKIP, DstFold.BOTH)
#: ``repeat`` and ``at`` follow cron's fixed-time rule.
REPEAT = CRON_FIXED
AT = CRON_FIXED
#: RFC 5545 3.3.5: a gap time is read with the offset before the gap, a fold time is the first.
RRULE = DstRule(DstGap.SHIFT, DstFold.FIRST)


def with_override(default: DstRule, override: DstPolicy | None) -> DstRule:
    """``default`` with whichever of ``gap`` / ``fold`` the job's ``dst`` option sets."""
    if override is None:
        return default
    return DstRule(override.gap or default.gap, override.fold or default.fold)


def resolve_local(wall: datetime, tz: ZoneInfo, rule: DstRule) -> tuple[datetime, ...]:
    """The instants (aware, in ``tz``, ascending) at which the naive wall time ``wall`` runs.

    Policy, applied only where the zone's offset changes:

    - A wall time that occurs once is that instant, whatever the rule.
    - In a spring-forward **gap** (the wall time never occurs):
      ``next`` runs at the first instant after the gap, which is the transition itself
      (02:30 on a 02:00->03:00 day runs at 03:00; several gap times thus share one instant and
      a trigger, asking for instants strictly after the last, runs it once);
      ``shift`` reads the time with the offset in force before the gap, as RFC 5545 does
      (02:30 -> 03:30); ``skip`` does not run it.
    - In a fall-back **fold** (the wall time occurs twice): ``first`` runs at the earlier
      occurrence, ``last`` at the later, ``both`` at each.

    Defaults by kind: cron with fixed minute and hour, ``repeat`` and ``at`` use ``next`` +
    ``first`` (Debian cron); cron whose minute or hour field starts with ``*`` uses ``skip`` +
    ``both`` (every real occurrence, as Debian cron runs wildcard jobs); ``rrule`` uses
    ``shift`` + ``first`` (RFC 5545). A job's ``dst`` option overrides either half.
    """
    return tuple(instant for _, instant in resolve_stamped(wall, tz, rule))


def resolve_stamped(
    wall: datetime, tz: ZoneInfo, rule: DstRule
) -> tuple[tuple[float, datetime], ...]:
    """:func:`resolve_local` with each instant's epoch seconds (what searches compare).

    Kept cheap for the common case: a wall time away from any change costs two offset
    look-ups on naive values and one datetime.
    """
    early_offset = _offset(tz, wall)
    late_offset = _offset(tz, _with_fold(wall, 1))
    if early_offset == late_offset:
        return (_stamped(wall, early_offset, tz, 0),)
    if early_offset > late_offset:  # fold: fold=0 carries the earlier, larger offset (PEP 495)
        if rule.fold is DstFold.FIRST:
            return (_stamped(wall, early_offset, tz, 0),)
        if rule.fold is DstFold.LAST:
            return (_stamped(wall, late_offset, tz, 1),)
        return (_stamped(wall, early_offset, tz, 0), _stamped(wall, late_offset, tz, 1))
    # gap: fold=0 reads the time with the offset before the transition (PEP 495)
    if rule.gap is DstGap.SKIP:
        return ()
    if rule.gap is DstGap.SHIFT:
        stamp = (wall - early_offset - _EPOCH).total_seconds()
        return ((stamp, datetime.fromtimestamp(stamp, tz)),)
    stamp = _transition(wall, tz, early_offset, late_offset)
    return ((stamp, datetime.fromtimestamp(stamp, tz)),)


def wall_spot(wall: datetime, tz: ZoneInfo) -> Literal["gap", "fold"] | None:
    """Where the naive wall time ``wall`` stands in ``tz``: ``"gap"`` when it never occurs
    (spring forward), ``"fold"`` when it occurs twice (fall back), None when it occurs once:
    the cases :func:`resolve_local` tells apart, as a question (explain asks it of a run)."""
    early_offset = _offset(tz, wall)
    late_offset = _offset(tz, _with_fold(wall, 1))
    if early_offset == late_offset:
        return None
    return "fold" if early_offset > late_offset else "gap"


def _with_fold(wall: datetime, fold: int, tz: ZoneInfo | None = None) -> datetime:
    # The constructor is about twice as fast as datetime.replace on Python 3.11.
    return datetime(
        wall.year,
        wall.month,
        wall.day,
        wall.hour,
        wall.minute,
        wall.second,
        wall.microsecond,
        tz,
        fold=fold,
    )


def _stamped(wall: datetime, offset: timedelta, tz: ZoneInfo, fold: int) -> tuple[float, datetime]:
    return (wall - offset - _EPOCH).total_seconds(), _with_fold(wall, fold, tz)


def _transition(wall: datetime, tz: ZoneInfo, before: timedelta, after: timedelta) -> float:
    """When a gap containing ``wall`` ends (epoch seconds): the first second at offset ``after``.

    It lies in ``(wall - after, wall - before]`` (UTC); zones change offset on whole seconds.
    """
    low = int((wall - after - _EPOCH).total_seconds())  # still the old offset
    high = int((wall - before - _EPOCH).total_seconds())  # already the new offset
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == after:
            high = middle
        else:
            low = middle
    return float(high)


def local_wall(instant: float, tz: ZoneInfo) -> datetime:
    """The naive wall time in ``tz`` at an epoch instant."""
    return _with_fold(datetime.fromtimestamp(instant, tz), 0)


def utc_wall(instant: float) -> datetime:
    """The naive UTC wall time at an epoch instant (exact to the microsecond)."""
    return _EPOCH + timedelta(seconds=instant)


def offsets_near(instant: float, tz: ZoneInfo) -> tuple[timedelta, timedelta]:
    """The smallest and largest offset within about a day either side of ``instant``.

    Three samples catch the offsets on both sides of a change, assuming a zone changes its
    offset at most once within a day either side (true of daylight-saving rules). The outer
    samples are read at wall times a day away, which is as good and several times cheaper.
    """
    here = datetime.fromtimestamp(instant, tz)
    middle = here.utcoffset()
    assert middle is not None
    wall = _with_fold(here, 0)
    before = _offset(tz, wall - _DAY)
    after = _offset(tz, wall + _DAY)
    return min(before, middle, after), max(before, middle, after)


def offset_before(found: datetime, tz: ZoneInfo) -> timedelta:
    """The larger of the offset at ``found`` (aware, in ``tz``) and a day earlier."""
    offset = found.utcoffset()
    assert offset is not None
    return max(offset, _offset(tz, _with_fold(found, 0) - _DAY))


def _offset(tz: ZoneInfo, wall: datetime) -> timedelta:
    """The offset of a naive wall time (its ``fold`` picks the side of a change); cheap."""
    offset = tz.utcoffset(wall)
    assert offset is not None
    return offset


#: Offsets are sampled this far apart when looking for changes. The installed tzdata has no two
#: changes of offset less than 6.9 days apart (tests/triggers/test_triggers_catchup.py checks
#: every zone), so at most one change lies between two samples and none is missed.
CHANGE_STEP = 6 * 86400
# The last whole second datetime can show in any zone (a day before its end).
_LAST_INSTANT = datetime(9999, 12, 30, tzinfo=UTC).timestamp()


class OffsetChange(NamedTuple):
    """A change of a zone's UTC offset: ``at`` is the first instant (epoch seconds) at ``after``."""

    at: float
    before: timedelta
    after: timedelta


def offset_changes(zone: ZoneInfo, start: float, end: float) -> list[OffsetChange]:
    """The changes of ``zone``'s offset in ``(start, end]``, oldest first.

    Spans of more than a few days are read a whole (UTC) year at a time from a per-zone cache
    (:func:`_year_changes`), so the zone's changes are looked for once, whatever the jobs.
    """
    end = min(end, _LAST_INSTANT)
    if end - start <= 2 * CHANGE_STEP:
        return _sampled_changes(zone, start, end)
    first = datetime.fromtimestamp(start, UTC).year
    last = datetime.fromtimestamp(end, UTC).year
    return [
        change
        for year in range(first, last + 1)
        for change in _year_changes(zone, year)
        if start < change.at <= end
    ]


@functools.lru_cache(maxsize=4096)
def _year_changes(zone: ZoneInfo, year: int) -> tuple[OffsetChange, ...]:
    """The zone's changes in UTC year ``year`` (from 1 January 00:00 exclusive)."""
    start = datetime(year, 1, 1, tzinfo=UTC).timestamp()
    end = datetime(year + 1, 1, 1, tzinfo=UTC).timestamp() if year < 9999 else _LAST_INSTANT + 1
    return tuple(_sampled_changes(zone, start - 1, end - 1))


def _sampled_changes(zone: ZoneInfo, start: float, end: float) -> list[OffsetChange]:
    """The changes in ``(start, end]``: one offset look-up per :data:`CHANGE_STEP` of the span
    and about 20 per change."""
    changes = []
    before, offset = start, _offset_at(start, zone)
    while before < end:
        sample = min(before + CHANGE_STEP, end)
        now = _offset_at(sample, zone)
        if now != offset:
            changes.append(OffsetChange(_change_at(before, sample, now, zone), offset, now))
        before, offset = sample, now
    return changes


def _offset_at(instant: float, zone: ZoneInfo) -> timedelta:
    offset = datetime.fromtimestamp(instant, zone).utcoffset()
    assert offset is not None
    return offset


def _change_at(low: float, high: float, new: timedelta, zone: ZoneInfo) -> float:
    """The first whole second in ``(low, high]`` at offset ``new`` (zones change on seconds)."""
    old_side, new_side = math.floor(low), math.ceil(high)
    while new_side - old_side > 1:
        middle = (old_side + new_side) // 2
        if _offset_at(middle, zone) == new:
            new_side = middle
        else:
            old_side = middle
    return float(new_side)
