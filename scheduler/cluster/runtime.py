"""The parts of a cluster node, put together for a :class:`~scheduler.runtime.library.Scheduler`
whose config has a ``[cluster]`` section (the only module the runtime imports, and only then).

Built without I/O (the daemon builds its API around the scheduler before it starts); started in
order: the pool, the schema's version, the node's registration (its lock, epoch and slot), the
replica and the event feed loaded, then this node's runs from before a restart handled at once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol

import msgspec

from scheduler.clock import Clock
from scheduler.cluster.db import Pool, connect, connect_info, db_errors, make_pool
from scheduler.cluster.engine import ClusterEngine
from scheduler.cluster.feed import Feed
from scheduler.cluster.node import Node, NodeClock
from scheduler.cluster.replica import Replica
from scheduler.cluster.schema import check_version
from scheduler.cluster.service import ClusterService
from scheduler.config import Config, ServerConfig
from scheduler.engine.queue import TaskRuntime
from scheduler.events import Hub
from scheduler.ids import IdGenerator
from scheduler.store import Store


class Host(Protocol):
    """What :func:`build` takes from the :class:`~scheduler.runtime.library.Scheduler` it
    serves (a protocol: this layer does not import the runtime above it)."""

    clock: Clock  # replaced by the node's clock (the database's time)

    @property
    def config(self) -> Config: ...

    @property
    def environ(self) -> Mapping[str, str]: ...

    @property
    def store(self) -> Store: ...

    @property
    def hub(self) -> Hub: ...

    @property
    def runtimes(self) -> Mapping[str, TaskRuntime]: ...

    def known_task(self, name: str) -> bool: ...


log = logging.getLogger("scheduler.cluster")

#: Seconds a start waits for the database before it gives up (systemd restarts it).
CONNECT_WAIT = 30.0


@dataclass
class ClusterParts:
    pool: Pool
    node: Node
    replica: Replica
    feed: Feed
    engine: ClusterEngine
    service: ClusterService
    password: str | None

    async def start(self) -> None:
        with db_errors(self.password):
            await self.pool.open(wait=True, timeout=CONNECT_WAIT)
        async with self.pool.connection() as conn:
            await check_version(conn, self.node.cluster.schema)
        await self.node.register()
        await self.replica.load(self.pool)
        await self.feed.load(self.pool)
        ids = IdGenerator(slot=self.node.slot)
        for job_id in self.replica.store.jobs:
            ids.observe(job_id)
        self.service.ids = ids
        count = await self.engine.recover_interrupted()
        log.info(
            "cluster node %s: %d jobs in the replica; %d runs from before the restart handled",
            self.node.node_id,
            len(self.replica.store),
            count,
        )

    async def close(self) -> None:
        await self.node.close()
        await self.pool.close()

    def set_history(self, history: int) -> None:
        """A reloaded ``history``: the runs kept per job, in the database and the replica."""
        self.engine.history = self.engine.claimer.history = history

    def metrics(self) -> list[tuple[str, str, str, float]]:
        """This node's cluster figures, for ``/metrics``."""
        engine, node = self.engine, self.node
        return [
            ("gauge", "scheduler_cluster_nodes", "Live nodes (heartbeat within the lease).",
             node.live_nodes),
            ("gauge", "scheduler_cluster_replica_lag_seconds",
             "How far this node's replica lags the database.", self.replica.lag_now()),
            ("gauge", "scheduler_cluster_clock_skew_seconds",
             "This node's clock minus the database's (due times follow the database).",
             -node.offset),
            ("counter", "scheduler_cluster_claims", "Claim transactions made.", engine.claims),
            ("counter", "scheduler_cluster_claim_seconds",
             "Time spent in claim transactions.", engine.claim_seconds),
            ("counter", "scheduler_cluster_lease_lost",
             "Times this node lost its lease and fenced itself.", node.lease_lost),
            ("counter", "scheduler_cluster_fenced_outcomes",
             "Run ends refused by the fence (the run was reaped while this node was away).",
             engine.fenced),
            ("gauge", "scheduler_cluster_housekeeper",
             "1 on the node that does retention and pruning now.",
             1.0 if node.housekeeper else 0.0),
        ]  # fmt: skip

    def status(self) -> dict[str, Any]:
        """The status card's ``cluster`` object."""
        self.replica.nodes = self.node.live_nodes
        return {**self.replica.status(), "housekeeper": self.node.housekeeper}


def build(sched: Host) -> ClusterParts:
    """The node's parts around ``sched``'s store, hub (relayed) and tasks."""
    config = sched.config
    cluster = config.cluster
    assert cluster is not None
    conninfo, password = connect_info(config, sched.environ)
    pool = make_pool(cluster, conninfo)
    node = Node(
        pool,
        cluster,
        conninfo,
        sched.clock,
        config_hash=config_hash(config),
        version=_version(),
    )

    # Every instant of this node is the database's (see NodeClock).
    sched.clock = clock = NodeClock(sched.clock, node)

    async def listen() -> Any:
        return await connect(cluster, conninfo)

    replica = Replica(sched.store, schema=cluster.schema, node=cluster.node_id, connect=listen)
    node.lag = replica.lag_now
    feed = Feed(sched.hub)
    limits = config.scheduler
    engine = ClusterEngine(
        sched.store,
        clock,
        tasks=sched.runtimes,
        hub=sched.hub,
        pool=pool,
        node=node,
        replica=replica,
        feed=feed,
        schema=cluster.schema,
        history=limits.history,
        max_concurrency=limits.max_concurrency,
        scan_interval=limits.scan_interval,
        retention=limits.retention,
        default_timeout=config.default_timeout,
    )
    service = ClusterService(sched.store, engine, clock, hub=sched.hub, known_task=sched.known_task)
    return ClusterParts(pool, node, replica, feed, engine, service, password)


def config_hash(config: Config) -> str:
    """A digest of what every node's config must agree on (not the node's own id)."""
    cluster = config.cluster
    same = msgspec.structs.replace(
        config,
        path=None,
        server=ServerConfig(),  # each node listens where it likes
        cluster=None if cluster is None else msgspec.structs.replace(cluster, node_id=""),
    )
    return hashlib.blake2b(msgspec.json.encode(same), digest_size=8).hexdigest()


def _version() -> str:
    try:
        return metadata.version("scheduler")
    except metadata.PackageNotFoundError:
        return "unknown"
