"""A Scheduler on a FakeClock, without persistence, and the one task "work" it runs: what the
metrics and alerts tests drive."""

from __future__ import annotations

from typing import Any

from scheduler.engine.queue import TaskRuntime
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock, RecordingExecutor


class Rig:
    def __init__(self, sched: Scheduler, clock: FakeClock) -> None:
        self.sched = sched
        self.clock = clock

    def task(self, executor: RecordingExecutor | None = None) -> RecordingExecutor:
        """Run "work" with ``executor`` (by default one that succeeds at once)."""
        executor = executor or RecordingExecutor(self.clock)
        self.sched.runtimes["work"] = TaskRuntime(executor)
        return executor

    async def create(self, **options: Any) -> str:
        """A job of "work" with ``options`` (schedule, retry...); its id."""
        return (await self.sched.create_task("work", None, **options)).id
