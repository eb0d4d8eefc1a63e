"""Test doubles: a clock the test moves by hand, executors that record what they ran, the
socket systemd listens on for sd_notify, and sample records."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from scheduler.executors.base import RunContext
from scheduler.model import Job, Outcome, Run, RunResult


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


def bare_context(**overrides: Any) -> RunContext:
    """A run's context with little in it: a task "t" in UTC, no workflow, no fire instant."""
    fields = {
        "fire_id": "01JOB:1",
        "workflow_id": None,
        "workflow_name": "w",
        "task": "t",
        "fire": None,
        "timezone": "UTC",
    }
    return run_context(**(fields | overrides))


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


# --- sample records ------------------------------------------------------------------------------


def job(job_id: int, **fields: Any) -> Job:
    """A stored job with ``fields`` (task "t" in UTC unless they say otherwise)."""
    defaults: dict[str, Any] = {"id": job_id, "task": "t", "timezone": "UTC"}
    return Job(**(defaults | fields))


def run(job_id: int, n: int) -> Run:
    """The ``n``-th successful run of a job (its fire is ``n``)."""
    return Run(job_id=job_id, fire=float(n), attempt=1, outcome=Outcome.SUCCESS)


# --- systemd's notify socket -------------------------------------------------------------------

Message = dict[str, str]


class NotifySocket:
    """A datagram socket standing in for systemd's: records each message with its arrival."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        self.sock = sock
        self.path = path
        self.messages: list[Message] = []

    def poll(self) -> list[Message]:
        while True:
            try:
                data = self.sock.recv(4096).decode()
            except BlockingIOError:
                return self.messages
            fields = dict(line.split("=", 1) for line in data.splitlines() if line)
            self.messages.append(fields)

    async def wait_for(
        self, wanted: Callable[[Message], bool], *, after: int = 0, within: float = 10.0
    ) -> int:
        """Index of the first message from ``after`` on that ``wanted`` accepts."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for i, message in enumerate(self.poll()[after:], after):
                if wanted(message):
                    return i
            await asyncio.sleep(0.01)
        raise TimeoutError(f"no such message in {self.messages[after:]}")

    def kinds(self, start: int = 0) -> list[str]:
        """The messages' first keys (READY, WATCHDOG, STOPPING...), pings left out."""
        return [next(iter(m)) for m in self.poll()[start:] if "WATCHDOG" not in m]


def is_ready(message: Message) -> bool:
    return message.get("READY") == "1"


@contextlib.contextmanager
def notify_socket() -> Iterator[NotifySocket]:
    # A short directory: AF_UNIX paths are limited to 108 bytes, pytest's tmp_path may not be.
    with (
        tempfile.TemporaryDirectory(prefix="sdn") as directory,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        path = str(Path(directory) / "notify")
        sock.bind(path)
        sock.setblocking(False)
        yield NotifySocket(sock, path)
