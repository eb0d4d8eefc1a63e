"""This process as a member of the cluster: its identity, its lease, and the database's clock.

Registration. A node holds a session advisory lock keyed on its ``node_id`` for its whole life,
on a connection of its own: a second live process with the same id cannot take it and refuses
to start, naming the holder; the lock goes with the holder's connection when it dies. Each
registration increments the node's ``epoch`` (the fence: completions and lease renewals name
it) and keeps its ``slot`` (the 8 bits that make its job ids its own).

Lease. Every ``lease/4`` the node renews ``nodes.heartbeat_at`` and the ``lease_until`` of its
runs in flight, and measures its clock against the database's (the midpoint of the round trip).
If it cannot renew before ``last renewal + lease - lease/8`` (on the monotonic clock: a node
woken from SIGSTOP sees at once that its deadline passed) it fences itself: it stops claiming,
stops its runs ("lease lost"), and registers again with a new epoch once the database answers.
Its rows may meanwhile have been reaped by another node (after ``lease``), which reruns them
per ``onCrash``; its late completions are then refused by the fence.

The housekeeper lease (``meta.housekeeper``) is taken and renewed with the heartbeat: exactly
one live node at a time does retention, pruning and static-job reconciliation.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
from collections.abc import Callable

import psycopg

from scheduler.clock import Clock, Timer
from scheduler.cluster.db import Connection, Pool, advisory_key, connect, db_errors
from scheduler.config.model import ClusterConfig
from scheduler.errors import ConfigError, Unavailable

log = logging.getLogger("scheduler.cluster")

#: Node slots: 8 bits of a job id (ms << 22 | slot << 14 | seq).
SLOTS = 256
#: Skew between this node's clock and the database's that is worth a warning, in seconds.
SKEW_WARNING = 1.0


class Node:
    def __init__(
        self,
        pool: Pool,
        cluster: ClusterConfig,
        conninfo: str,
        clock: Clock,
        *,
        config_hash: str,
        version: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.cluster = cluster
        self.conninfo = conninfo
        self.clock = clock
        self.node_id = cluster.node_id
        self.lease = cluster.lease
        self.config_hash = config_hash
        self.version = version
        self.monotonic = monotonic
        self.epoch = 0
        self.slot = -1
        self.offset = 0.0  # database clock minus this node's clock
        self.fenced = True  # until registered
        self.housekeeper = False
        self.live_nodes = 0
        self.lease_lost = 0  # times this node fenced itself
        self._renewed = -math.inf
        self._warned = 0.0  # the offset last warned about
        self._lock: Connection | None = None
        #: Called when the node fences itself (the engine stops claiming and its runs).
        self.on_fenced: Callable[[], None] = lambda: None
        #: This node's replica lag in seconds, written with each heartbeat (cluster status).
        self.lag: Callable[[], float] = lambda: 0.0
        #: Called after a registration (the first, and each after a fence).
        self.on_registered: Callable[[], None] = lambda: None

    # --- time ----------------------------------------------------------------------------

    def db_time(self) -> float:
        """Now on the database's clock, as this node estimates it."""
        return self.clock.time() + self.offset

    def lease_valid(self) -> bool:
        """Whether this node may still act on its runs (its lease, on the monotonic clock)."""
        return not self.fenced and self.monotonic() < self._renewed + self.lease - self.lease / 8

    # --- registration --------------------------------------------------------------------

    async def register(self) -> None:
        """Take this node's lock and row; raises ConfigError when another live process has
        the same ``node_id``, Unavailable when the database cannot be reached."""
        if self._lock is None or self._lock.closed:
            self._lock = await connect(self.cluster, self.conninfo)
        with db_errors():
            if not await self._try_lock(self._lock):
                await self._refuse()
            async with self.pool.connection() as conn, conn.transaction():
                sent = self.monotonic()
                now = await _db_now(conn)
                self._measure(now, sent)
                self.epoch, self.slot = await self._row(conn, now)
        self._renewed = self.monotonic()
        self.fenced = False
        log.info(
            "cluster node %s registered (epoch %d, slot %d, clock skew %.3f s)",
            self.node_id,
            self.epoch,
            self.slot,
            -self.offset,
        )
        self.on_registered()

    async def _try_lock(self, conn: Connection) -> bool:
        key = advisory_key("node", self.cluster.schema, self.node_id)
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", [key])
        row = await cur.fetchone()
        return row is not None and bool(row[0])

    async def _hold_lock(self) -> bool:
        """Whether this process still holds its node lock. A database restart ends the lock's
        session: it is taken again on a new connection; False when another process took it
        meanwhile (a twin with this ``node_id``)."""
        lock = self._lock
        if lock is not None and not lock.closed:
            try:
                await lock.execute("SELECT 1")
            except psycopg.Error:
                await lock.close()
            else:
                return True
        self._lock = await connect(self.cluster, self.conninfo)
        with db_errors():
            return await self._try_lock(self._lock)

    async def _refuse(self) -> None:
        holder = "another process"
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT host, pid FROM nodes WHERE node_id = %s", [self.node_id]
            )
            row = await cur.fetchone()
            if row is not None:
                holder = f"pid {row[1]} on {row[0]}"
        raise ConfigError(
            [
                f"cluster.node_id: {self.node_id!r} is in use by a live scheduler ({holder});"
                " give each daemon its own [cluster] node_id"
            ]
        )

    async def _row(self, conn: Connection, now: float) -> tuple[int, int]:
        # Registrations one at a time (a new node picks a free slot): taken before any row
        # lock, so two nodes registering at once wait in turn instead of deadlocking.
        key = advisory_key("register", self.cluster.schema)
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", [key])
        about = self._about(now)
        cur = await conn.execute(
            "UPDATE nodes SET epoch = epoch + 1, heartbeat_at = %(now)s, started_at = %(now)s,"
            " host = %(host)s, pid = %(pid)s, config_hash = %(config_hash)s,"
            " version = %(version)s, clock_skew = %(skew)s"
            " WHERE node_id = %(node_id)s RETURNING epoch, slot",
            about,
        )
        row = await cur.fetchone()
        if row is not None:
            return int(row[0]), int(row[1])
        cur = await conn.execute("SELECT slot FROM nodes")
        taken = {int(r[0]) for r in await cur.fetchall()}
        free = next((slot for slot in range(SLOTS) if slot not in taken), None)
        if free is None:
            raise ConfigError([f"the cluster already has {SLOTS} nodes: remove stale ones"])
        await conn.execute(
            "INSERT INTO nodes (node_id, epoch, slot, heartbeat_at, started_at, host, pid,"
            " config_hash, version, clock_skew) VALUES (%(node_id)s, 1, %(slot)s, %(now)s,"
            " %(now)s, %(host)s, %(pid)s, %(config_hash)s, %(version)s, %(skew)s)",
            {**about, "slot": free},
        )
        return 1, free

    def _about(self, now: float) -> dict[str, object]:
        """This process, as its ``nodes`` row says at a registration."""
        return {
            "node_id": self.node_id,
            "now": now,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "config_hash": self.config_hash,
            "version": self.version,
            "skew": -self.offset,
        }

    # --- the heartbeat -------------------------------------------------------------------

    async def serve(self) -> None:
        """Renew every ``lease/4``; fence on a lost lease; register again after one."""
        period = self.lease / 4
        while True:
            await asyncio.sleep(period)
            if not self.fenced and not self.lease_valid():
                self._fence("the lease expired before it could be renewed")
            try:
                if self.fenced:
                    await self.register()
                else:
                    await self._renew_in_time()
            except Unavailable as exc:
                log.warning("cluster node %s: %s", self.node_id, exc.message)
            except ConfigError as exc:  # a twin holds the id: stay fenced, try again later
                log.error(  # noqa: TRY400 - a known condition, said in one line
                    "cluster node %s: %s", self.node_id, "; ".join(exc.problems)
                )

    async def _renew_in_time(self) -> None:
        """Renew, giving up at the lease's deadline: a renewal that waits on an unreachable
        database (a pool's wait, a lost network) must not hold the fence back past it."""
        left = self._renewed + self.lease - self.lease / 8 - self.monotonic()
        try:
            async with asyncio.timeout(max(left, 0.0)):
                await self.renew()
        except TimeoutError:
            self._fence("the database did not answer the renewal before the lease's end")

    async def renew(self) -> None:
        if not await self._hold_lock():
            self._fence("another process took this node's id while the database was away")
            return
        sent = self.monotonic()
        async with self.pool.connection() as conn, conn.transaction():
            now = await _db_now(conn)
            self._measure(now, sent)
            cur = await conn.execute(
                "UPDATE nodes SET heartbeat_at = %s, clock_skew = %s, replica_lag = %s"
                " WHERE node_id = %s AND epoch = %s",
                [now, -self.offset, self.lag(), self.node_id, self.epoch],
            )
            if cur.rowcount == 0:
                self._fence("its registration was replaced")
                return
            await conn.execute(
                "UPDATE inflight SET lease_until = %s WHERE node_id = %s AND epoch = %s",
                [now + self.lease, self.node_id, self.epoch],
            )
            self.housekeeper = await self._housekeeping(conn, now)
            cur = await conn.execute(
                "SELECT count(*) FROM nodes WHERE heartbeat_at > %s", [now - self.lease]
            )
            row = await cur.fetchone()
            self.live_nodes = int(row[0]) if row is not None else 0
        self._renewed = sent

    async def _housekeeping(self, conn: Connection, now: float) -> bool:
        cur = await conn.execute(
            "UPDATE meta SET value = jsonb_build_object('node', %s::text, 'until', %s::float8)"
            " WHERE key = 'housekeeper' AND (value->>'node' = %s"
            " OR coalesce((value->>'until')::float8, 0) < %s) RETURNING 1",
            [self.node_id, now + self.lease, self.node_id, now],
        )
        return await cur.fetchone() is not None

    def _measure(self, db_now: float, sent: float) -> None:
        """The database clock minus ours, at the midpoint of the round trip."""
        elapsed = self.monotonic() - sent
        self.offset = db_now - (self.clock.time() - elapsed / 2)
        # Said when it first passes the threshold and whenever it moves by as much again, not
        # at every heartbeat.
        if abs(self.offset) > SKEW_WARNING and abs(self.offset - self._warned) > SKEW_WARNING:
            self._warned = self.offset
            log.warning(
                "cluster node %s: its clock is %.3f s %s the database's; due times follow"
                " the database",
                self.node_id,
                abs(self.offset),
                "behind" if self.offset > 0 else "ahead of",
            )

    def _fence(self, why: str) -> None:
        if self.fenced:
            return
        self.fenced = True
        self.housekeeper = False
        self.lease_lost += 1
        log.error(
            "cluster node %s fenced itself: %s; its runs stop and it registers again",
            self.node_id,
            why,
        )
        self.on_fenced()

    async def close(self) -> None:
        """Leave: the lock and the heartbeat end (others reap nothing: runs were drained)."""
        if self._lock is not None and not self._lock.closed:
            await self._lock.close()
        self._lock = None


class NodeClock:
    """This node's clock read as the database's: ``time()`` is the database's now, as
    measured at the last heartbeat, and ``call_at`` takes a database instant. A cluster node
    computes every instant with it (creation, first runs, retries, timers), so a node whose own
    clock runs ahead never fires early and jobs created on it are not shifted."""

    def __init__(self, base: Clock, node: Node) -> None:
        self.base = base
        self.node = node

    def time(self) -> float:
        return self.base.time() + self.node.offset

    def monotonic(self) -> float:
        return self.base.monotonic()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return self.base.call_at(when - self.node.offset, callback)

    async def sleep(self, seconds: float) -> None:
        await self.base.sleep(seconds)


async def _db_now(conn: Connection) -> float:
    cur = await conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
    row = await cur.fetchone()
    assert row is not None
    return float(row[0])
