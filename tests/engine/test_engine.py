"""The engine on a fake clock: exact instants, no real sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scheduler.config import Config, SchedulerConfig
from scheduler.engine.loop import Engine
from scheduler.engine.queue import TaskRuntime
from scheduler.errors import DuplicateJob
from scheduler.model import JobStatus, Outcome, RunResult
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock, RecordingExecutor, fail, ok

SEOUL = ZoneInfo("Asia/Seoul")
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=SEOUL).timestamp()


def iso(instant: float, zone: str = "Asia/Seoul") -> str:
    return datetime.fromtimestamp(instant, ZoneInfo(zone)).isoformat()


class Harness:
    def __init__(self, sched: Scheduler, clock: FakeClock) -> None:
        self.sched = sched
        self.clock = clock

    def task(
        self, name: str = "work", executor: RecordingExecutor | None = None, **limits: Any
    ) -> RecordingExecutor:
        executor = executor or RecordingExecutor(self.clock)
        self.sched.runtimes[name] = TaskRuntime(executor, **limits)
        return executor

    async def create(self, task: str = "work", **kwargs: Any) -> str:
        ref = await self.sched.create_task(task, kwargs.pop("payload", None), **kwargs)
        return ref.id

    def job(self, job_id: str) -> Any:
        return self.sched.service.get(job_id)

    def runs(self, job_id: str) -> list[Any]:
        return self.sched.service.runs(self.job(job_id))


def make_config(**scheduler: Any) -> Config:
    return Config(scheduler=SchedulerConfig(**scheduler))


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    clock = FakeClock(T0)
    sched = Scheduler(make_config(), clock=clock, persistence=False)
    harness = Harness(sched, clock)
    await sched.start()
    yield harness
    await sched.stop(grace=0)


async def started(h: Harness, config: Config) -> Harness:
    sched = Scheduler(config, clock=h.clock, persistence=False)
    await h.sched.stop(grace=0)
    h.sched = sched
    await sched.start()
    return h


# --- each kind of schedule ---------------------------------------------------------------


async def test_it_runs_an_immediate_job_at_once(h: Harness) -> None:
    ex = h.task()
    job_id = await h.create()
    await h.clock.advance(0)
    assert ex.times == [T0]
    job = h.job(job_id)
    assert job.status is JobStatus.COMPLETED
    assert job.result == {"ok": True}


async def test_it_runs_a_delayed_job_at_its_instant_and_never_before(h: Harness) -> None:
    ex = h.task()
    job_id = await h.create(schedule={"delay": "15m"})
    assert h.job(job_id).scheduled == T0 + 900
    await h.clock.advance(899.999)
    assert ex.times == []
    await h.clock.advance(0.001)
    assert ex.times == [T0 + 900]
    assert h.runs(job_id)[0].lateness == 0.0


async def test_it_runs_a_scheduled_job_at_local_time_in_its_zone(h: Harness) -> None:
    ex = h.task()
    await h.create(schedule={"at": "2026-11-24T05:00"}, timezone="America/New_York")
    await h.clock.advance(2 * 86400)
    assert [iso(t, "America/New_York") for t in ex.times] == ["2026-11-24T05:00:00-05:00"]


async def test_a_recurring_job_runs_each_occurrence_and_stays_pending(h: Harness) -> None:
    ex = h.task()
    job_id = await h.create(schedule={"cron": "0 9 * * *"})
    await h.clock.advance(3 * 86400)
    assert [iso(t) for t in ex.times] == [
        "2026-11-24T09:00:00+09:00",
        "2026-11-25T09:00:00+09:00",
        "2026-11-26T09:00:00+09:00",
    ]
    job = h.job(job_id)
    assert job.status is JobStatus.PENDING
    assert iso(job.scheduled) == "2026-11-27T09:00:00+09:00"
    assert job.runs == 3


async def test_an_interval_job_runs_every_period(h: Harness) -> None:
    ex = h.task()
    await h.create(schedule={"every": "10m"})
    await h.clock.advance(3600)
    assert [t - T0 for t in ex.times] == [600.0 * k for k in range(1, 7)]


# --- priorities and limits ---------------------------------------------------------------


async def test_waiting_jobs_start_by_priority_then_time_then_creation(h: Harness) -> None:
    h = await started(h, make_config(max_concurrency=1))
    blocker = h.task("block", RecordingExecutor(h.clock, duration=100))
    ex = h.task()
    await h.create("block")
    await h.clock.advance(1)
    assert len(blocker.calls) == 1
    await h.create(payload="low", priority="low")
    await h.create(payload="normal-1")
    await h.create(payload="critical", priority="critical")
    await h.create(payload="normal-2")
    await h.create(payload="high", priority="high")
    await h.clock.advance(200)
    assert [ctx.payload for _, ctx in ex.calls] == [
        "critical",
        "high",
        "normal-1",
        "normal-2",
        "low",
    ]


async def test_max_concurrency_caps_runs_in_flight(h: Harness) -> None:
    h = await started(h, make_config(max_concurrency=3))
    ex = h.task(executor=RecordingExecutor(h.clock, duration=10))
    for _ in range(7):
        await h.create()
    await h.clock.advance(100)
    assert ex.max_active == 3
    assert sorted(t - T0 for t in ex.times) == [0, 0, 0, 10, 10, 10, 20]


async def test_a_task_concurrency_limit_holds_below_the_global_one(h: Harness) -> None:
    ex = h.task(executor=RecordingExecutor(h.clock, duration=5), concurrency=1)
    for _ in range(3):
        await h.create()
    await h.clock.advance(60)
    assert ex.max_active == 1
    assert [t - T0 for t in ex.times] == [0, 5, 10]


async def test_a_rate_limit_spaces_starts(h: Harness) -> None:
    ex = h.task(rate_limit=(2, 10.0))
    for _ in range(5):
        await h.create()
    await h.clock.advance(60)
    assert [t - T0 for t in ex.times] == pytest.approx([0, 0, 10, 10, 20], abs=1e-4)


# --- retries and timeouts ----------------------------------------------------------------


async def test_it_retries_with_exponential_backoff_then_succeeds(h: Harness) -> None:
    ex = h.task(executor=RecordingExecutor(h.clock, [fail(), fail(), fail(), ok("done")]))
    job_id = await h.create(retry={"jitter": 0})
    await h.clock.advance(60)
    assert [t - T0 for t in ex.times] == [0, 2, 6, 14]
    assert [ctx.attempt for _, ctx in ex.calls] == [1, 2, 3, 4]
    assert len({ctx.fire_id for _, ctx in ex.calls}) == 1
    job = h.job(job_id)
    assert job.status is JobStatus.COMPLETED
    assert job.result == "done"
    assert [r.outcome for r in h.runs(job_id)] == [Outcome.ERROR] * 3 + [Outcome.SUCCESS]


async def test_a_retry_is_a_pending_attempt_in_the_store(h: Harness) -> None:
    h.task(executor=RecordingExecutor(h.clock, [fail()]))
    job_id = await h.create(retry={"jitter": 0})
    await h.clock.advance(0)
    job = h.job(job_id)
    assert job.status is JobStatus.PENDING
    assert job.scheduled == T0 + 2
    assert job.attempt == 1
    assert job.error == "boom"


async def test_it_gives_up_after_max_retries(h: Harness) -> None:
    ex = h.task(executor=RecordingExecutor(h.clock, [fail()] * 10))
    job_id = await h.create(retry={"jitter": 0})
    await h.clock.advance(120)
    assert len(ex.calls) == 4
    job = h.job(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error == "boom"


async def test_it_does_not_retry_a_permanent_failure(h: Harness) -> None:
    ex = h.task(executor=RecordingExecutor(h.clock, [fail("HTTP 404", retryable=False)]))
    job_id = await h.create()
    await h.clock.advance(60)
    assert len(ex.calls) == 1
    assert h.job(job_id).status is JobStatus.FAILED


async def test_it_waits_at_least_retry_after(h: Harness) -> None:
    ex = h.task(executor=RecordingExecutor(h.clock, [fail("429", retry_after=30.0), ok()]))
    await h.create(retry={"jitter": 0})
    await h.clock.advance(60)
    assert [t - T0 for t in ex.times] == [0, 30]


async def test_a_run_past_its_timeout_is_stopped_and_counts_as_a_failed_attempt(
    h: Harness,
) -> None:
    ex = h.task(executor=RecordingExecutor(h.clock, duration=100))
    job_id = await h.create(timeout="5s", max_retries=1, retry={"jitter": 0})
    await h.clock.advance(30)
    runs = h.runs(job_id)
    assert [r.outcome for r in runs] == [Outcome.TIMEOUT, Outcome.TIMEOUT]
    assert runs[0].ended == T0 + 5
    assert [t - T0 for t in ex.times] == [0, 7]
    assert h.job(job_id).status is JobStatus.FAILED


async def test_an_executor_that_raises_is_recorded_and_the_engine_goes_on(h: Harness) -> None:
    class Broken:
        async def run(self, ctx: Any) -> RunResult:
            raise RuntimeError("executor bug")

    h.sched.runtimes["broken"] = TaskRuntime(Broken())
    ex = h.task()
    bad = await h.create("broken", max_retries=0)
    await h.create()
    await h.clock.advance(1)
    assert h.job(bad).status is JobStatus.FAILED
    assert "executor bug" in h.job(bad).error
    assert len(ex.calls) == 1


# --- overlap -----------------------------------------------------------------------------


async def _overlapping(h: Harness, overlap: str) -> tuple[RecordingExecutor, str]:
    ex = h.task(executor=RecordingExecutor(h.clock, duration=25))
    job_id = await h.create(schedule={"every": "10s"}, overlap=overlap)
    await h.clock.advance(45)
    return ex, job_id


async def test_overlap_skip_records_the_skipped_occurrences(h: Harness) -> None:
    ex, job_id = await _overlapping(h, "skip")
    assert [t - T0 for t in ex.times] == [10, 40]
    outcomes = [(r.outcome, r.fire - T0) for r in h.runs(job_id)]
    assert (Outcome.SKIPPED_OVERLAP, 20) in outcomes
    assert (Outcome.SKIPPED_OVERLAP, 30) in outcomes


async def test_overlap_buffer_one_runs_one_held_occurrence_after(h: Harness) -> None:
    ex, job_id = await _overlapping(h, "buffer_one")
    assert [t - T0 for t in ex.times] == [10, 35]
    assert [ctx.scheduled_time for _, ctx in ex.calls][1] == iso(T0 + 20)
    skipped = [r.fire - T0 for r in h.runs(job_id) if r.outcome is Outcome.SKIPPED_OVERLAP]
    assert skipped == [30]


async def test_overlap_allow_runs_side_by_side(h: Harness) -> None:
    ex, _ = await _overlapping(h, "allow")
    assert [t - T0 for t in ex.times] == [10, 20, 30, 40]
    assert ex.max_active == 3


async def test_overlap_cancel_other_stops_the_older_run(h: Harness) -> None:
    ex, job_id = await _overlapping(h, "cancel_other")
    assert [t - T0 for t in ex.times] == [10, 20, 30, 40]
    cancelled = [r for r in h.runs(job_id) if r.outcome is Outcome.CANCELLED]
    assert [r.fire - T0 for r in cancelled] == [10, 20, 30]
    assert ex.max_active == 1


# --- misfires and the wall clock ---------------------------------------------------------


async def test_a_wall_clock_step_is_caught_by_the_scan(h: Harness) -> None:
    ex = h.task()
    await h.create(schedule={"delay": "1h"})
    h.clock.step(3600)  # the wall clock jumps; the armed timer still waits an hour
    await h.clock.advance(59)
    assert ex.times == []
    await h.clock.advance(1)  # the 60 s scan sees the job is due
    assert ex.times == [T0 + 3660]


@pytest.mark.parametrize(
    ("coalesce", "ran", "missed"),
    [("latest", [3 * 3600], 2), ("earliest", [3600], 2), ("all", [3600, 2 * 3600, 3 * 3600], 0)],
)
async def test_runs_missed_while_paused_follow_coalesce(
    h: Harness, coalesce: str, ran: list[int], missed: int
) -> None:
    ex = h.task()
    job_id = await h.create(schedule={"every": "1h"}, misfire={"coalesce": coalesce})
    h.sched.engine.set_paused(True)
    await h.clock.advance(3 * 3600 + 1800)
    assert ex.times == []
    h.sched.engine.set_paused(False)
    await h.clock.advance(0)
    assert [ctx.scheduled_time for _, ctx in ex.calls] == [iso(T0 + t) for t in ran]
    missed_runs = [r for r in h.runs(job_id) if r.outcome is Outcome.MISSED]
    if missed:
        assert len(missed_runs) == 1
        assert missed_runs[0].reason.startswith(f"{missed} runs missed")
    else:
        assert missed_runs == []
    assert iso(h.job(job_id).scheduled) == iso(T0 + 4 * 3600)


async def test_a_run_later_than_its_grace_is_recorded_as_missed(h: Harness) -> None:
    ex = h.task()
    job_id = await h.create(schedule={"delay": "10m"}, misfire={"grace": "1m"})
    h.sched.engine.set_paused(True)
    await h.clock.advance(900)
    h.sched.engine.set_paused(False)
    await h.clock.advance(0)
    assert ex.times == []
    assert [r.outcome for r in h.runs(job_id)] == [Outcome.MISSED]
    assert h.job(job_id).status is JobStatus.FAILED


# --- store rules -------------------------------------------------------------------------


async def test_a_second_live_job_for_a_workflow_is_a_duplicate(h: Harness) -> None:
    h.task()
    first = await h.create(schedule={"delay": "1h"}, workflow_id="wf-1")
    with pytest.raises(DuplicateJob) as err:
        await h.create(schedule={"delay": "2h"}, workflow_id="wf-1")
    assert err.value.existing_id == first


async def test_finished_one_off_jobs_are_removed_after_retention(h: Harness) -> None:
    h = await started(h, make_config(retention=3600.0))
    h.task()
    job_id = await h.create()
    await h.clock.advance(3600 + 61)
    assert h.sched.service.find(job_id) is None
    assert h.sched.store.counts[JobStatus.COMPLETED] == 0


async def test_run_history_is_bounded(h: Harness) -> None:
    h = await started(h, make_config(history=5))
    h.task()
    job_id = await h.create(schedule={"every": "1m"})
    await h.clock.advance(20 * 60)
    assert h.job(job_id).runs == 20
    assert len(h.runs(job_id)) == 5


async def test_status_counts_follow_every_change(h: Harness) -> None:
    h.task(executor=RecordingExecutor(h.clock, [ok(), fail(retryable=False)], duration=5))
    await h.create()
    await h.create()
    await h.create(schedule={"delay": "1h"})
    await h.clock.advance(1)
    counts = h.sched.store.counts
    assert (counts[JobStatus.RUNNING], counts[JobStatus.PENDING]) == (2, 1)
    await h.clock.advance(10)
    assert (counts[JobStatus.COMPLETED], counts[JobStatus.FAILED]) == (1, 1)
    assert counts[JobStatus.PENDING] == 1


async def test_stop_cancels_runs_after_the_grace_and_keeps_them_for_a_rerun(h: Harness) -> None:
    h.task(executor=RecordingExecutor(h.clock, duration=1000))
    job_id = await h.create()
    await h.clock.advance(1)
    stopping = asyncio.ensure_future(h.sched.stop(grace=5))
    await h.clock.advance(4)
    assert not stopping.done()
    await h.clock.advance(2)
    await stopping
    job = h.job(job_id)
    runs = h.runs(job_id)
    assert [r.outcome for r in runs] == [Outcome.INTERRUPTED]
    assert runs[0].ended == T0 + 6
    assert job.status is JobStatus.PENDING
    assert job.fire == T0


async def test_a_job_paused_during_its_run_finishes_the_run_and_stays_paused(h: Harness) -> None:
    ex = h.task(executor=RecordingExecutor(h.clock, duration=30))
    job_id = await h.create(schedule={"every": "1m"})
    await h.clock.advance(61)
    assert h.job(job_id).status is JobStatus.RUNNING
    await h.sched.service.pause(job_id, reason="maintenance")
    await h.clock.advance(300)
    job = h.job(job_id)
    assert job.status is JobStatus.PAUSED
    assert job.pause_reason == "maintenance"
    assert [r.outcome for r in h.runs(job_id)] == [Outcome.SUCCESS]
    assert len(ex.calls) == 1


async def test_an_engine_that_dies_is_reported_not_ignored(h: Harness) -> None:
    reported: list[BaseException | None] = []
    h.sched.on_engine_exit = reported.append

    def broken_scan() -> None:
        raise RuntimeError("scan bug")

    engine = h.sched.engine
    assert isinstance(engine, Engine)
    engine.scan = broken_scan  # type: ignore[method-assign]
    await h.clock.advance(61)
    assert len(reported) == 1
    assert "scan bug" in repr(reported[0])


async def test_a_tasks_timeout_wins_over_the_general_default(h: Harness) -> None:
    """``[retry] timeout`` is the default for jobs whose task gives none; a task's own
    ``timeout`` wins over it, and a job's own over both."""
    h = await started(h, Config(scheduler=SchedulerConfig(), default_timeout=3600.0))
    ex = h.task(executor=RecordingExecutor(h.clock, duration=100.0), timeout=5.0)
    plain = await h.create()
    own = await h.create(timeout="2s")
    await h.clock.advance(10)
    assert [h.runs(job_id)[0].outcome for job_id in (plain, own)] == [Outcome.TIMEOUT] * 2
    assert [h.runs(job_id)[0].error for job_id in (plain, own)] == [
        "timed out after 5 s",
        "timed out after 2 s",
    ]
    assert ex.calls
