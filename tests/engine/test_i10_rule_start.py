"""Issue 10, item 5, through the engine: an RRULE without DTSTART starts at the creation
minute (a SECONDLY rule at the next whole second), and every occurrence ``COUNT`` counts runs.

The trigger's own vectors are in ``tests/triggers/test_triggers_rrule_bounded.py``; here the
jobs are created and run by a library ``Scheduler`` on the fake clock, as a user's would be.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler.config import Config, SchedulerConfig
from scheduler.engine.queue import TaskRuntime
from scheduler.model import JobStatus
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock, RecordingExecutor

CREATED = datetime(2026, 11, 23, 8, 59, 20, 400_000, tzinfo=UTC)  # hh:mm:20.4


def at(hour: int, minute: int, second: int) -> float:
    return CREATED.replace(hour=hour, minute=minute, second=second, microsecond=0).timestamp()


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        pytest.param(
            "FREQ=SECONDLY;INTERVAL=2;COUNT=3",
            [at(8, 59, 21), at(8, 59, 23), at(8, 59, 25)],
            id="secondly-from-the-next-whole-second-all-three",
        ),
        pytest.param(
            "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;COUNT=2",
            [at(9, 0, 0), at(9, 0, 0) + 86400],
            id="daily-at-nine-not-nine-and-20-seconds",
        ),
        pytest.param(
            "FREQ=MINUTELY;COUNT=2",
            [at(8, 59, 0), at(9, 0, 0)],
            id="minutely-from-the-creation-minute-the-first-at-once",
        ),
    ],
)
async def test_a_rule_without_dtstart_runs_every_occurrence_from_its_start(
    rule: str, expected: list[float]
) -> None:
    clock = FakeClock(CREATED)
    config = Config(scheduler=SchedulerConfig(retention=30 * 86400))  # keep it to read back
    sched = Scheduler(config, clock=clock, persistence=False)
    ex = RecordingExecutor(clock)
    sched.runtimes["work"] = TaskRuntime(ex)
    await sched.start()
    try:
        ref = await sched.create_task("work", schedule={"rrule": rule}, timezone="UTC")
        await clock.advance(86400 + 120)
        # The first minutely occurrence (08:59:00) is before the creation: it runs at once.
        ran = [max(t, CREATED.timestamp()) for t in expected]
        assert ex.times == pytest.approx(ran, abs=1e-3)
        job = sched.service.get(ref.id)
        assert job.status is JobStatus.COMPLETED
        assert sorted(
            run.fire for run in sched.service.runs(job) if run.fire is not None
        ) == pytest.approx(expected, abs=1e-3)
    finally:
        await sched.stop(grace=0)
