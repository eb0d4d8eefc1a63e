"""A cluster node's background duties: the reaper, which any node runs (the runs of nodes whose
lease expired follow ``onCrash``), and the housekeeping only the housekeeper runs (retention,
jobs left ``running`` by an import, pruning old events)."""

from __future__ import annotations

import asyncio
import logging
from typing import Final, Protocol

from scheduler.cluster.complete import reap, reap_orphans
from scheduler.cluster.db import Connection, Pool, db_now
from scheduler.cluster.feed import prune
from scheduler.cluster.node import Node
from scheduler.cluster.rows import Writes
from scheduler.errors import Unavailable

log = logging.getLogger("scheduler.cluster")


class ClusterEngine(Protocol):
    """What these loops use of :class:`scheduler.cluster.engine.ClusterEngine`."""

    node: Node
    pool: Pool
    scan_interval: float
    retention: float

    def writes(self, conn: Connection) -> Writes: ...

    def applied(self, writes: Writes) -> None: ...


#: Seconds the events table keeps a record (what an SSE client can resume from).
EVENTS_KEEP: Final = 3600.0


async def reap_loop(engine: ClusterEngine) -> None:
    """Every ``lease/4``, while this node's lease holds: reap the runs of expired leases."""
    while True:
        await asyncio.sleep(engine.node.lease / 4)
        if not engine.node.lease_valid():
            continue
        try:
            async with engine.pool.connection() as conn, conn.transaction():
                writes = engine.writes(conn)
                now = await db_now(conn)
                await reap(conn, writes, now=now, where="lease_until < %s", params=[now])
                await writes.flush()
            engine.applied(writes)
        except Unavailable as exc:
            log.warning("reaper: %s", exc.message)


async def housekeeping_loop(engine: ClusterEngine) -> None:
    """Every scan interval (at most a minute), on the node holding the housekeeper lease."""
    while True:
        await asyncio.sleep(min(engine.scan_interval, 60.0))
        if not engine.node.housekeeper or not engine.node.lease_valid():
            continue
        try:
            await housekeep(engine)
        except Unavailable as exc:
            log.warning("housekeeping: %s", exc.message)


async def housekeep(engine: ClusterEngine) -> None:
    async with engine.pool.connection() as conn, conn.transaction():
        writes = engine.writes(conn)
        now = await db_now(conn)
        await reap_orphans(conn, writes, now=now)
        cur = await conn.execute(
            "DELETE FROM jobs WHERE status IN ('completed', 'failed', 'cancelled')"
            " AND completed < %s AND (name IS NULL OR source = 'api') RETURNING id",
            [now - engine.retention],
        )
        for row in await cur.fetchall():
            writes.gone(int(row[0]))  # their runs go with them (ON DELETE CASCADE)
        await writes.flush()
    engine.applied(writes)
    await prune(engine.pool, EVENTS_KEEP)
