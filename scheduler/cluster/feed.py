"""Events across nodes: the ``events`` table relayed to every node's :class:`~scheduler.events.Hub`.

A writer inserts its streamed records into ``events`` in the transaction that makes them true
(:func:`event_row`, :func:`insert_events`) and notifies ``e:<seq>``. On every node the
replica's listener hands that over (:meth:`Feed.poke`; no second LISTEN connection), and the
feed reads ``events`` past the last sequence number it relayed and publishes each row to the
local hub as its typed record with ``id=seq``. So an SSE client's ``Last-Event-ID`` is the
global sequence number, and it can resume on any node.

Holes. ``seq`` is taken from a sequence when a row is inserted, not when it commits: a writer
holding seq 10 may commit after one holding seq 11. Reading "seq > last" at that moment and
moving ``last`` to 11 would lose 10 for good; publishing 10 after 11 would break resumption
(a client holding 11 would skip 10). So the feed publishes in seq order only, and stops at a
hole. A hole is either a writer still in flight or a number that will never appear (its
transaction rolled back; rows pruned). To tell them apart without a lock on writers, the feed
takes the database's snapshot when it first sees the hole: every writer that could hold a
number below the highest one seen then is in that snapshot's in-progress list. Once none of
them is still in progress (checked with a newer snapshot, so what they committed is visible to
the next read), every hole below that number is final and is skipped. A writer inserts its
events after its other writes (it has a transaction id by then), which this relies on. While a
hole waits, the feed looks again every :data:`GAP_POLL` seconds; past ``gap_limit`` seconds
(a long unrelated writer on the same server keeps the snapshot's list busy) the hole is
skipped all the same and logged.

In-process subscribers (logs, metrics, alerts) never see relayed records: each node's own
producers publish to them, so nothing is counted or alerted twice across the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import msgspec

from scheduler.cluster import db
from scheduler.cluster.db import Connection, Pool
from scheduler.events import Event, Hub, from_wire

log = logging.getLogger("scheduler.cluster")

#: Seconds between looks at a hole that may still fill.
GAP_POLL: Final = 0.01
#: Seconds a hole may hold the feed back before it is skipped whatever the snapshot says.
GAP_LIMIT: Final = 5.0
#: Seconds before the feed tries again after the database could not be read.
RETRY: Final = 1.0
#: Rows read per query.
BATCH: Final = 1000
#: Rows pruned per statement, and statements per :func:`prune` call.
PRUNE_BATCH: Final = 10_000
PRUNE_ROUNDS: Final = 1000

Row = tuple[int | None, str, str, float]
"""An ``events`` row to insert: ``(job_id, type, data as JSON text, at)``."""

_INSERT: Final = """
WITH added AS (
    INSERT INTO events (job_id, type, data, at)
    SELECT job_id, type, data::jsonb, at
    FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::float8[]) AS e(job_id, type, data, at)
    RETURNING seq)
SELECT max(seq), pg_notify(%s, 'e:' || max(seq)) FROM added
"""
_READ: Final = "SELECT seq, job_id, type, data FROM events WHERE seq > %s ORDER BY seq LIMIT %s"
_WINDOW: Final = (
    "SELECT coalesce(min(seq) - 1, 0) FROM (SELECT seq FROM events ORDER BY seq DESC LIMIT %s) AS w"
)
_SNAPSHOT: Final = "SELECT pg_current_snapshot()::text"
_WRITERS_DONE: Final = """
SELECT coalesce(bool_and(pg_visible_in_snapshot(x.id, pg_current_snapshot())), true)
FROM pg_snapshot_xip(%s::pg_snapshot) AS x(id)
"""
# The oldest rows by the primary key (``at`` follows ``seq`` closely and has no index).
_PRUNE: Final = """
DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT %s)
    AND at < extract(epoch FROM clock_timestamp()) - %s
"""
_NUL: Final = b"\\u0000"
_encode = msgspec.json.Encoder().encode


def event_row(event: Event, at: float) -> Row:
    """The ``events`` row for the streamed record ``event`` at ``at`` (epoch seconds): its
    wire name as ``type`` and its ``data()`` as JSON text (the column is jsonb). PostgreSQL's
    jsonb cannot hold the character U+0000, so one in a string (a job's payload may have it)
    is stored, and streamed, as U+FFFD."""
    assert event.name is not None, "only streamed records are written"
    data = _encode(event.data())
    if _NUL in data:  # rare: only then walk the document
        data = _encode(_without_nul(event.data()))
    return (event.job_id, event.name, data.decode(), at)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\0", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(item) for item in value]
    return value


async def insert_events(conn: Connection, channel: str, rows: Sequence[Row]) -> int | None:
    """Insert ``rows`` (:func:`event_row`) in one statement and notify ``e:<highest seq>`` on
    ``channel``; the highest seq, or None for no rows. Call it inside the writer's
    transaction, after its other writes (see the module docstring on holes)."""
    if not rows:
        return None
    job_ids, types, data, ats = (list(column) for column in zip(*rows, strict=True))
    cur = await conn.execute(_INSERT, [job_ids, types, data, ats, channel])
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def prune(pool: Pool, keep_seconds: float) -> int:
    """Delete events older than ``keep_seconds`` by the database clock (oldest first, in
    bounded statements); how many were deleted. For the housekeeper: correctness never
    depends on it, a feed skips a pruned hole like any other."""
    total = 0
    async with pool.connection() as conn:
        for _ in range(PRUNE_ROUNDS):
            cur = await conn.execute(_PRUNE, [PRUNE_BATCH, keep_seconds])
            total += cur.rowcount
            if cur.rowcount <= 0:
                break
    return total


class _Hole(NamedTuple):
    """A hole seen in the sequence, and what settles it (see the module docstring)."""

    snapshot: str  # the database snapshot taken when it was seen
    below: int  # the highest seq seen then: holes under it are final once its writers end
    since: float  # loop time it was seen


class Feed:
    """Relays the ``events`` table to ``hub`` (a ``Hub(relayed=True)``), in seq order."""

    def __init__(
        self, hub: Hub, *, backlog: int = 1000, batch: int = BATCH, gap_limit: float = GAP_LIMIT
    ) -> None:
        if not hub.relayed:
            raise ValueError("the cluster feed relays to a Hub(relayed=True)")
        self.hub = hub
        self.backlog = backlog
        self.batch = batch
        self.gap_limit = gap_limit
        #: The highest seq relayed or skipped: the next read starts after it.
        self.last = 0
        self.pool: Pool | None = None
        self._hole: _Hole | None = None
        self._poked = asyncio.Event()

    async def load(self, pool: Pool) -> None:
        """Start after the newest ``backlog`` events and relay those, so that a client can
        resume on a node that has just started."""
        self.pool = pool
        async with pool.connection() as conn:
            cur = await conn.execute(_WINDOW, [self.backlog])
            row = await cur.fetchone()
            self.last = int(row[0]) if row is not None else 0
            while await self._pass(conn):
                pass

    def poke(self) -> None:
        """Events were committed (an ``e:`` notification), or some may have been missed (the
        listener reconnected): read again."""
        self._poked.set()

    async def serve(self) -> None:
        """Relay on every poke, and look again at a pending hole, until cancelled."""
        while True:
            if self._hole is None:
                await self._poked.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(GAP_POLL):
                        await self._poked.wait()
            self._poked.clear()
            try:
                await self.catch_up()
            except Exception as exc:
                if not db.is_unreachable(exc):
                    raise
                log.warning("event feed: cannot read events: %s", db.reason(exc))
                await asyncio.sleep(RETRY)
                self._poked.set()

    async def catch_up(self) -> None:
        """Relay every event committed so far, up to the first hole that may still fill."""
        assert self.pool is not None, "load() first"
        async with self.pool.connection() as conn:
            while await self._pass(conn):
                pass

    async def _pass(self, conn: Connection) -> bool:
        """One read; True when it relayed a full batch (there may be more)."""
        settled = await self._settled(conn)
        if settled:
            self._hole = None
        cur = await conn.execute(_READ, [self.last, self.batch])
        rows = await cur.fetchall()
        for seq, job_id, type_, data in rows:
            if seq > self.last + 1 and seq > settled:
                if self._hole is None:
                    await self._hold(conn, rows[-1][0])
                return False
            self._relay(seq, job_id, type_, data)
        if self._hole is not None and self.last >= self._hole.below:
            self._hole = None  # it filled by itself
        return len(rows) == self.batch

    async def _settled(self, conn: Connection) -> int:
        """The seq under which every hole is final now (0: none is known to be)."""
        hole = self._hole
        if hole is None:
            return 0
        waited = asyncio.get_running_loop().time() - hole.since
        if waited >= self.gap_limit:
            log.warning(
                "event feed: skipping missing events after seq %d: waited %.1f s for their "
                "writers (a long transaction on the server?)",
                self.last,
                waited,
            )
            return hole.below
        cur = await conn.execute(_WRITERS_DONE, [hole.snapshot])
        row = await cur.fetchone()
        return hole.below if row is not None and row[0] else 0

    async def _hold(self, conn: Connection, below: int) -> None:
        cur = await conn.execute(_SNAPSHOT)
        row = await cur.fetchone()
        assert row is not None
        self._hole = _Hole(str(row[0]), below, asyncio.get_running_loop().time())

    def _relay(self, seq: int, job_id: int | None, type_: str, data: Any) -> None:
        self.last = seq
        try:
            event = from_wire(type_, job_id, data) if isinstance(data, dict) else None
        except msgspec.ValidationError as exc:
            log.warning("event feed: event %d (%s) does not read: %s", seq, type_, exc)
            return
        if event is None:
            log.warning("event feed: event %d has a type this node does not know: %r", seq, type_)
            return
        self.hub.publish(event, id=seq)
