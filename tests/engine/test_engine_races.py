"""What the engine acknowledges is what happens, whatever arrives while a run is starting.

A run's start is journalled (awaited) before its side effect. The journal here holds that await
open until the test lets it finish, so a cancel, a delete or a second run-now can arrive exactly
in that window, where the old engine did not yet know the run existed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scheduler.config import Config, SchedulerConfig
from scheduler.engine.queue import TaskRuntime
from scheduler.errors import InvalidState, JobNotFound
from scheduler.model import Change, JobStatus, Outcome
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock, RecordingExecutor, fail

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Seoul")).timestamp()


class GatedJournal:
    """Commits wait while ``closed`` is set, the way an fsync can take its time."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.waiting = 0

    def append(self, change: Change) -> int:
        return 0

    def append_group(self, changes: Sequence[Change]) -> int:
        for change in changes:
            seq = self.append(change)
        return seq

    async def commit(self) -> None:
        self.waiting += 1
        try:
            await self.open.wait()
        finally:
            self.waiting -= 1


class Rig:
    def __init__(self, sched: Scheduler, clock: FakeClock, journal: GatedJournal) -> None:
        self.sched = sched
        self.clock = clock
        self.journal = journal
        self.service = sched.service

    def task(self, name: str = "work", **kwargs: Any) -> RecordingExecutor:
        limits = {k: kwargs.pop(k) for k in ("concurrency",) if k in kwargs}
        executor = RecordingExecutor(self.clock, **kwargs)
        self.sched.runtimes[name] = TaskRuntime(executor, **limits)
        return executor

    async def create(self, task: str = "work", **options: Any) -> str:
        return (await self.sched.create_task(task, None, **options)).id

    async def starting(self) -> None:
        """Let the engine take due runs and stop inside the journalling of their start."""
        self.journal.open.clear()
        await self.clock.advance(0)
        assert self.journal.waiting, "no run start is being journalled"

    def status(self, job_id: str) -> JobStatus:
        return self.service.get(job_id).status


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = FakeClock(T0)
    sched = Scheduler(Config(scheduler=SchedulerConfig()), clock=clock, persistence=False)
    journal = GatedJournal()
    sched.store.journal = journal
    await sched.start()
    yield Rig(sched, clock, journal)
    journal.open.set()
    await sched.stop(grace=0)


async def settle(rig: Rig, pending: asyncio.Future[Any] | asyncio.Task[Any]) -> Any:
    rig.journal.open.set()
    for _ in range(20):
        await rig.clock.advance(0)
        if pending.done():
            return pending.result()
    raise AssertionError("the operation never finished")


async def test_a_cancel_while_the_start_is_journalled_stops_the_run_before_it_begins(
    rig: Rig,
) -> None:
    ex = rig.task()
    job_id = await rig.create(schedule={"delay": "10s"})
    await rig.clock.advance(9.9)
    rig.journal.open.clear()
    await rig.clock.advance(0.1)
    assert rig.journal.waiting
    cancel = asyncio.ensure_future(rig.service.cancel(job_id))
    await settle(rig, cancel)
    assert ex.calls == []
    assert rig.status(job_id) is JobStatus.CANCELLED
    await rig.clock.advance(60)
    assert ex.calls == []
    assert rig.status(job_id) is JobStatus.CANCELLED


async def test_a_delete_while_the_start_is_journalled_means_the_run_never_happens(
    rig: Rig,
) -> None:
    ex = rig.task()
    job_id = await rig.create(schedule={"every": "1m"})
    rig.journal.open.clear()
    await rig.clock.advance(60)
    assert rig.journal.waiting
    delete = asyncio.ensure_future(rig.service.delete(job_id))
    await settle(rig, delete)
    assert ex.calls == []
    assert rig.service.find(job_id) is None
    await rig.clock.advance(300)
    assert ex.calls == []


async def test_two_quick_run_nows_with_overlap_skip_run_once(rig: Rig) -> None:
    ex = rig.task(duration=5.0)
    job_id = await rig.create(schedule={"every": "1h"})
    first = await rig.service.run_now(job_id)  # queued, not yet started
    with pytest.raises(InvalidState, match="overlap"):
        await rig.service.run_now(job_id)
    await rig.clock.advance(10)
    assert (await first).outcome is Outcome.SUCCESS
    assert len(ex.calls) == 1


async def test_a_run_now_while_another_start_is_journalled_follows_the_overlap_policy(
    rig: Rig,
) -> None:
    ex = rig.task(duration=5.0)
    job_id = await rig.create(schedule={"every": "1h"})
    await rig.service.run_now(job_id)
    await rig.starting()
    with pytest.raises(InvalidState, match="overlap"):
        await rig.service.run_now(job_id)
    rig.journal.open.set()
    await rig.clock.advance(10)
    assert len(ex.calls) == 1


async def test_a_due_occurrence_is_skipped_while_a_run_now_waits_for_a_slot(rig: Rig) -> None:
    ex = rig.task(name="limited", duration=8.0, concurrency=1)
    await rig.create("limited", schedule={"delay": "1s"})  # holds the only slot from 1 s to 9 s
    job_id = await rig.create("limited", schedule={"every": "5s"})
    await rig.clock.advance(1)
    await rig.service.run_now(job_id)  # queued behind it
    await rig.clock.advance(20)
    job = rig.service.get(job_id)
    starts = [t - T0 for t, ctx in ex.calls if ctx.job_id == job_id]
    assert starts == [9.0, 20.0]  # the run-now, then the first occurrence after it ended
    outcomes = [(r.outcome, r.fire - T0) for r in rig.service.runs(job)]
    assert (Outcome.SKIPPED_OVERLAP, 5.0) in outcomes
    assert ex.max_active == 1


async def test_run_now_of_a_delayed_one_off_keeps_its_own_run(rig: Rig) -> None:
    ex = rig.task()
    job_id = await rig.create(schedule={"delay": "1h"})
    scheduled = rig.service.get(job_id).scheduled
    ran = await rig.service.run_now(job_id)
    await rig.clock.advance(0)
    assert (await ran).outcome is Outcome.SUCCESS
    job = rig.service.get(job_id)
    assert job.status is JobStatus.PENDING
    assert job.scheduled == scheduled
    await rig.clock.advance(3600)
    assert [t for t, _ in ex.calls] == [T0, T0 + 3600]
    assert rig.status(job_id) is JobStatus.COMPLETED


async def test_a_failed_run_now_of_a_delayed_one_off_is_not_retried_over_its_own_run(
    rig: Rig,
) -> None:
    ex = rig.task(outcomes=[fail()])
    job_id = await rig.create(schedule={"delay": "1h"})
    await rig.service.run_now(job_id)
    await rig.clock.advance(60)
    job = rig.service.get(job_id)
    assert job.status is JobStatus.PENDING
    assert job.scheduled == T0 + 3600
    assert job.error == "boom"
    await rig.clock.advance(3600)
    assert len(ex.calls) == 2
    assert rig.status(job_id) is JobStatus.COMPLETED


async def test_a_one_off_paused_during_its_run_stays_paused_and_finishes_on_resume(
    rig: Rig,
) -> None:
    rig.task(duration=10.0)
    job_id = await rig.create()
    await rig.clock.advance(1)
    assert rig.status(job_id) is JobStatus.RUNNING
    await rig.service.pause(job_id)
    await rig.clock.advance(20)
    job = rig.service.get(job_id)
    assert job.status is JobStatus.PAUSED
    assert job.runs == 1
    await rig.service.resume(job_id)
    assert rig.status(job_id) is JobStatus.COMPLETED


async def test_a_job_resumed_while_its_run_is_in_flight_shows_running(rig: Rig) -> None:
    rig.task(duration=10.0)
    job_id = await rig.create()
    await rig.clock.advance(1)
    await rig.service.pause(job_id)
    await rig.service.resume(job_id)
    assert rig.status(job_id) is JobStatus.RUNNING
    await rig.clock.advance(20)
    assert rig.status(job_id) is JobStatus.COMPLETED


async def test_a_waited_run_now_of_a_deleted_job_answers_instead_of_hanging(rig: Rig) -> None:
    rig.task(name="limited", duration=30.0, concurrency=1)
    await rig.create("limited")  # holds the only slot
    job_id = await rig.create("limited", schedule={"every": "1h"})
    await rig.clock.advance(1)
    waited = await rig.service.run_now(job_id)  # queued behind the first job
    await rig.service.delete(job_id)
    await rig.clock.advance(0)
    assert waited.done()
    with pytest.raises(JobNotFound):
        waited.result()


async def test_a_waited_run_now_of_a_cancelled_job_answers_instead_of_hanging(rig: Rig) -> None:
    rig.task(name="limited", duration=30.0, concurrency=1)
    await rig.create("limited")
    job_id = await rig.create("limited", schedule={"every": "1h"})
    await rig.clock.advance(1)
    waited = await rig.service.run_now(job_id)
    await rig.service.cancel(job_id)
    await rig.clock.advance(0)
    with pytest.raises(InvalidState):
        waited.result()
    await rig.clock.advance(60)
    assert rig.status(job_id) is JobStatus.CANCELLED


async def test_a_buffered_run_now_of_a_deleted_job_answers_instead_of_hanging(rig: Rig) -> None:
    rig.task(duration=30.0)
    job_id = await rig.create(schedule={"every": "1h"}, overlap="buffer_one")
    await rig.service.run_now(job_id)
    await rig.clock.advance(1)
    buffered = await rig.service.run_now(job_id)  # waits for the run in flight
    await rig.service.delete(job_id)
    await rig.clock.advance(0)
    with pytest.raises(JobNotFound):
        buffered.result()


async def test_the_end_of_a_run_is_durable_before_anyone_is_told(rig: Rig) -> None:
    rig.task(duration=1.0)
    job_id = await rig.create(schedule={"every": "1h"})
    waited = await rig.service.run_now(job_id)
    await rig.clock.advance(0.5)  # started: its start record went through
    rig.journal.open.clear()
    await rig.clock.advance(1.0)  # ended: its end record waits for the disk
    assert rig.journal.waiting
    assert not waited.done()
    rig.journal.open.set()
    await rig.clock.advance(0)
    assert (await waited).outcome is Outcome.SUCCESS


async def test_a_job_paused_and_resumed_while_its_run_waits_for_a_slot_runs_once(
    rig: Rig,
) -> None:
    ex = rig.task(name="limited", duration=5.0, concurrency=1)
    await rig.create("limited")  # holds the only slot for 5 s
    job_id = await rig.create("limited")
    await rig.clock.advance(1)
    await rig.service.pause(job_id)
    await rig.service.resume(job_id)
    await rig.clock.advance(20)
    assert [ctx.job_id for _, ctx in ex.calls].count(job_id) == 1
    assert rig.status(job_id) is JobStatus.COMPLETED
