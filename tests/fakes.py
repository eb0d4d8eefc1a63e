"""Test doubles: a clock the test moves by hand, and executors that record what they ran."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from scheduler.executors.base import RunContext
from scheduler.model import Outcome, RunResult


class _FakeTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Wall time that moves only when the test says so; timers fire in order as it moves.

    Like the real clock, a timer is armed on the monotonic timeline: ``call_at(when)`` fires
    after ``when - now`` seconds of monotonic time. ``await clock.advance(s)`` walks through
    every timer and sleeper due in the window in order, letting the event loop run between them.
    ``step(s)`` moves only the wall clock (an NTP step or a suspend): armed timers do not notice,
    exactly as with a real event loop, so only the engine's periodic scan can catch it.
    """

    def __init__(self, start: float | datetime) -> None:
        self.now = start.timestamp() if isinstance(start, datetime) else float(start)
        self.mono = 1000.0
        self._timers: list[tuple[float, int, _FakeTimer, Callable[[], None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def call_at(self, when: float, callback: Callable[[], None]) -> _FakeTimer:
        timer = _FakeTimer()
        deadline = self.mono + max(0.0, when - self.now)
        heapq.heappush(self._timers, (deadline, next(self._seq), timer, callback))
        return timer

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        self.call_at(self.now + seconds, wake)
        await fut

    def step(self, seconds: float) -> None:
        self.now += seconds

    async def settle(self, rounds: int = 30) -> None:
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        end = self.mono + seconds
        await self.settle()
        while True:
            while self._timers and self._timers[0][2].cancelled:
                heapq.heappop(self._timers)
            if not self._timers or self._timers[0][0] > end:
                break
            deadline, _, _timer, callback = heapq.heappop(self._timers)
            if deadline > self.mono:
                self.now += deadline - self.mono
                self.mono = deadline
            callback()
            await self.settle()
        self.now += end - self.mono
        self.mono = end
        await self.settle()

    async def advance_to(self, instant: float) -> None:
        await self.advance(instant - self.now)


def run_context(**overrides: Any) -> RunContext:
    """A run's context as the engine builds it, with ``overrides`` (executor tests)."""
    fields: dict[str, Any] = {
        "job_id": "01JOB",
        "fire_id": "01JOB:1800000000000",
        "workflow_id": "wf-1",
        "workflow_name": "Nightly",
        "task": "task",
        "payload": None,
        "attempt": 1,
        "fire": 1799971200.0,
        "timezone": "Asia/Seoul",
        "report_progress": lambda percent, message: None,
        "report_pid": lambda pid: None,
    }
    return RunContext(**(fields | overrides))


class RecordingExecutor:
    """Records each run's context and the clock time it started; outcomes come from a script."""

    def __init__(
        self,
        clock: FakeClock,
        outcomes: list[RunResult] | None = None,
        *,
        duration: float = 0.0,
    ) -> None:
        self.clock = clock
        self.outcomes = list(outcomes or [])
        self.duration = duration
        self.calls: list[tuple[float, RunContext]] = []
        self.active = 0
        self.max_active = 0

    async def run(self, ctx: RunContext) -> RunResult:
        self.calls.append((self.clock.time(), ctx))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.duration:
                await self.clock.sleep(self.duration)
        finally:
            self.active -= 1
        if self.outcomes:
            return self.outcomes.pop(0)
        return RunResult(outcome=Outcome.SUCCESS, result={"ok": True})

    @property
    def times(self) -> list[float]:
        return [t for t, _ in self.calls]


def fail(error: str = "boom", **kwargs: Any) -> RunResult:
    return RunResult(outcome=Outcome.ERROR, error=error, **kwargs)


def ok(result: Any = None) -> RunResult:
    return RunResult(outcome=Outcome.SUCCESS, result=result)
