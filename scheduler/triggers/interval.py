"""``every``: a fixed number of seconds between runs, whatever the wall clock does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.triggers.wallclock import require_aware

__all__ = ["IntervalTrigger"]


class IntervalTrigger:
    """Runs at ``start``, ``start + every``, ``start + 2 * every``... up to ``end`` (inclusive).

    Arithmetic is on UTC instants: ``every 24h`` drifts by an hour against local time across a
    DST change, by design (a daily local time is ``repeat`` or cron).
    """

    __slots__ = ("_end", "_start", "_step", "_zone")

    def __init__(
        self, start: datetime, every: timedelta, zone: ZoneInfo, end: datetime | None = None
    ) -> None:
        if every <= timedelta(0):
            raise ValueError(f"every must be positive, got {every}")
        self._start = start.astimezone(UTC)
        self._step = every
        self._end = end.astimezone(UTC) if end is not None else None
        self._zone = zone

    def next_after(self, after: datetime) -> datetime | None:
        require_aware(after)
        moment = after.astimezone(UTC)
        if moment < self._start:
            run = self._start
        else:
            try:
                run = self._start + ((moment - self._start) // self._step + 1) * self._step
            except OverflowError:  # past year 9999
                return None
        if self._end is not None and run > self._end:
            return None
        return run.astimezone(self._zone)
