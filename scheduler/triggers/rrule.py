"""RRULE triggers: a rule's wall times (:mod:`.recur`) mapped to instants by the DST rule.

The rule is evaluated by the scheduler's own bounded evaluator (:func:`expansion`), not by
dateutil: every query has a step budget, and compiling a rule runs its first search and
resolves COUNT under that budget, so an accepted rule is cheap to evaluate whatever its shape.
COUNT is turned once into the wall time of the last occurrence, so later queries need not count
from DTSTART.

Without DTSTART a rule starts at the job's creation, read in the job's zone, with the seconds
(and below) set to zero - ``FREQ=DAILY;BYHOUR=9;BYMINUTE=0`` runs at 09:00:00 - except for
FREQ=SECONDLY, which starts at the next whole second. COUNT counts every occurrence from that
start, and all of them run: :meth:`RRuleTrigger.first_run` returns the first one even when it
lies a few seconds before the creation (a job created at 10:00:20 with ``FREQ=MINUTELY;COUNT=3``
runs at 10:00:00 - at once - then 10:01 and 10:02).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.triggers.daygrid import DayGrid
from scheduler.triggers.dst import DstRule
from scheduler.triggers.periods import PeriodRule
from scheduler.triggers.recur import MONTHLY, SECONDLY, WEEKLY, Budget, Expansion, Parts
from scheduler.triggers.rfc5545 import RRuleSpec, rule_parts
from scheduler.triggers.wallclock import NeverRuns, WallClockTrigger
from scheduler.triggers.zones import load_zone

__all__ = ["RRuleTrigger", "compile_rrule", "expansion", "rule_start"]

_TINY = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)


def expansion(parts: Parts) -> Expansion:
    """The evaluator for a rule: whole periods for YEARLY, MONTHLY and WEEKLY with BYSETPOS
    (BYSETPOS picks within a period), a day at a time for the rest."""
    if parts.freq <= MONTHLY or (parts.freq == WEEKLY and parts.setpos):
        return PeriodRule(parts)
    return DayGrid(parts)


def rule_start(spec: RRuleSpec, created: datetime, zone: ZoneInfo) -> datetime:
    """DTSTART, or for a rule without one the creation read in ``zone``: seconds set to zero,
    or for FREQ=SECONDLY the next whole second."""
    if spec.dtstart is not None:
        return spec.dtstart
    wall = created.astimezone(zone).replace(tzinfo=None, microsecond=0)
    if spec.freq == SECONDLY:
        return wall + _SECOND
    return wall.replace(second=0)


def compile_rrule(
    spec: RRuleSpec, tz: ZoneInfo, *, created: datetime, rule: DstRule, field: str
) -> RRuleTrigger:
    """A trigger for ``spec`` in the job's zone ``tz``; raises if the rule never produces a time
    or cannot be evaluated within the step budget."""
    zone = tz if spec.zone is None else load_zone(spec.zone)
    start = rule_start(spec, created, zone)
    trigger = RRuleTrigger(
        expansion(rule_parts(spec, start)),
        dtstart=start,
        count=spec.count,
        until=spec.until_wall,
        zone=zone,
        out=tz,
        rule=rule,
        end=spec.until_utc.timestamp() if spec.until_utc else None,
        anchored=spec.dtstart is None,
        field=field,
    )
    trigger.probe()
    return trigger


class RRuleTrigger(WallClockTrigger):
    """Runs at the wall times of a rule from ``dtstart`` (naive, in ``zone``), mapped by the
    DST rule. Also used for ``repeat``, which is a small RRULE. ``until`` (wall time) and
    ``count`` end it; ``anchored``: the rule starts at the job's creation (no DTSTART)."""

    __slots__ = ("_anchored", "_count", "_dtstart", "_expansion", "_field", "_last", "_until")

    def __init__(
        self,
        rule_walls: Expansion,
        *,
        dtstart: datetime,
        count: int | None,
        until: datetime | None,
        zone: ZoneInfo,
        out: ZoneInfo,
        rule: DstRule,
        end: float | None = None,
        anchored: bool = False,
        field: str = "schedule.rrule",
    ) -> None:
        super().__init__(zone, rule, out=out, end=end)
        self._expansion = rule_walls
        self._dtstart = dtstart
        self._count = count
        self._until = until
        self._anchored = anchored
        self._field = field
        self._last: tuple[datetime | None] | None = None

    def probe(self) -> None:
        """Raise :class:`InvalidSchedule` unless the rule produces a time (before its end), and
        resolve COUNT; both under the step budget (:class:`~.recur.TooCostly` past it)."""
        field = self._field
        first = next(iter(self._expansion.walls(self._dtstart, self._budget())), None)
        if first is None:
            raise NeverRuns(f"{field}: never produces a run time on any date", field=field)
        last = self._last_wall()
        if (last is not None and last < first) or (
            self._end is not None and self.next_after(self._before_start()) is None
        ):
            raise NeverRuns(f"{field}: never runs before its end (until)", field=field)

    def first_run(self, created: datetime) -> datetime | None:
        """The first run of a job created at ``created``: a rule anchored at the creation runs
        its first occurrence even when it lies up to a minute before (see the module
        docstring)."""
        if self._anchored:
            start = self._dtstart.replace(tzinfo=self._zone).timestamp()
            return self.next_after(datetime.fromtimestamp(start, UTC) - _TINY)
        return self.next_after(created)

    def _before_start(self) -> datetime:
        return self._dtstart.replace(tzinfo=UTC) - timedelta(days=1)  # before it in any zone

    def _budget(self) -> Budget:
        return Budget(field=self._field)

    def _walls(self, start: datetime) -> Iterator[datetime]:
        last = self._last_wall()
        if last is not None and start > last:
            return iter(())
        walls = self._expansion.walls(start, self._budget())
        return walls if last is None else itertools.takewhile(last.__ge__, walls)

    def _count_walls(self, low: datetime, high: datetime) -> int:
        last = self._last_wall()
        if last is not None:
            high = min(high, last + _TINY)
        return self._expansion.count(low, high, self._budget()) if low < high else 0

    def _last_wall(self) -> datetime | None:
        """The wall time of the last occurrence: UNTIL, or the COUNT-th (counted once)."""
        if self._count is None:
            return self._until
        if self._last is None:
            self._last = (self._expansion.nth(self._count, self._budget()),)
        counted = self._last[0]
        if counted is None or self._until is None:
            return counted or self._until
        return min(counted, self._until)
