"""A recurring job whose rule has ended finishes: it stops counting as pending, shows
``completed`` (or ``failed`` when its last run failed), and then follows retention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from scheduler.api.keys import Phase
from scheduler.api.status import status_document
from scheduler.config import Config, FsyncMode, PersistenceConfig, SchedulerConfig, StaticJob
from scheduler.engine.queue import TaskRuntime
from scheduler.model import JobStatus, Schedule, Source
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock, RecordingExecutor, fail

SEOUL = ZoneInfo("Asia/Seoul")
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=SEOUL).timestamp()
DAY = 86400.0
ONE_AT_TEN = "DTSTART:20261123T100000\nRRULE:FREQ=HOURLY;COUNT=1"


async def started(clock: FakeClock, **scheduler: Any) -> Scheduler:
    sched = Scheduler(
        Config(scheduler=SchedulerConfig(**scheduler)), clock=clock, persistence=False
    )
    await sched.start()
    return sched


@pytest.fixture
async def sched() -> AsyncIterator[Scheduler]:
    sched = await started(FakeClock(T0), retention=DAY)
    yield sched
    await sched.stop(grace=0)


def clock_of(sched: Scheduler) -> FakeClock:
    assert isinstance(sched.clock, FakeClock)
    return sched.clock


def card(sched: Scheduler) -> dict[str, Any]:
    return status_document(sched, Phase.RUNNING)


ENDING = [  # (schedule, runs, hours from T0 until just after the last run)
    pytest.param({"rrule": "FREQ=HOURLY;COUNT=3"}, 3, 3, id="rrule-count"),
    pytest.param({"rrule": "FREQ=HOURLY;UNTIL=20261123T030000Z"}, 4, 3, id="rrule-until"),
    pytest.param({"every": "1h", "end": "2026-11-23T12:00"}, 3, 4, id="every-end"),
    pytest.param(
        {"repeat": {"freq": "daily", "time": "10:00", "count": 2}}, 2, 26, id="repeat-count"
    ),
    pytest.param(
        {"repeat": {"freq": "daily", "time": "10:00", "until": "2026-11-24"}},
        2,
        26,
        id="repeat-until",
    ),
]


@pytest.mark.parametrize(("schedule", "runs", "hours"), ENDING)
async def test_a_rule_that_ends_completes_the_job(
    sched: Scheduler, schedule: dict[str, Any], runs: int, hours: int
) -> None:
    ex = RecordingExecutor(clock_of(sched))
    sched.runtimes["work"] = TaskRuntime(ex)
    ref = await sched.create_task("work", schedule=schedule)
    await clock_of(sched).advance(hours * 3600)  # past the last run, well before retention
    job = sched.service.get(ref.id)
    assert len(ex.calls) == runs
    assert job.status is JobStatus.COMPLETED
    assert job.scheduled is None
    status = card(sched)
    assert status["pendingJobs"] == 0
    assert status["completedJobs"] == 1


async def test_a_rule_whose_last_run_failed_ends_failed(sched: Scheduler) -> None:
    ex = RecordingExecutor(clock_of(sched), [fail(), fail(), fail(), fail(), fail(), fail()])
    sched.runtimes["work"] = TaskRuntime(ex)
    ref = await sched.create_task(
        "work", schedule={"rrule": "FREQ=HOURLY;COUNT=2"}, retry={"max": 0}
    )
    await clock_of(sched).advance(DAY)
    job = sched.service.get(ref.id)
    assert job.status is JobStatus.FAILED
    assert job.error == "boom"
    assert card(sched)["failedJobs"] == 1


async def test_a_last_occurrence_still_gets_its_retries(sched: Scheduler) -> None:
    ex = RecordingExecutor(clock_of(sched), [fail()])
    sched.runtimes["work"] = TaskRuntime(ex)
    ref = await sched.create_task(
        "work", schedule={"rrule": ONE_AT_TEN}, retry={"max": 1, "jitter": 0}
    )
    await clock_of(sched).advance(DAY)
    assert len(ex.calls) == 2
    assert sched.service.get(ref.id).status is JobStatus.COMPLETED


async def test_an_ended_job_follows_retention(sched: Scheduler) -> None:
    sched.runtimes["work"] = TaskRuntime(RecordingExecutor(clock_of(sched)))
    ref = await sched.create_task("work", schedule={"rrule": ONE_AT_TEN})
    await clock_of(sched).advance(2 * 3600)
    assert sched.service.get(ref.id).status is JobStatus.COMPLETED
    await clock_of(sched).advance(DAY + 120)  # retention, plus a scan interval
    assert sched.service.find(ref.id) is None


async def test_a_rule_that_ends_while_paused_finishes_on_resume(sched: Scheduler) -> None:
    sched.runtimes["work"] = TaskRuntime(RecordingExecutor(clock_of(sched)))
    ref = await sched.create_task("work", schedule={"rrule": "FREQ=HOURLY;COUNT=2"})
    await sched.service.pause(ref.id)
    await clock_of(sched).advance(5 * 3600)
    job = await sched.service.resume(ref.id)
    assert job.status is JobStatus.COMPLETED


async def test_a_job_left_pending_with_no_next_run_is_finished_at_start(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    config = Config(persistence=PersistenceConfig(dir=str(tmp_path), fsync=FsyncMode.NEVER))
    sched = Scheduler(config, clock=clock)
    sched.runtimes["work"] = TaskRuntime(RecordingExecutor(clock))
    await sched.start()
    ref = await sched.create_task("work", schedule={"rrule": "FREQ=HOURLY;COUNT=5"})
    job = sched.service.get(ref.id)
    # what an older version stored for an ended rule
    sched.store.put(msgspec.structs.replace(job, scheduled=None))
    await sched.store.commit()
    await sched.stop(grace=0)
    again = Scheduler(config, clock=clock)
    again.runtimes["work"] = TaskRuntime(RecordingExecutor(clock))
    await again.start()
    assert again.service.get(ref.id).status is JobStatus.COMPLETED
    await again.stop(grace=0)


async def test_a_static_job_whose_rule_ended_stays_finished_across_restarts(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    static = StaticJob(
        name="thrice",
        task="work",
        timezone="Asia/Seoul",
        schedule=Schedule(rrule="DTSTART:20261123T100000\nRRULE:FREQ=HOURLY;COUNT=3"),
    )
    config = Config(
        persistence=PersistenceConfig(dir=str(tmp_path), fsync=FsyncMode.NEVER),
        scheduler=SchedulerConfig(retention=60.0),
        jobs=(static,),
    )
    ex = RecordingExecutor(clock)
    for _ in range(2):
        sched = Scheduler(config, clock=clock)
        sched.runtimes["work"] = TaskRuntime(ex)
        await sched.start()
        await clock.advance(DAY)
        jobs = [j for j in sched.store if j.source is Source.CONFIG]
        assert [j.status for j in jobs] == [JobStatus.COMPLETED]  # kept, not expired
        await sched.stop(grace=0)
    assert len(ex.calls) == 3


async def test_a_start_that_fails_after_recovery_lets_go_of_the_state_directory(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    broken = StaticJob(
        name="bad", task="missing-task", timezone="Asia/Seoul", schedule=Schedule(every=60.0)
    )
    config = Config(persistence=PersistenceConfig(dir=str(tmp_path), fsync=FsyncMode.NEVER))
    failing = Scheduler(msgspec.structs.replace(config, jobs=(broken,)), clock=clock)
    with pytest.raises(Exception, match="missing-task"):
        await failing.start()
    retry = Scheduler(config, clock=clock)
    await retry.start()  # not refused as "in use"
    await retry.stop(grace=0)
