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


#: How early the loop's own timer is armed before an instant. The loop sleeps in whole
#: milliseconds (epoll rounds its timeout up) and the kernel adds its timer slack, so a bare
#: ``loop.call_at`` fires up to ~1.1 ms late; armed this much early, it wakes before the
#: instant and :class:`PreciseTimer` finishes the wait.
LEAD = 0.0012


class PreciseTimer:
    """A timer that fires at its wall-clock instant to a few microseconds, never before it.

    The loop's timer wakes it :data:`LEAD` early; from there it yields to the loop
    (``call_soon``) until ``time.time()`` reaches the instant, so requests and other callbacks
    keep running while it waits. The wait is bounded: it spins only while the instant is at
    most ``2 * LEAD`` away, and re-arms an ordinary timer otherwise (the wall clock stepped
    back, or the loop woke far too early). It costs CPU only for the last millisecond or so
    before a timer that actually fires: none at idle.
    """

    __slots__ = ("_callback", "_handle", "_loop", "_when")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, when: float, callback: Callable[[], None]
    ) -> None:
        self._loop = loop
        self._when = when
        self._callback = callback
        self._handle: asyncio.Handle = loop.call_at(
            loop.time() + (when - time.time()) - LEAD, self._check
        )

    def _check(self) -> None:
        remaining = self._when - time.time()
        if remaining <= 0:
            self._callback()
        elif remaining > 2 * LEAD:
            self._handle = self._loop.call_at(self._loop.time() + remaining - LEAD, self._check)
        else:
            self._handle = self._loop.call_soon(self._check)

    def cancel(self) -> None:
        self._handle.cancel()


class SystemClock:
    """The real clock: wall time from ``time.time()``, timers from the running event loop.

    A wall-clock deadline is converted to the loop's monotonic timeline when the timer is armed
    (and again as it comes close: see :class:`PreciseTimer`). If the wall clock steps afterwards
    the timer fires at the wrong wall instant; the engine's periodic scan and its re-check of
    the clock before starting a job cover that.
    """

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return PreciseTimer(asyncio.get_running_loop(), when, callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
