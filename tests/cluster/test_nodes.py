"""Two or three nodes in one process, one job set in a real PostgreSQL: every fire runs once,
whichever node claims it; what one node writes, the others read; a dead node's runs move."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from scheduler.clock import SystemClock, Timer
from scheduler.config import Config, SchedulerConfig
from scheduler.errors import ConfigError, DuplicateJob, Unavailable
from scheduler.model import JobStatus
from scheduler.runtime.library import Scheduler
from tests.cluster.conftest import ClusterDb
from tests.cluster.pg import PgServer

pytestmark = pytest.mark.integration


class Ledger:
    """What the nodes' python task saw: one entry per execution, by fire id."""

    def __init__(self) -> None:
        self.fires: list[str] = []
        self.nodes: Counter[str] = Counter()
        self.gate = asyncio.Event()
        self.gate.set()
        self.active = 0
        self.peak = 0

    def task(self, node: str) -> Callable[[Any, Any], Awaitable[str]]:
        async def work(payload: Any, ctx: Any) -> str:
            self.fires.append(ctx.fire_id)
            self.nodes[node] += 1
            self.active += 1
            self.peak = max(self.peak, self.active)
            try:
                await self.gate.wait()
                if isinstance(payload, dict) and payload.get("sleep"):
                    await asyncio.sleep(float(payload["sleep"]))
            finally:
                self.active -= 1
            return node

        return work


def node_config(cluster: ClusterDb, node_id: str, **scheduler: Any) -> Config:
    return Config(
        scheduler=SchedulerConfig(scan_interval=1.0, **scheduler),
        cluster=cluster.config(node_id=node_id, lease=2.0),
    )


@asynccontextmanager
async def nodes(
    cluster: ClusterDb, ledger: Ledger, *names: str, concurrency: int | None = None
) -> AsyncIterator[list[Scheduler]]:
    await cluster.migrate()
    started: list[Scheduler] = []
    try:
        for name in names:
            sched = Scheduler(node_config(cluster, name), environ={})
            sched.register_task("work", ledger.task(name), concurrency=concurrency)
            await sched.start()
            started.append(sched)
        yield started
    finally:
        ledger.gate.set()
        for sched in started:
            await sched.stop(grace=1.0)


async def until(check: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.02)


def _completed(sched: Scheduler, count: int) -> bool:
    return sched.store.counts[JobStatus.COMPLETED] == count


async def test_every_fire_runs_once_whichever_node_claims_it(cluster: ClusterDb) -> None:
    ledger = Ledger()
    async with nodes(cluster, ledger, "a", "b") as (a, b):
        refs = [await a.create_task("work", {"n": n}) for n in range(40)]
        refs += [await b.create_task("work", {"n": n}) for n in range(40)]
        await until(lambda: len(ledger.fires) >= 80)
        await asyncio.sleep(0.3)
        assert len(ledger.fires) == 80
        assert len(set(ledger.fires)) == 80  # no fire ran twice
        for sched in (a, b):
            await until(functools.partial(_completed, sched, 80))
        assert set(ledger.nodes) <= {"a", "b"}
        assert all(b.get_task_status(ref.id) is not None for ref in refs)


async def test_what_one_node_writes_the_others_read(cluster: ClusterDb) -> None:
    ledger = Ledger()
    async with nodes(cluster, ledger, "a", "b") as (a, b):
        ref = await a.create_task("work", None, schedule={"delay": "1h"})
        assert a.service.get(ref.id).status is JobStatus.PENDING  # read-your-writes
        await until(lambda: b.service.find(ref.id) is not None, within=2.0)
        cancelled = await b.service.cancel(ref.id)
        assert cancelled.status is JobStatus.CANCELLED
        await until(lambda: a.service.get(ref.id).status is JobStatus.CANCELLED, within=2.0)
        card_a, card_b = a.store.counts, b.store.counts
        assert card_a == card_b


async def test_a_unique_key_held_on_one_node_is_a_409_on_another(cluster: ClusterDb) -> None:
    ledger = Ledger()
    async with nodes(cluster, ledger, "a", "b") as (a, b):
        first = await a.create_task("work", None, schedule={"delay": "1h"}, workflow_id="wf")
        with pytest.raises(DuplicateJob) as caught:
            await b.create_task("work", None, schedule={"delay": "1h"}, workflow_id="wf")
        assert first.id in str(caught.value.message) or caught.value is not None


async def test_the_same_node_id_twice_refuses_to_start(cluster: ClusterDb) -> None:
    ledger = Ledger()
    async with nodes(cluster, ledger, "a"):
        twin = Scheduler(node_config(cluster, "a"), environ={})
        with pytest.raises(ConfigError, match="in use by a live scheduler"):
            await twin.start()
        await twin.stop()


async def test_a_task_limit_holds_across_nodes(cluster: ClusterDb) -> None:
    ledger = Ledger()
    async with nodes(cluster, ledger, "a", "b", concurrency=1) as (a, _b):
        for _ in range(6):
            await a.create_task("work", {"sleep": 0.1})
        await until(lambda: len(ledger.fires) == 6)
        assert ledger.peak == 1


async def test_a_node_cut_off_fences_itself_and_its_run_moves_with_its_fire_id(
    cluster: ClusterDb,
) -> None:
    ledger = Ledger()
    async with nodes(cluster, ledger, "a", "b") as (a, b):
        ledger.gate.clear()  # runs hang until released
        ref = await a.create_task("work", None)
        await until(lambda: len(ledger.fires) == 1)
        runner, other = (a, b) if ledger.nodes["a"] else (b, a)
        assert runner.cluster is not None

        async def cut_off() -> None:
            raise Unavailable("the database is unreachable: cut off by the test")

        runner.cluster.node.renew = cut_off  # type: ignore[method-assign]
        # After its lease the runner stops its run ("lease lost") and records nothing; the
        # other node reaps the run and reruns it with the same fire id.
        await until(lambda: len(ledger.fires) == 2, within=2.0 * 1.25 + 3.0)
        assert ledger.fires[0] == ledger.fires[1]
        assert runner.cluster.node.lease_lost >= 1
        ledger.gate.set()
        await until(lambda: other.service.get(ref.id).status is JobStatus.COMPLETED)
        job = other.service.get(ref.id)
        outcomes = [r.outcome.value for r in other.service.runs(job)]
        assert outcomes.count("success") == 1
        assert "interrupted" in outcomes


class AheadClock(SystemClock):
    """The system clock, read ``ahead`` seconds in the future (a node whose NTP is off)."""

    def __init__(self, ahead: float) -> None:
        self.ahead = ahead

    def time(self) -> float:
        return time.time() + self.ahead

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return super().call_at(when - self.ahead, callback)


async def test_a_node_whose_clock_runs_ahead_never_fires_early_and_says_so(
    cluster: ClusterDb, caplog: pytest.LogCaptureFixture
) -> None:
    """Guarantee 7: time is the database's. A node 3 s ahead fires each job at the database's
    instant (this host's clock, the database being local), not 3 s early; the skew is logged
    and exported."""
    await cluster.migrate()
    started: dict[str, float] = {}

    async def work(_payload: Any, ctx: Any) -> None:
        started[ctx.fire_id] = time.time()

    sched = Scheduler(node_config(cluster, "ahead"), clock=AheadClock(3.0), environ={})
    sched.register_task("work", work)
    caplog.set_level(logging.WARNING, logger="scheduler.cluster")
    await sched.start()
    try:
        refs = [
            await sched.create_task("work", schedule={"delay": f"{500 + 100 * n}ms"})
            for n in range(5)
        ]
        await until(lambda: len(started) == 5, within=10.0)
        for fire_id, at in started.items():
            fire = int(fire_id.split(":")[1]) / 1000
            assert at >= fire, f"{fire_id} started {fire - at:.3f} s early"
            assert at - fire < 1.0, f"{fire_id} started {at - fire:.3f} s late"
        assert sched.cluster is not None
        skew = {name: value for _, name, _, value in sched.cluster.metrics()}
        assert skew["scheduler_cluster_clock_skew_seconds"] == pytest.approx(3.0, abs=0.2)
        assert any("ahead of the database" in r.getMessage() for r in caplog.records)
        assert all(sched.get_task_status(ref.id) is not None for ref in refs)
    finally:
        await sched.stop(grace=1.0)


async def test_a_full_node_waits_for_a_slot_instead_of_claiming_again_and_again(
    cluster: ClusterDb,
) -> None:
    """With every slot taken and work due, a node claims again when a run ends (it pokes),
    not in a loop of empty claim transactions (it made hundreds a second)."""
    await cluster.migrate()
    ledger = Ledger()
    sched = Scheduler(node_config(cluster, "full", max_concurrency=1), environ={})
    sched.register_task("work", ledger.task("full"))
    await sched.start()
    try:
        ledger.gate.clear()  # the first run holds the only slot
        for _ in range(2):
            await sched.create_task("work")
        await until(lambda: ledger.active == 1)
        assert sched.cluster is not None
        before = sched.cluster.engine.claims
        await asyncio.sleep(1.0)
        assert sched.cluster.engine.claims - before <= 3
        ledger.gate.set()
        await until(lambda: len(ledger.fires) == 2)  # the second runs once the slot is free
    finally:
        await sched.stop(grace=1.0)


async def test_after_a_database_restart_the_node_holds_its_id_again(
    pg_factory: Callable[..., PgServer],
) -> None:
    """A restart of PostgreSQL ends the session that held the node's lock. The node takes it
    again at its next heartbeat, so a second process with its ``node_id`` still cannot start
    (before, the lock was simply gone and the twin started)."""
    server = pg_factory()
    cluster = ClusterDb(server=server, schema="restart")
    await cluster.migrate()
    ledger = Ledger()
    async with nodes(cluster, ledger, "one") as (first,):
        assert first.cluster is not None
        await server.arestart()
        node = first.cluster.node
        before = node.lease_lost
        await asyncio.sleep(node.lease / 2)  # two heartbeats: the lock is taken again
        twin = Scheduler(node_config(cluster, "one"), environ={})
        with pytest.raises(ConfigError, match="'one' is in use by a live scheduler"):
            await twin.start()
        assert node.lease_lost == before  # a short restart does not fence the node
