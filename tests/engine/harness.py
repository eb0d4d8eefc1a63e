"""What the engine's limit tests share (no tests of its own): the instant they start at and a
meter of the runs in flight.

``tests/engine/test_engine_limits.py`` (the properties on the fake clock) and
``tests/engine/test_i10_limits.py`` (issue 10's reproductions) count runs the same way, so
what "in flight" means is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.executors.base import RunContext
from scheduler.model import Outcome, RunResult
from tests.fakes import FakeClock

#: A Monday morning in a zone without DST: far from any transition, so only the limits move runs.
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Seoul")).timestamp()


@dataclass
class Meter:
    """Counts runs in flight, per task and in all, and keeps every start."""

    clock: FakeClock
    active: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    total: int = 0
    peak_total: int = 0
    starts: list[tuple[float, str, str]] = field(default_factory=list)  # (mono, task, job)

    def executor(
        self, task: str, durations: dict[str, float], fails: set[str], default: float = 0.0
    ) -> Any:
        meter = self

        class Metered:
            async def run(self, ctx: RunContext) -> RunResult:
                meter.enter(task, ctx.job_id)
                try:
                    await meter.clock.sleep(durations.get(ctx.job_id, default))
                finally:
                    meter.leave(task)
                if ctx.job_id in fails and ctx.attempt == 1:
                    return RunResult(outcome=Outcome.ERROR, error="first attempt fails")
                return RunResult(outcome=Outcome.SUCCESS)

        return Metered()

    def enter(self, task: str, job_id: str) -> None:
        self.active[task] = self.active.get(task, 0) + 1
        self.peak[task] = max(self.peak.get(task, 0), self.active[task])
        self.total += 1
        self.peak_total = max(self.peak_total, self.total)
        self.starts.append((self.clock.monotonic(), task, job_id))

    def leave(self, task: str) -> None:
        self.active[task] -= 1
        self.total -= 1
