"""Maintenance windows in the engine, on the fake clock: inside a window runs of its tasks do not
start; one-offs and retries wait for its end, recurring jobs follow their misfire policy there,
runs in flight go on, other tasks are untouched, and no job is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.config import Config, SchedulerConfig
from scheduler.engine.queue import TaskRuntime
from scheduler.maintenance import InMaintenance, WindowSpec
from scheduler.model import Outcome, Run
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock, RecordingExecutor, fail, ok

SEOUL = ZoneInfo("Asia/Seoul")
T0 = datetime(2026, 12, 4, 1, 0, tzinfo=SEOUL).timestamp()  # 01:00 in Seoul, a Friday
OPENS = T0 + 3600  # 02:00
CLOSES = T0 + 7200  # 03:00
BACKUP = WindowSpec(
    name="backup", cron="0 2 * * *", duration=3600.0, timezone="Asia/Seoul", tasks=("work",)
)
UNTIL = "2026-12-04T03:00:00+09:00"


def iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, SEOUL).isoformat()


@dataclass
class Rig:
    sched: Scheduler
    clock: FakeClock
    work: RecordingExecutor
    other: RecordingExecutor

    def runs(self, job_id: str) -> list[Run]:
        return self.sched.service.runs(self.sched.service.get(job_id))


async def rig(*, max_concurrency: int = 10, duration: float = 0.0) -> Rig:
    clock = FakeClock(T0)
    config = Config(
        scheduler=SchedulerConfig(max_concurrency=max_concurrency), maintenance=(BACKUP,)
    )
    sched = Scheduler(config, clock=clock, persistence=False)
    work = RecordingExecutor(clock, duration=duration)
    other = RecordingExecutor(clock, duration=duration)
    sched.runtimes["work"] = TaskRuntime(work)
    sched.runtimes["other"] = TaskRuntime(other)
    await sched.start()
    return Rig(sched, clock, work, other)


@pytest.fixture
async def r() -> AsyncIterator[Rig]:
    made = await rig()
    yield made
    await made.sched.stop(grace=0)


async def test_a_one_off_due_inside_waits_and_starts_exactly_at_the_end(r: Rig) -> None:
    job = await r.sched.create_task("work", schedule={"at": "2026-12-04T02:15:00"})
    await r.clock.advance_to(CLOSES - 0.001)
    assert r.work.times == []
    await r.clock.advance_to(CLOSES + 60)
    assert r.work.times == [CLOSES]
    [run] = r.runs(job.id)
    assert run.outcome is Outcome.SUCCESS
    assert run.lateness == CLOSES - (OPENS + 15 * 60)


async def test_a_window_does_not_make_a_one_off_miss_its_grace(r: Rig) -> None:
    job = await r.sched.create_task(
        "work", schedule={"at": "2026-12-04T02:15:00"}, misfire={"grace": "60s"}
    )
    await r.clock.advance_to(CLOSES + 60)
    assert r.work.times == [CLOSES]
    assert [run.outcome for run in r.runs(job.id)] == [Outcome.SUCCESS]


async def test_a_recurring_job_runs_once_at_the_end_and_records_the_rest_as_one_missed_run(
    r: Rig,
) -> None:
    job = await r.sched.create_task("work", schedule={"cron": "*/10 * * * *"})
    await r.clock.advance_to(CLOSES + 5 * 60)
    assert [iso(t) for t in r.work.times] == [
        *(f"2026-12-04T01:{m}0:00+09:00" for m in range(1, 6)),
        "2026-12-04T03:00:00+09:00",
    ]
    [missed] = [run for run in r.runs(job.id) if run.outcome is Outcome.MISSED]
    assert missed.count == 6
    assert missed.started == CLOSES
    assert missed.reason == (
        "6 runs missed from 2026-12-04T02:00:00+09:00 to 2026-12-04T02:50:00+09:00"
        f" (coalesce=latest) (maintenance window backup until {UNTIL})"
    )
    assert r.sched.service.get(job.id).scheduled == CLOSES + 600


async def test_with_a_grace_an_occurrence_held_past_it_is_missed(r: Rig) -> None:
    job = await r.sched.create_task(
        "work", schedule={"cron": "30 * * * *"}, misfire={"grace": "60s"}
    )
    await r.clock.advance_to(CLOSES + 31 * 60)
    assert [iso(t) for t in r.work.times] == [
        "2026-12-04T01:30:00+09:00",
        "2026-12-04T03:30:00+09:00",
    ]
    [missed] = [run for run in r.runs(job.id) if run.outcome is Outcome.MISSED]
    assert (missed.fire, missed.count, missed.started) == (OPENS + 1800, 1, CLOSES)
    assert (
        missed.reason == f"1 run missed (coalesce=latest) (maintenance window backup until {UNTIL})"
    )


async def test_a_retry_due_inside_waits_for_the_end() -> None:
    made = await rig()
    try:
        made.work.outcomes = [fail("down"), ok()]
        job = await made.sched.create_task(
            "work",
            schedule={"at": "2026-12-04T01:59:59"},
            retry={"max": 1, "backoff": "fixed", "delay": "5s", "jitter": 0},
        )
        await made.clock.advance_to(CLOSES + 60)
        assert [(t, ctx.attempt) for t, ctx in made.work.calls] == [(OPENS - 1, 1), (CLOSES, 2)]
        assert [run.outcome for run in made.runs(job.id)] == [Outcome.ERROR, Outcome.SUCCESS]
    finally:
        await made.sched.stop(grace=0)


async def test_a_run_in_flight_when_the_window_opens_is_not_stopped() -> None:
    made = await rig(duration=20 * 60)
    try:
        job = await made.sched.create_task("work", schedule={"at": "2026-12-04T01:50:00"})
        await made.clock.advance_to(CLOSES)
        [run] = made.runs(job.id)
        assert (run.outcome, run.started, run.ended) == (Outcome.SUCCESS, OPENS - 600, OPENS + 600)
    finally:
        await made.sched.stop(grace=0)


async def test_other_tasks_run_inside_the_window(r: Rig) -> None:
    await r.sched.create_task("other", schedule={"at": "2026-12-04T02:15:00"})
    await r.sched.create_task("work", schedule={"at": "2026-12-04T02:15:00"})
    await r.clock.advance_to(OPENS + 16 * 60)
    assert r.other.times == [OPENS + 15 * 60]
    assert r.work.times == []


async def test_500_jobs_due_inside_all_start_at_the_end_within_the_limit() -> None:
    made = await rig(max_concurrency=10, duration=0.5)
    try:
        for k in range(500):
            minute, second = divmod(k % 3600, 60)
            await made.sched.create_task(
                "work", schedule={"at": f"2026-12-04T02:{minute:02d}:{second:02d}"}
            )
        await made.clock.advance_to(CLOSES)
        await made.clock.advance(0)
        assert len(made.work.times) == 10
        assert set(made.work.times) == {CLOSES}
        await made.clock.advance(30)
        assert len(made.work.times) == 500
        assert min(made.work.times) == CLOSES
        assert made.work.max_active == 10
    finally:
        await made.sched.stop(grace=0)


async def test_a_run_waiting_for_a_slot_when_the_window_opens_waits_for_its_end() -> None:
    made = await rig(max_concurrency=1, duration=10 * 60)
    try:
        await made.sched.create_task("other", schedule={"at": "2026-12-04T01:59:00"})
        job = await made.sched.create_task("work", schedule={"at": "2026-12-04T01:59:30"})
        await made.clock.advance_to(CLOSES + 11 * 60)
        assert made.other.times == [OPENS - 60]
        assert made.work.times == [CLOSES]
        [run] = made.runs(job.id)
        assert run.fire == OPENS - 30
    finally:
        await made.sched.stop(grace=0)


async def test_run_now_inside_the_window_is_refused_naming_the_window_and_its_end(r: Rig) -> None:
    job = await r.sched.create_task("work", schedule={"at": "2026-12-05T09:00:00"})
    await r.clock.advance_to(OPENS + 60)
    with pytest.raises(InMaintenance) as refused:
        await r.sched.service.run_now(job.id)
    assert refused.value.code == "maintenance"
    assert f"maintenance window backup until {UNTIL}" in refused.value.message
    other = await r.sched.create_task("other", schedule={"at": "2026-12-05T09:00:00"})
    done = await r.sched.service.run_now(other.id)
    await r.clock.advance(0)
    assert done.done()
    assert (await done).outcome is Outcome.SUCCESS


# --- the property: nothing starts inside, nothing is lost -------------------------------------


@dataclass(frozen=True)
class Case:
    max_concurrency: int
    jobs: tuple[tuple[str, int, float], ...]  # (task, seconds after T0 it is due, duration)


def cases() -> st.SearchStrategy[Case]:
    due = st.one_of(
        st.sampled_from([3599, 3600, 3601, 5400, 7199, 7200, 7201]),  # around the edges
        st.integers(0, 3 * 3600),
    )
    job = st.tuples(
        st.sampled_from(["work", "work", "other"]), due, st.sampled_from([0.0, 30.0, 900.0])
    )
    return st.builds(
        Case,
        max_concurrency=st.integers(1, 4),
        jobs=st.lists(job, min_size=1, max_size=25).map(tuple),
    )


async def play(case: Case) -> tuple[list[tuple[float, str, str]], list[str]]:
    clock = FakeClock(T0)
    config = Config(
        scheduler=SchedulerConfig(max_concurrency=case.max_concurrency), maintenance=(BACKUP,)
    )
    sched = Scheduler(config, clock=clock, persistence=False)
    starts: list[tuple[float, str, str]] = []
    durations: dict[str, float] = {}

    def executor(task: str) -> Any:
        class Timed:
            async def run(self, ctx: Any) -> Any:
                starts.append((clock.time(), task, ctx.job_id))
                await clock.sleep(durations[ctx.job_id])
                return ok()

        return Timed()

    for task in ("work", "other"):
        sched.runtimes[task] = TaskRuntime(executor(task))
    await sched.start()
    ids = []
    for task, after, duration in case.jobs:
        ref = await sched.create_task(task, schedule={"delay": after} if after else None)
        durations[ref.id] = duration
        ids.append(ref.id)
    await clock.advance(12 * 3600)
    await sched.stop(grace=0)
    return starts, ids


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(cases())
def test_no_run_of_a_held_task_starts_inside_the_window_and_every_one_off_runs_once(
    case: Case,
) -> None:
    starts, ids = asyncio.run(play(case))
    inside = [(iso(t), job) for t, task, job in starts if task == "work" and OPENS <= t < CLOSES]
    assert inside == []
    assert sorted(job for _, _, job in starts) == sorted(ids)
