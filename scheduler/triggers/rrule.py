"""RRULE triggers: dateutil's rule on wall-clock times, restarted near each query.

dateutil does the calendar work (BYDAY with ordinals such as ``-1FR``, BYMONTHDAY ``-1``,
BYSETPOS, skipped invalid dates such as 31 April or 29 February 2100). It iterates from
DTSTART, so a rule started years ago costs thousands of steps per query. :class:`RRuleTrigger`
instead restarts the rule at the start of the period (year, month, week from WKST, day, hour...)
that contains the query, keeping the INTERVAL phase; every part dateutil would infer from
DTSTART is made explicit first (:func:`~.rfc5545.explicit_rule`) so the restarted rule means the
same. COUNT is turned once into the wall time of the last occurrence, so later queries need not
count from DTSTART. Without DTSTART a rule is anchored at the job's creation, read in the job's
zone, microseconds dropped.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil import rrule as du

from scheduler.errors import InvalidSchedule
from scheduler.triggers.dst import DstRule
from scheduler.triggers.rfc5545 import Freq, RRuleSpec, explicit_rule
from scheduler.triggers.wallclock import NeverRuns, WallClockTrigger, horizon, nth
from scheduler.triggers.zones import load_zone

__all__ = ["RRuleTrigger", "compile_rrule"]

#: Years searched ahead of a query before a rule is declared finished.
HORIZON_YEARS = 100
#: Years from DTSTART within which COUNT occurrences are counted (rarer rules run unbounded).
COUNT_HORIZON_YEARS = 200
# The calendar (weekdays, leap years) repeats every 400 years.
_GREGORIAN_YEARS = 400
#: Wall times read per pass once queries come in a chain (see :class:`RRuleTrigger`).
READ_AHEAD = 16
_SECOND = timedelta(seconds=1)
# The longest period of each frequency: a query this far past the last wall time read is
# still cheaper to reach by reading on than by restarting.
_PERIOD = {
    du.YEARLY: timedelta(days=366),
    du.MONTHLY: timedelta(days=31),
    du.WEEKLY: timedelta(days=7),
    du.DAILY: timedelta(days=1),
    du.HOURLY: timedelta(hours=1),
    du.MINUTELY: timedelta(minutes=1),
    du.SECONDLY: timedelta(seconds=1),
}


def compile_rrule(
    spec: RRuleSpec, tz: ZoneInfo, *, created: datetime, rule: DstRule, field: str
) -> RRuleTrigger:
    """A trigger for ``spec`` in the job's zone ``tz``; raises if the rule never produces a time."""
    zone = tz if spec.zone is None else load_zone(spec.zone)
    start = spec.dtstart or created.astimezone(zone).replace(tzinfo=None, microsecond=0)
    trigger = RRuleTrigger(
        explicit_rule(spec, start, field),
        dtstart=start,
        freq=spec.freq,
        interval=spec.interval,
        wkst=spec.wkst,
        count=spec.count,
        until=spec.until_wall,
        zone=zone,
        out=tz,
        rule=rule,
        end=spec.until_utc.timestamp() if spec.until_utc else None,
        positions="BYSETPOS" in spec.keys,
    )
    trigger.probe(field)
    return trigger


class RRuleTrigger(WallClockTrigger):
    """Runs at the wall times of a dateutil rule (naive DTSTART), mapped by the DST rule.

    Also used for ``repeat``, which is a small RRULE. ``base`` starts at ``dtstart`` with every
    part explicit and carries no COUNT or UNTIL: ``until`` (wall time) and ``count`` end it.

    Most of a query's cost is dateutil setting up a pass over the rule. The engine asks for the
    run after the run it just made, so once two queries follow each other the trigger reads
    :data:`READ_AHEAD` wall times per pass and answers the next queries from them. A lone query
    reads only what it needs. Either way at most a few dozen wall times are kept.
    """

    __slots__ = (
        "_ahead",
        "_ahead_from",
        "_base",
        "_count",
        "_dtstart",
        "_freq",
        "_interval",
        "_last",
        "_mid_week",
        "_reach",
        "_until",
        "_wkst",
    )

    def __init__(
        self,
        base: du.rrule,
        *,
        dtstart: datetime,
        freq: Freq,
        interval: int,
        wkst: int,
        count: int | None,
        until: datetime | None,
        zone: ZoneInfo,
        out: ZoneInfo,
        rule: DstRule,
        end: float | None = None,
        positions: bool = False,
    ) -> None:
        super().__init__(zone, rule, out=out, end=end)
        # BYSETPOS picks among a whole period's times, so a pass must start at a period start.
        self._mid_week = freq == du.WEEKLY and interval == 1 and not positions
        self._base = base
        self._dtstart = dtstart
        self._freq = freq
        self._interval = interval
        self._wkst = wkst
        self._count = count
        self._until = until
        self._last: tuple[datetime | None] | None = None
        # Consecutive wall times of the rule from _ahead_from on, read by the last pass.
        self._ahead: list[datetime] = []
        self._ahead_from = dtstart
        self._reach = _PERIOD[freq] * interval

    def probe(self, field: str) -> None:
        """Raise :class:`InvalidSchedule` unless the rule produces a time (before ``until``).

        dateutil compares UNTIL only with times that match the rule, so a rule that never
        matches (``BYMONTH=2;BYMONTHDAY=30``) iterates up to year 9999: seconds of work. Its
        pattern repeats every 400 years (the Gregorian cycle) times INTERVAL, so the probe looks
        at one such cycle placed just before year 9999, where dateutil's own stop bounds the
        work. It also surfaces the combinations dateutil reports only while iterating
        (INTERVAL against BYHOUR, say) when the job is created, not when it runs.
        """
        first = self._dtstart
        cycle = _GREGORIAN_YEARS * self._interval
        shift = (date.max.year - cycle - first.year) // cycle * cycle
        late = first.replace(year=first.year + shift) if shift > 0 else first
        try:
            found = next(iter(self._base.replace(dtstart=late)), None)
        except ValueError as error:
            raise InvalidSchedule(f"{field}: {error}", field=field) from None
        if found is None:
            raise NeverRuns(f"{field}: never produces a run time on any date", field=field)
        if self._until is not None or self._end is not None:
            before_start = first.replace(tzinfo=UTC) - timedelta(days=1)  # any zone's offset
            if self.next_after(before_start) is None:
                raise NeverRuns(f"{field}: never runs before its end (until)", field=field)

    def _walls(self, start: datetime) -> Iterator[datetime]:
        ahead = self._ahead
        chained = bool(ahead) and self._ahead_from <= start <= ahead[-1] + self._reach
        if not (chained and start <= ahead[-1]):
            return self._pass(start, since=start, keep=[], read_ahead=chained)
        keep = ahead[bisect_left(ahead, start) :]
        rest = self._pass(ahead[-1] + _SECOND, since=start, keep=keep, read_ahead=True)
        return itertools.chain(keep, rest)

    def _pass(
        self, start: datetime, *, since: datetime, keep: list[datetime], read_ahead: bool
    ) -> Iterator[datetime]:
        """A fresh pass over the rule from ``start`` (lazy: nothing runs until it is read).

        Remembers ``keep`` (the wall times from ``since`` up to ``start``) and what it reads:
        :data:`READ_AHEAD` at once when ``read_ahead``, else only as far as it is read.
        """
        last = self._last_wall()
        if last is not None and start > last:
            return
        anchor = self._period_start(start)
        stop = horizon(anchor, HORIZON_YEARS)
        rule = self._base.replace(dtstart=anchor, until=stop if last is None else min(stop, last))
        source = itertools.dropwhile(start.__gt__, rule)
        fresh = list(itertools.islice(source, READ_AHEAD)) if read_ahead else []
        read = keep + fresh
        self._ahead, self._ahead_from = read, since
        yield from fresh
        for wall in source:
            if len(read) < 2 * READ_AHEAD:
                read.append(wall)
            yield wall

    def _last_wall(self) -> datetime | None:
        """The wall time of the last occurrence: UNTIL, or the COUNT-th (counted once)."""
        if self._count is None:
            return self._until
        if self._last is None:
            capped = self._base.replace(until=horizon(self._dtstart, COUNT_HORIZON_YEARS))
            self._last = (nth(capped, self._count),)
        counted = self._last[0]
        if counted is None or self._until is None:
            return counted or self._until
        return min(counted, self._until)

    def _period_start(self, start: datetime) -> datetime:
        """The start of the rule's period containing ``start``, in phase with INTERVAL.

        Periods are whole years, months, weeks (from WKST), days, hours, minutes or seconds
        counted from DTSTART; never earlier than DTSTART.
        """
        first, step = self._dtstart, self._interval
        if start <= first:
            return first
        freq = self._freq
        if freq == du.YEARLY:
            years = (start.year - first.year) // step * step
            anchor = datetime.combine(date(first.year + years, 1, 1), time())
        elif freq == du.MONTHLY:
            months = (start.year - first.year) * 12 + start.month - first.month
            year, month = divmod(first.month - 1 + months // step * step, 12)
            anchor = datetime.combine(date(first.year + year, month + 1, 1), time())
        elif self._mid_week:  # a weekly pass may start on any day: fewer days to read
            anchor = datetime.combine(start.date(), time())
        elif freq == du.WEEKLY:
            week = first.date() - timedelta(days=(first.weekday() - self._wkst) % 7)
            weeks = (start.date() - week).days // 7 // step * step
            anchor = datetime.combine(week + timedelta(weeks=weeks), time())
        elif freq == du.DAILY:
            days = (start.date() - first.date()).days // step * step
            anchor = datetime.combine(first.date() + timedelta(days=days), time())
        else:
            unit = {du.HOURLY: 3600, du.MINUTELY: 60}.get(freq, 1)
            base = first - timedelta(seconds=(first.minute * 60 + first.second) % unit)
            units = int((start - base).total_seconds()) // unit // step * step
            anchor = base + timedelta(seconds=units * unit)
        return max(anchor, first)
