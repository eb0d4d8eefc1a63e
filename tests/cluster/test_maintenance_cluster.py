"""Maintenance windows on a cluster node (real PostgreSQL, the real clock): the claim leaves a
job of a task inside its window alone until the window's end, other tasks run meanwhile, and a
reload that removes the window lets the held job run at once."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from msgspec.structs import replace

from scheduler.cluster.engine import ClusterEngine
from scheduler.config import Config, SchedulerConfig
from scheduler.maintenance import InMaintenance, WindowSpec
from scheduler.runtime.library import Scheduler
from tests.cluster.conftest import ClusterDb
from tests.polling import until

pytestmark = pytest.mark.integration


def window_from_now(seconds: float) -> tuple[WindowSpec, float]:
    """A window of task ``held`` open from a second ago to ``seconds`` from now, and its end."""
    start = math.floor(time.time()) - 1
    opens = datetime.fromtimestamp(start, UTC).strftime("%Y%m%dT%H%M%SZ")
    spec = WindowSpec(
        name="soon-over",
        rrule=f"DTSTART:{opens}\nFREQ=DAILY",
        duration=float(math.ceil(seconds) + 1),
        timezone="UTC",
        tasks=("held",),
    )
    return spec, start + spec.duration


async def started(config: Config) -> tuple[Scheduler, list[tuple[str, float]]]:
    sched = Scheduler(config, environ={}, persistence=False)
    ran: list[tuple[str, float]] = []

    def task(name: str) -> Any:
        async def run(_payload: Any) -> None:
            ran.append((name, time.time()))

        return run

    sched.register_task("held", task("held"))
    sched.register_task("free", task("free"))
    await sched.start()
    return sched, ran


def status(sched: Scheduler, job_id: str) -> str:
    return sched.service.get(job_id).status.value


async def test_a_node_claims_a_held_job_only_once_its_window_has_closed(cluster: ClusterDb) -> None:
    await cluster.migrate()
    window, end = window_from_now(3.0)
    config = Config(
        scheduler=SchedulerConfig(scan_interval=30.0),
        cluster=cluster.config(node_id="n", lease=2.0),
        maintenance=(window,),
    )
    sched, ran = await started(config)
    try:
        held = await sched.create_task("held")
        free = await sched.create_task("free")
        await until(lambda: status(sched, free.id) == "completed", "the free task's run", 5.0)
        assert status(sched, held.id) == "pending"
        with pytest.raises(InMaintenance):
            sched.engine.refuse_in_maintenance(sched.service.get(held.id))
        await until(lambda: status(sched, held.id) == "completed", "the held job's run", 10.0)
        [(_, at)] = [run for run in ran if run[0] == "held"]
        assert end <= at < end + 3.0  # at the window's end, not at the next 30 s scan
    finally:
        await sched.stop(grace=0.5)


async def test_a_reload_without_the_window_lets_the_node_claim_the_job(cluster: ClusterDb) -> None:
    await cluster.migrate()
    window, _ = window_from_now(3600.0)
    config = Config(
        scheduler=SchedulerConfig(scan_interval=30.0),
        cluster=cluster.config(node_id="n", lease=2.0),
        maintenance=(window,),
    )
    sched, _ = await started(config)
    try:
        held = await sched.create_task("held")
        free = await sched.create_task("free")
        await until(lambda: status(sched, free.id) == "completed", "the free task's run", 5.0)
        assert status(sched, held.id) == "pending"
        await sched.apply_config(replace(config, maintenance=()))
        await until(lambda: status(sched, held.id) == "completed", "the held job's run", 5.0)
    finally:
        await sched.stop(grace=0.5)


async def test_a_reload_during_a_claim_pass_is_not_undone_by_that_pass(
    cluster: ClusterDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reload lands while a pass that still saw the window is running: what that pass
    held back must not stay skipped (it did once, until the next 30 s scan)."""
    await cluster.migrate()
    window, _ = window_from_now(3600.0)
    config = Config(
        scheduler=SchedulerConfig(scan_interval=30.0),
        cluster=cluster.config(node_id="n", lease=2.0),
        maintenance=(window,),
    )
    sched, _ = await started(config)
    try:
        assert isinstance(sched.engine, ClusterEngine)
        claimer = sched.engine.claimer
        real_claim = claimer.claim
        reloaded: list[bool] = []

        async def claim_then_reload(*args: Any, **kwargs: Any) -> Any:
            result = await real_claim(*args, **kwargs)
            if result[0].deferred and not reloaded:  # this pass held the job back
                reloaded.append(True)
                await sched.apply_config(replace(config, maintenance=()))
            return result

        monkeypatch.setattr(claimer, "claim", claim_then_reload)
        held = await sched.create_task("held")
        await until(lambda: reloaded, "a pass that holds the job back", 5.0)
        await until(lambda: status(sched, held.id) == "completed", "the held job's run", 5.0)
    finally:
        await sched.stop(grace=0.5)
