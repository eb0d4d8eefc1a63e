"""Issue 11, catch-up across many jobs: each job's missed runs are planned in a few trigger
queries (``test_misfire_engine.py``), but a clock step, a long downtime or the end of a
scheduler-wide pause makes every recurring job due at once, and the engine plans them all in one
turn of the event loop (``Engine._collect_due``): ~2 ms of CPU a job, so 400 jobs held the real
daemon's loop ~580 ms, and 10,000 would hold it for tens of seconds (the watchdog kills at 30 s).

Measured as CPU time between two turns of the loop (:func:`tests.stall.loop_hold`), on the fake
clock, so the figure does not depend on the machine's load.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from scheduler.config import Config, SchedulerConfig
from scheduler.engine.queue import TaskRuntime
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock, RecordingExecutor
from tests.stall import HOLD, loop_hold

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Seoul")).timestamp()
YEAR = 365 * 86400.0
SCHEDULES = [{"cron": "* * * * *"}, {"rrule": "FREQ=SECONDLY"}, {"rrule": "FREQ=MINUTELY"}]


@pytest.fixture
async def sched() -> AsyncIterator[Scheduler]:
    scheduler = Scheduler(
        Config(scheduler=SchedulerConfig()), clock=FakeClock(T0), persistence=False
    )
    await scheduler.start()
    clock = scheduler.clock
    assert isinstance(clock, FakeClock)
    scheduler.runtimes["work"] = TaskRuntime(RecordingExecutor(clock))
    yield scheduler
    await scheduler.stop(grace=0)


async def year_behind(sched: Scheduler, jobs: int) -> FakeClock:
    """``jobs`` recurring jobs, dispatching paused, and the clock a year later."""
    for i in range(jobs):
        await sched.create_task("work", schedule=SCHEDULES[i % len(SCHEDULES)])
    sched.engine.set_paused(True)
    clock = sched.clock
    assert isinstance(clock, FakeClock)
    clock.step(YEAR)
    return clock


@pytest.mark.parametrize("count", [6, 300], ids=["a few", "hundreds"])
async def test_jobs_a_year_behind_are_all_planned_without_holding_the_loop_long(
    sched: Scheduler, count: int
) -> None:
    clock = await year_behind(sched, count)
    async with loop_hold() as hold:
        sched.engine.set_paused(False)
        await clock.advance(0)
    assert hold.longest < HOLD
    assert sum(len(sched.service.runs(job)) for job in sched.store.jobs.values()) >= count
