"""Issue 13, guarantee 4: retries, misfire, overlap, run history and pause/resume give the same
results on a cluster node as on the single box. Each scenario runs twice through the library, on
a single box and on a cluster node (real PostgreSQL), and the outcomes are compared."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from scheduler.config import Config, SchedulerConfig
from scheduler.events import RunRecorded
from scheduler.runtime.library import Scheduler
from tests.cluster.conftest import ClusterDb
from tests.polling import until

pytestmark = pytest.mark.integration

Scenario = Callable[[Scheduler], Awaitable[list[str]]]


class Flaky:
    """Fails the first ``failures`` attempts of each run, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    async def __call__(self, _payload: Any, ctx: Any) -> str:
        if ctx.attempt <= self.failures:
            raise RuntimeError(f"attempt {ctx.attempt} fails")
        return "ok"


async def slow(payload: Any, _ctx: Any) -> None:
    await asyncio.sleep(float(payload or 0))


def outcomes(sched: Scheduler, job_id: str) -> list[str]:
    job = sched.service.get(job_id)
    return [run.outcome.value for run in sched.service.runs(job)]


async def retries(sched: Scheduler) -> list[str]:
    ref = await sched.create_task("flaky", retry={"delay": "100ms", "jitter": 0}, max_retries=3)
    await until(lambda: sched.service.get(ref.id).status.value == "completed", within=5.0)
    return [*outcomes(sched, ref.id), sched.service.get(ref.id).status.value]


async def overlap_skip(sched: Scheduler) -> list[str]:
    ref = await sched.create_task("slow", 1.5, schedule={"every": "1s"}, overlap="skip")
    await until(lambda: "skipped_overlap" in outcomes(sched, ref.id), within=5.0)
    await sched.service.pause(ref.id)
    return sorted(set(outcomes(sched, ref.id)))


async def paused_then_caught_up(sched: Scheduler) -> list[str]:
    ref = await sched.create_task("slow", 0, schedule={"every": "1s"})
    await until(lambda: outcomes(sched, ref.id) == ["success"], within=3.0)
    await sched.service.pause(ref.id)
    due = sched.service.get(ref.id).scheduled
    assert due is not None
    # Two occurrences pass (by the scheduler's own clock) while it is paused.
    await until(lambda: sched.clock.time() > due + 1.1, "two occurrences to pass", 5.0)
    await sched.service.resume(ref.id, catch_up=True)
    await until(lambda: len(outcomes(sched, ref.id)) >= 3, within=3.0)
    await sched.service.pause(ref.id)
    runs = sched.service.runs(sched.service.get(ref.id))
    missed = [run for run in runs if run.outcome.value == "missed"]
    assert missed, outcomes(sched, ref.id)
    assert (missed[0].count or 0) >= 1
    return [run.outcome.value for run in runs[:3]]


async def history(sched: Scheduler) -> list[str]:
    ref = await sched.create_task("flaky", retry={"delay": "50ms", "jitter": 0}, max_retries=5)
    await until(lambda: sched.service.get(ref.id).status.value == "completed", within=5.0)
    return outcomes(sched, ref.id)  # 5 runs, the last 3 kept


SCENARIOS: dict[str, tuple[Scenario, int]] = {
    "retries": (retries, 2),
    "overlap_skip": (overlap_skip, 0),
    "paused_then_caught_up": (paused_then_caught_up, 0),
    "history": (history, 4),
}


async def run_on(config: Config, scenario: Scenario, failures: int) -> list[str]:
    """The scenario's result, then the kinds of run the node told its own subscribers of (what
    metrics, logs and alerts count: missed and skipped runs too)."""
    sched = Scheduler(config, environ={}, persistence=False)  # in memory, as a node's replica
    sched.register_task("flaky", Flaky(failures))
    sched.register_task("slow", slow)
    told: set[str] = set()
    sched.hub.subscribe([RunRecorded], lambda event: told.add(event.run.outcome.value))
    await sched.start()
    try:
        result = await scenario(sched)
        await until(lambda: sched.engine.in_flight() == 0, within=5.0)  # no run cut short

        def all_told() -> bool:
            kept = {r.outcome.value for job in sched.store for r in sched.service.runs(job)}
            return kept <= told

        await until(all_told, "every kept run told to the node's subscribers", 3.0)
    finally:
        await sched.stop(grace=0.5)
    return [*result, "told:", *sorted(told)]


@pytest.mark.parametrize("name", SCENARIOS)
async def test_a_cluster_node_gives_the_single_boxs_results(cluster: ClusterDb, name: str) -> None:
    scenario, failures = SCENARIOS[name]
    await cluster.migrate()
    limits = SchedulerConfig(scan_interval=1.0, history=3)
    single = await run_on(Config(scheduler=limits), scenario, failures)
    node = await run_on(
        Config(scheduler=limits, cluster=cluster.config(node_id="n", lease=2.0)),
        scenario,
        failures,
    )
    assert node == single, (node, single)
