"""The only place that reads the time.

Instants inside the scheduler are float seconds since the Unix epoch (UTC). Aware datetimes
appear only at the edges (triggers, JSON). The engine arms one timer at a time through
:meth:`Clock.call_at`, so a fake clock in tests controls every wake-up exactly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock now, seconds since the epoch."""

    def monotonic(self) -> float:
        """A clock that never steps, for durations and rate limits."""

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` on the event loop at wall-clock instant ``when`` (or soon after)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""


def to_datetime(instant: float) -> datetime:
    """An aware UTC datetime for an epoch instant."""
    return datetime.fromtimestamp(instant, UTC)


class SystemClock:
    """The real clock: wall time from ``time.time()``, timers from the running event loop.

    A wall-clock deadline is converted to the loop's monotonic timeline when the timer is armed.
    If the wall clock steps afterwards the timer fires at the wrong wall instant; the engine's
    periodic scan and its re-check of the clock before starting a job cover that.
    """

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        loop = asyncio.get_running_loop()
        return loop.call_at(loop.time() + (when - time.time()), callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
