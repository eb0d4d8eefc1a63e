"""Nodes as the replica and feed tests build them, and "another node" writing with plain SQL.

:class:`Node` is what a daemon in cluster mode holds for its view of the job set: a Store, a
relayed Hub, a :class:`~scheduler.cluster.replica.Replica` and a
:class:`~scheduler.cluster.feed.Feed` on one schema, wired as the lead wires them
(``replica.on_events = feed.poke``), listening in tasks while :meth:`Node.running`. Its
listener connections go through :meth:`Node.connect`, which the test can hold shut
(:attr:`Node.gate`) to keep a node disconnected while others write. :class:`Writer` writes
rows and notifications the way the design says writers do, without the lead's engine.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from psycopg import sql

from scheduler.cluster import db
from scheduler.cluster.codec import encode_job, encode_run, job_columns
from scheduler.cluster.db import channel
from scheduler.cluster.feed import Feed, Row, insert_events
from scheduler.cluster.replica import Replica
from scheduler.events import Hub
from scheduler.model import Job, Run
from scheduler.store import Store
from tests.polling import until

if TYPE_CHECKING:
    from tests.cluster.conftest import ClusterDb


@contextlib.asynccontextmanager
async def pool_for(cluster: ClusterDb) -> AsyncIterator[db.Pool]:
    """A migrated schema and an open pool on it."""
    await cluster.migrate()
    conninfo, _ = db.connect_info(cluster.config(), {})
    pool = await db.open_pool(cluster.config(), conninfo, wait=10.0)
    try:
        yield pool
    finally:
        await pool.close()


class Node:
    """One node's replica and feed (see the module docstring)."""

    def __init__(self, cluster: ClusterDb, pool: db.Pool, name: str, *, hub: Hub | None = None,
                 store: Store | None = None) -> None:  # fmt: skip
        self.cluster = cluster
        self.pool = pool
        self.store = store if store is not None else Store(history=5)
        self.hub = hub if hub is not None else Hub(relayed=True)
        self.replica = Replica(self.store, schema=cluster.schema, node=name, connect=self.connect)
        self.feed = Feed(self.hub)
        self.replica.on_events = self.feed.poke
        #: Cleared: the node cannot (re)connect its listener until it is set again.
        self.gate = asyncio.Event()
        self.gate.set()
        self.listeners: list[db.Connection] = []

    async def connect(self) -> db.Connection:
        await self.gate.wait()
        conn = await self.cluster.connect()
        self.listeners.append(conn)
        return conn

    @property
    def listener_pid(self) -> int:
        """The server process of the current listener connection."""
        return self.listeners[-1].info.backend_pid

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Node]:
        """Loaded, listening (connected on entry), stopped on exit."""
        await self.replica.load(self.pool)
        await self.feed.load(self.pool)
        tasks = [
            asyncio.create_task(self.replica.serve()),
            asyncio.create_task(self.feed.serve()),
        ]
        try:
            await until(lambda: self.replica.connected, "the listener to connect", within=10)
            yield self
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class Writer:
    """Another node's writes: rows, then the notifications the design prescribes, in one
    transaction each."""

    def __init__(self, conn: db.Connection, schema: str) -> None:
        self.conn = conn
        self.channel = channel(schema)

    async def notify(self, *payloads: str) -> None:
        async with self.conn.transaction():
            for payload in payloads:
                await self.conn.execute("SELECT pg_notify(%s, %s)", [self.channel, payload])

    async def put(self, job: Job, version: int, *, notify: bool = True) -> None:
        columns = job_columns(job)
        names = ["id", "version", *columns, "record"]
        values = [job.id, version, *columns.values(), encode_job(job)]
        query = sql.SQL(
            "INSERT INTO jobs ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}"
        ).format(
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ").join(sql.Placeholder() * len(names)),
            sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name)) for name in names[1:]
            ),
        )
        async with self.conn.transaction():
            await self.conn.execute(query, values)
            if notify:
                await self._notify(f"j:{job.id}:{version}")

    async def delete(self, job_id: int, *, notify: bool = True) -> None:
        async with self.conn.transaction():
            await self.conn.execute("DELETE FROM runs WHERE job_id = %s", [job_id])
            await self.conn.execute("DELETE FROM jobs WHERE id = %s", [job_id])
            if notify:
                await self._notify(f"d:{job_id}")

    async def add_runs(self, job: Job, version: int, runs: Sequence[Run]) -> list[int]:
        """The runs and the job's new row (a run is always written with its job), notified;
        the runs' seqs."""
        seqs: list[int] = []
        async with self.conn.transaction():
            await self.put(job, version, notify=False)
            for run in runs:
                cur = await self.conn.execute(
                    "INSERT INTO runs (job_id, record) VALUES (%s, %s) RETURNING seq",
                    [run.job_id, encode_run(run)],
                )
                row = await cur.fetchone()
                assert row is not None
                seqs.append(int(row[0]))
            await self._notify(f"j:{job.id}:{version}")
            await self._notify(f"r:{job.id}")
        return seqs

    async def events(self, rows: Sequence[Row]) -> int:
        """The rows in one transaction; the highest seq."""
        async with self.conn.transaction():
            seq = await insert_events(self.conn, self.channel, rows)
        assert seq is not None
        return seq

    async def _notify(self, payload: str) -> None:
        await self.conn.execute("SELECT pg_notify(%s, %s)", [self.channel, payload])


async def rows_of(conn: db.Connection, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, params)
    return await cur.fetchall()
