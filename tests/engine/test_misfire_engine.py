"""Catch-up in the engine (issue 11): a clock step or a long pause plans the missed runs in a
handful of trigger queries, and the missed-run record names the real last missed instant."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from msgspec.structs import replace

from scheduler.config import Config, SchedulerConfig
from scheduler.engine.queue import TaskRuntime
from scheduler.model import Outcome, Schedule
from scheduler.runtime.library import Scheduler
from scheduler.triggers import Tally, Trigger
from tests.fakes import FakeClock, RecordingExecutor

SEOUL = ZoneInfo("Asia/Seoul")
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=SEOUL).timestamp()
DAY = 86400.0


def iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, SEOUL).isoformat()


@dataclass
class Counting:
    """A trigger that counts the queries the engine makes of it."""

    inner: Trigger
    calls: list[str] = field(default_factory=list)

    def next_after(self, after: datetime) -> datetime | None:
        self.calls.append("next_after")
        return self.inner.next_after(after)

    def first_run(self, created: datetime) -> datetime | None:
        self.calls.append("first_run")
        return self.inner.first_run(created)

    def latest(self, since: datetime, until: datetime) -> datetime | None:
        self.calls.append("latest")
        return self.inner.latest(since, until)

    def count(self, after: datetime, until: datetime) -> Tally:
        self.calls.append("count")
        return self.inner.count(after, until)


@pytest.fixture
async def sched() -> AsyncIterator[Scheduler]:
    clock = FakeClock(T0)
    scheduler = Scheduler(Config(scheduler=SchedulerConfig()), clock=clock, persistence=False)
    await scheduler.start()
    yield scheduler
    await scheduler.stop(grace=0)


def setup(sched: Scheduler) -> tuple[FakeClock, RecordingExecutor]:
    clock = sched.clock
    assert isinstance(clock, FakeClock)
    executor = RecordingExecutor(clock)
    sched.runtimes["work"] = TaskRuntime(executor)
    return clock, executor


def counting(sched: Scheduler, job_id: str) -> Counting:
    job = sched.service.get(job_id)
    wrapped = Counting(sched.engine.trigger(job))
    sched.engine.triggers.seed(job, wrapped)
    return wrapped


def missed(sched: Scheduler, job_id: str) -> list[Any]:
    job = sched.service.get(job_id)
    return [run for run in sched.service.runs(job) if run.outcome is Outcome.MISSED]


async def test_a_30_day_clock_step_plans_a_one_second_job_in_a_few_queries(
    sched: Scheduler,
) -> None:
    clock, executor = setup(sched)
    job_id = (await sched.create_task("work", schedule={"every": "1s"})).id
    await clock.advance(2)
    assert len(executor.times) == 2
    queries = counting(sched, job_id)
    clock.step(30 * DAY)  # an NTP step: the armed timer fires a second later, 30 days late
    await clock.advance(1)
    [record] = missed(sched, job_id)
    last_run = executor.times[-1]
    assert record.count == 30 * 86400
    assert record.reason == (
        f"{30 * 86400} runs missed from {iso(T0 + 3)} to {iso(last_run - 1)} (coalesce=latest)"
    )
    assert len(queries.calls) <= 6


async def test_coalesce_all_replays_a_short_backlog_one_by_one(sched: Scheduler) -> None:
    clock, executor = setup(sched)
    await sched.create_task("work", schedule={"every": "1m"}, misfire={"coalesce": "all"})
    sched.engine.set_paused(True)
    await clock.advance(10 * 60 + 30)
    sched.engine.set_paused(False)
    await clock.advance(0)
    assert executor.times == [T0 + 630] * 10
    assert [ctx.scheduled_time for _, ctx in executor.calls] == [
        iso(T0 + 60 * k) for k in range(1, 11)
    ]


async def test_coalesce_all_beyond_its_limit_runs_the_oldest_and_records_the_rest(
    sched: Scheduler,
) -> None:
    clock, executor = setup(sched)
    job_id = (
        await sched.create_task("work", schedule={"every": "1s"}, misfire={"coalesce": "all"})
    ).id
    sched.engine.set_paused(True)
    await clock.advance(5000.5)
    sched.engine.set_paused(False)
    await clock.advance(0)
    assert [ctx.scheduled_time for _, ctx in executor.calls] == [iso(T0 + 1)]
    [record] = missed(sched, job_id)
    assert record.count == 4999
    assert (
        record.reason == f"4999 runs missed from {iso(T0 + 2)} to {iso(T0 + 5000)} (coalesce=all)"
    )
    assert sched.service.get(job_id).scheduled == T0 + 5001


async def test_a_stored_schedule_the_current_rules_refuse_ends_the_job_with_a_message(
    sched: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    setup(sched)
    job_id = (await sched.create_task("work", schedule={"cron": "0 9 * * *"})).id
    stored = replace(sched.service.get(job_id), schedule=Schedule(cron="0\u00a09 * * *"))
    with caplog.at_level(logging.ERROR, logger="scheduler.engine"):
        trigger = sched.engine.trigger(stored)
    assert trigger.next_after(datetime.fromtimestamp(T0, SEOUL)) is None
    assert "schedule no longer valid, no further runs" in caplog.text
    assert "U+00A0" in caplog.text
