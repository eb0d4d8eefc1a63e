"""``every``: a fixed number of seconds between runs, whatever the wall clock does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.triggers.wallclock import Tally, require_aware

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

    def first_run(self, created: datetime) -> datetime | None:
        """The first run of a job created at ``created``: the first after it."""
        return self.next_after(created)

    def latest(self, since: datetime, until: datetime) -> datetime | None:
        """The last run in ``[since, until]``, or None: arithmetic, O(1)."""
        runs = self._runs_until(until)
        if runs == 0:
            return None
        run = self._start + (runs - 1) * self._step
        return run.astimezone(self._zone) if run >= since else None

    def count(self, after: datetime, until: datetime) -> Tally:
        """The runs in ``(after, until]``: arithmetic, exact, O(1)."""
        return Tally(max(0, self._runs_until(until) - self._runs_until(after)))

    def _runs_until(self, moment: datetime) -> int:
        """How many runs fall at or before ``moment``."""
        require_aware(moment)
        if self._end is not None and moment > self._end:
            moment = self._end
        if moment < self._start:
            return 0
        return (moment - self._start) // self._step + 1

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
