"""The node's view of the whole job set: the ordinary :class:`~scheduler.store.Store`, fed from
the database, so that the status card, lists and indexes work as on a single box.

Filling. :meth:`Replica.load` reads every job, its last ``history`` runs and the paused flag
in one snapshot. After that the store changes only through :meth:`Store.apply`, never the
journal (cluster mode's journal port is the null one): by the listener, and by the writer's
own calls right after it commits (:meth:`Replica.apply_job`, :meth:`Replica.apply_delete`,
:meth:`Replica.apply_runs`), so a node reads its own writes at once.

Highest version wins. Every job row carries a ``version`` raised by each write; a job is
applied only when its version is higher than the one held, so the NOTIFY that follows a
writer's own apply is a no-op, and a late, older read never replaces a newer one. Runs carry
their ``seq``, and only runs past the highest seq held for their job are added: writers insert
a job's runs while holding its row lock, so per job, seq order is commit order. A deleted id
is remembered for a while (:data:`TOMBSTONES`), so that a writer's late apply cannot bring a
job back that another node has deleted meanwhile.

The listener (:meth:`Replica.serve`). One dedicated autocommit connection LISTENs on the
schema's channel. Payloads that arrive while the previous batch is being fetched, or in one
loop turn, form one batch, fetched with one query per kind (jobs by id, runs by job) over the
pool; then the callbacks run. Every :data:`PING_EVERY` seconds the connection is pinged: a
silently dead network is noticed within ``PING_EVERY + PING_TIMEOUT`` seconds. A NOTIFY sent
while the connection is down is lost, so on every (re)connection, after LISTEN, the replica
reloads: it compares every job's version with the database's, fetches the jobs (and their
runs: a transaction that writes a job's runs writes its row too) that differ, drops those that
disappeared, rereads the paused flag and asks for the
cancels still pending. Reconnection backs off from :data:`RECONNECT_MIN` to
:data:`RECONNECT_MAX` seconds, with jitter so that nodes do not all come back at once.

Lag (``replicaLagMs``). For each batch: the time from the arrival of its first NOTIFY on the
listener connection to the batch applied, by the monotonic clock. It leaves out the delivery
of a NOTIFY after its commit (sub-millisecond on a local network) because no clock shared with
the writer is read; it does count the fetch and the queueing behind a busy batch. While the
listener is down, it is the time since it went down (everything since may be missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Final

import msgspec
import psycopg
from psycopg import AsyncServerCursor, sql

from scheduler.cluster import db
from scheduler.cluster.codec import decode_job, decode_run
from scheduler.cluster.db import Connection, Pool, channel
from scheduler.errors import Unavailable
from scheduler.model import AddRun, DeleteJob, Job, PutJob, Run, SetMeta
from scheduler.store import Store

log = logging.getLogger("scheduler.cluster")

RECONNECT_MIN: Final = 0.1
RECONNECT_MAX: Final = 5.0
PING_EVERY: Final = 5.0
PING_TIMEOUT: Final = 5.0
#: Ids per query when many jobs are fetched at once (a reload).
CHUNK: Final = 10_000
#: Deleted ids remembered (see the module docstring).
TOMBSTONES: Final = 65_536

_JOBS: Final = "SELECT id, version, record FROM jobs WHERE id = ANY(%s)"
_RUNS: Final = "SELECT job_id, seq, record FROM runs WHERE job_id = ANY(%s) ORDER BY job_id, seq"
_PAUSED: Final = "SELECT value FROM meta WHERE key = 'paused'"
_CANCELLED: Final = "SELECT DISTINCT job_id FROM inflight WHERE cancel_reason IS NOT NULL"
_ALL_JOBS: Final = "SELECT id, version, record FROM jobs"
_ALL_VERSIONS: Final = "SELECT id, version FROM jobs"
_LAST_RUNS: Final = """
SELECT job_id, seq, record FROM (
    SELECT job_id, seq, record, row_number() OVER (PARTITION BY job_id ORDER BY seq DESC) AS n
    FROM runs) AS r
WHERE n <= %s ORDER BY job_id, seq
"""

Connect = Callable[[], Awaitable[Connection]]
_LOST = (psycopg.OperationalError, psycopg.InterfaceError, Unavailable)


class ListenerStalled(Exception):
    """The listener connection did not answer a ping in time (a dead network)."""


def _ignore(*_args: object) -> None:
    return None


class _Changes:
    """One batch of payloads, by kind (see CLUSTER_DESIGN.md for the payloads)."""

    def __init__(self, payloads: Iterable[str]) -> None:
        self.jobs: dict[int, int] = {}  # id -> highest version notified
        self.deleted: set[int] = set()
        self.runs: set[int] = set()
        self.cancels: list[int] = []
        self.events = self.wake = self.paused = False
        for payload in payloads:
            try:
                self._add(payload)
            except ValueError:
                log.warning("replica: ignoring a notification it cannot read: %r", payload[:100])

    def _add(self, payload: str) -> None:
        kind, _, rest = payload.partition(":")
        if kind == "j":
            job_id, _, version = rest.partition(":")
            key = int(job_id)
            self.jobs[key] = max(self.jobs.get(key, 0), int(version))
        elif kind == "d":
            self.deleted.add(int(rest))
        elif kind == "r":
            self.runs.add(int(rest))
        elif kind == "e":
            self.events = True
        elif kind == "c":
            self.cancels.append(int(rest))
        elif payload == "w":
            self.wake = True
        elif payload == "m:paused":
            self.paused = True
        else:
            raise ValueError(payload)


class Replica:
    """The node's in-memory job set, kept in step with the database (module docstring).

    Callbacks (set by the engine; plain callables, called synchronously after the change is
    in the store, whoever applied it: the listener, a reload or the writer's ``apply_*``):
    ``on_job(job)`` a job was put; ``on_delete(job_id)``; ``on_runs(job, new_runs)``;
    ``on_cancel(job_id)`` (``c:``: stop this job's runs if they run here); ``on_wake()``
    (``w``: a slot may be free); ``on_paused(paused)`` (the cluster-wide flag changed);
    ``on_events()`` (events were committed, or may have been missed: the feed reads again).
    """

    def __init__(self, store: Store, *, schema: str, node: str, connect: Connect) -> None:
        self.store = store
        self.node = node
        self.channel = channel(schema)
        self._connect = connect
        self.pool: Pool | None = None
        self.versions: dict[int, int] = {}
        self._run_seq: dict[int, int] = {}  # job id -> highest run seq held
        self._gone: dict[int, None] = {}  # recently deleted ids, oldest first
        self._touched: set[int] | None = None  # ids applied by writers during a reload
        #: Live nodes at the last heartbeat (set by the node module), for the status card.
        self.nodes = 0
        self.connected = False
        #: Seconds from a batch's first NOTIFY to the batch applied (the last batch).
        self.lag = 0.0
        self._lost_at: float | None = None
        self._pending: list[tuple[str, float]] = []
        self._arrived = asyncio.Event()
        self.on_job: Callable[[Job], None] = _ignore
        self.on_delete: Callable[[int], None] = _ignore
        self.on_runs: Callable[[Job, list[Run]], None] = _ignore
        self.on_cancel: Callable[[int], None] = _ignore
        self.on_wake: Callable[[], None] = _ignore
        self.on_paused: Callable[[bool], None] = _ignore
        self.on_events: Callable[[], None] = _ignore

    # --- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The status card's ``cluster`` object."""
        lag_ms = round(self.lag_now() * 1000, 1)
        return {"node": self.node, "nodes": self.nodes, "replicaLagMs": lag_ms}

    def lag_now(self) -> float:
        """:attr:`lag`, or while the listener is down, the time since it went down."""
        if self.connected or self._lost_at is None:
            return self.lag
        return max(self.lag, time.monotonic() - self._lost_at)

    # --- the writer's own changes ------------------------------------------------------------

    def apply_job(self, job: Job, version: int) -> bool:
        """Put ``job`` at ``version`` unless a version as high is held (or the id was
        deleted); whether it was put."""
        if job.id in self._gone or version <= self.versions.get(job.id, 0):
            return False
        if self._touched is not None:
            self._touched.add(job.id)
        self.versions[job.id] = version
        self.store.apply(PutJob(job))
        self.on_job(job)
        return True

    def apply_delete(self, job_id: int) -> None:
        """Drop the job and its runs, and remember the id (see the module docstring)."""
        if self._touched is not None:
            self._touched.add(job_id)
        self._gone[job_id] = None
        if len(self._gone) > TOMBSTONES:
            del self._gone[next(iter(self._gone))]
        known = self.versions.pop(job_id, None) is not None or self.store.get(job_id) is not None
        self._run_seq.pop(job_id, None)
        if known:
            self.store.apply(DeleteJob(job_id))
            self.on_delete(job_id)

    def apply_runs(self, job_id: int, runs: Iterable[tuple[int, Run]]) -> list[Run]:
        """Add the runs ``(seq, run)`` (in seq order) past the highest seq held for the job;
        the runs added. Nothing for a job the store does not hold."""
        job = self.store.get(job_id)
        if job is None:
            return []
        held = self._run_seq.get(job_id, 0)
        added: list[Run] = []
        for seq, run in runs:
            if seq > held:
                self.store.apply(AddRun(run))
                added.append(run)
                held = seq
        if added:
            self._run_seq[job_id] = held
            self.on_runs(job, added)
        return added

    async def fetch(self, job_id: int) -> None:
        """Read one job and its runs from the database now and apply them (a read that missed
        the replica: the job's NOTIFY may still be on its way). Nothing for a deleted id."""
        assert self.pool is not None, "load() first"
        if job_id in self._gone:
            return
        with db.db_errors():
            async with self.pool.connection() as conn:
                rows = await _fetch(conn, _JOBS, [job_id])
                run_rows = await _fetch(conn, _RUNS, [job_id]) if rows else []
        self._put_rows(rows, ())
        self._add_runs(run_rows)

    async def refresh_paused(self) -> bool:
        """Read the cluster-wide paused flag now (after the writer's own pause or resume) and
        apply it; the flag."""
        assert self.pool is not None, "load() first"
        async with self.pool.connection() as conn:
            paused = await _paused(conn)
        self._apply_paused(paused)
        return paused

    def _apply_paused(self, paused: bool) -> None:
        if paused != self.store.paused:
            self.store.apply(SetMeta(paused))
            self.on_paused(paused)

    # --- loading -----------------------------------------------------------------------------

    async def load(self, pool: Pool) -> None:
        """Fill the (empty) store: every job, its last ``history`` runs, the paused flag, read
        in one snapshot, through server-side cursors (a million jobs never sit in memory twice
        as rows and records)."""
        self.pool = pool
        jobs: dict[int, Job] = {}
        runs: dict[int, list[Run]] = {}
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            async with _stream(conn, _ALL_JOBS, None) as rows:
                async for job_id, version, record in rows:
                    job = _decoded_job(job_id, record)
                    if job is not None:
                        jobs[job_id] = job
                        self.versions[job_id] = version
            async with _stream(conn, _LAST_RUNS, [self.store.history]) as rows:
                async for job_id, seq, record in rows:
                    run = _decoded_run(job_id, seq, record)
                    if run is not None:
                        runs.setdefault(job_id, []).append(run)
                    self._run_seq[job_id] = seq
            paused = await _paused(conn)
        self.store.load(jobs, runs, paused=paused)
        log.info("replica: loaded %d jobs", len(jobs))

    # --- listening ---------------------------------------------------------------------------

    async def serve(self) -> None:
        """Listen until cancelled, reconnecting (and reloading) whenever the connection is
        lost. Raises only for what a reconnection cannot cure (a bug, a missing table)."""
        assert self.pool is not None, "load() first"
        delay = RECONNECT_MIN
        self._lost_at = time.monotonic()
        while True:
            lost: BaseException | None = None
            try:
                await self._session()
            except* (*_LOST, ListenerStalled) as group:
                lost = group.exceptions[0]
            if self.connected:
                delay = RECONNECT_MIN  # it was up: start the backoff again
            self._down(lost)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter only
            delay = min(delay * 2, RECONNECT_MAX)

    async def _session(self) -> None:
        conn = await self._connect()
        try:
            await conn.set_autocommit(True)
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self._pending.clear()  # the reload below covers them
            self._arrived.clear()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read(conn))
                group.create_task(self._follow())
        finally:
            await conn.close()

    async def _read(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            async for note in conn.notifies(timeout=PING_EVERY):
                self._pending.append((note.payload, loop.time()))
                self._arrived.set()
            try:
                async with asyncio.timeout(PING_TIMEOUT):
                    await conn.execute("SELECT 1")
            except TimeoutError:
                raise ListenerStalled(f"no answer to a ping in {PING_TIMEOUT:g} s") from None

    async def _follow(self) -> None:
        await self._reload()
        self._up()
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            await asyncio.sleep(0)  # the rest of this loop turn's notifications join the batch
            batch, self._pending = self._pending, []
            if batch:
                await self._apply(batch)

    def _up(self) -> None:
        if self._lost_at is not None:
            log.info("replica: listening on %s", self.channel)
        self.connected = True
        self._lost_at = None

    def _down(self, exc: BaseException | None) -> None:
        if self.connected or self._lost_at is None:
            self._lost_at = time.monotonic()
        self.connected = False
        why = db.reason(exc) if exc is not None else "closed"
        log.warning("replica: lost the database (%s); reconnecting", why)

    # --- applying ----------------------------------------------------------------------------

    async def _apply(self, batch: list[tuple[str, float]]) -> None:
        changes = _Changes(payload for payload, _ in batch)
        versions, gone = self.versions, self._gone
        wanted = [
            job_id
            for job_id, version in changes.jobs.items()
            if version > versions.get(job_id, 0)
            and job_id not in gone
            and job_id not in changes.deleted
        ]
        with_runs = [job_id for job_id in changes.runs if job_id not in changes.deleted]
        rows: list[tuple[Any, ...]] = []
        run_rows: list[tuple[Any, ...]] = []
        paused: bool | None = None
        if wanted or with_runs or changes.paused:
            assert self.pool is not None
            async with self.pool.connection() as conn:
                rows = await _fetch(conn, _JOBS, wanted)
                run_rows = await _fetch(conn, _RUNS, with_runs)
                paused = await _paused(conn) if changes.paused else None
        for job_id in changes.deleted:
            self.apply_delete(job_id)
        self._put_rows(rows, wanted)
        self._add_runs(run_rows)
        if paused is not None:
            self._apply_paused(paused)
        self._signal(changes.cancels, events=changes.events, wake=changes.wake)
        self.lag = asyncio.get_running_loop().time() - batch[0][1]

    def _put_rows(self, rows: list[tuple[Any, ...]], wanted: Iterable[int]) -> None:
        """Apply fetched job rows; a wanted id without a row was deleted meanwhile."""
        found: set[int] = set()
        for job_id, version, record in rows:
            found.add(job_id)
            job = _decoded_job(job_id, record)
            if job is not None:
                self.apply_job(job, version)
        for job_id in wanted:
            if job_id not in found:
                self.apply_delete(job_id)

    def _add_runs(self, rows: list[tuple[Any, ...]]) -> None:
        by_job: dict[int, list[tuple[int, Run]]] = {}
        for job_id, seq, record in rows:
            run = _decoded_run(job_id, seq, record)
            if run is not None:
                by_job.setdefault(job_id, []).append((seq, run))
        for job_id, runs in by_job.items():
            self.apply_runs(job_id, runs)

    def _signal(self, cancels: Iterable[int], *, events: bool, wake: bool) -> None:
        for job_id in cancels:
            self.on_cancel(job_id)
        if events:
            self.on_events()
        if wake:
            self.on_wake()

    async def _reload(self) -> None:
        """Catch up with everything a lost connection may have hidden (module docstring).
        Changed jobs are fetched and applied a chunk at a time, so a long absence does not
        hold the event loop for the whole of it."""
        assert self.pool is not None
        touched: set[int] = set()
        self._touched = touched
        try:
            async with self.pool.connection() as conn:
                async with _stream(conn, _ALL_VERSIONS, None) as rows:
                    current: dict[int, int] = {job_id: version async for job_id, version in rows}
                for job_id in [i for i in self.versions if i not in current and i not in touched]:
                    self.apply_delete(job_id)
                stale = [i for i, v in current.items() if v > self.versions.get(i, 0)]
                for start in range(0, len(stale), CHUNK):
                    part = stale[start : start + CHUNK]
                    self._put_rows(await _fetch(conn, _JOBS, part), ())
                    self._add_runs(await _fetch(conn, _RUNS, part))
                paused = await _paused(conn)
                cur = await conn.execute(_CANCELLED)
                cancels = [job_id for (job_id,) in await cur.fetchall()]
        finally:
            self._touched = None
        self._apply_paused(paused)
        self._signal(cancels, events=True, wake=True)
        if stale:
            log.info("replica: reloaded %d changed jobs", len(stale))


# --- queries and records -----------------------------------------------------------------------


async def _fetch(conn: Connection, query: str, ids: list[int]) -> list[tuple[Any, ...]]:
    """``query`` (``... = ANY(%s)``) over ``ids``, in chunks; no query for no ids."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), CHUNK):
        async with conn.cursor(binary=True) as cur:
            await cur.execute(query, [ids[start : start + CHUNK]])
            rows.extend(await cur.fetchall())
    return rows


@contextlib.asynccontextmanager
async def _stream(
    conn: Connection, query: str, params: list[Any] | None
) -> AsyncIterator[AsyncIterator[tuple[Any, ...]]]:
    """The rows of ``query`` through a server-side cursor (inside a transaction), as a context:
    the cursor is closed when the block ends, however it ends (a node stopped while it reads,
    a lost connection), never left open for the collector to find."""
    async with conn.transaction():
        cur = conn.cursor("replica_read", binary=True)
        cur.itersize = CHUNK
        try:
            await cur.execute(query, params)
            yield aiter(cur)
        finally:
            await _close(conn, cur)


async def _close(conn: Connection, cur: AsyncServerCursor[Any]) -> None:
    """Close ``cur``; where closing fails (the connection broke as it closed) close the
    connection, which ends the cursor with it (the pool replaces a closed connection)."""
    try:
        await cur.close()
    except BaseException:
        await conn.close()
        await cur.close()  # on a closed connection this only marks the cursor closed
        raise


async def _paused(conn: Connection) -> bool:
    cur = await conn.execute(_PAUSED)
    row = await cur.fetchone()
    return bool(row[0]) if row is not None else False


def _decoded_job(job_id: int, record: bytes) -> Job | None:
    """The job of a row, or None (logged) for a record this node cannot read: one bad row
    must not stop a node from serving the others."""
    try:
        return decode_job(record)
    except msgspec.DecodeError as exc:
        log.error("replica: job %d has a record that does not decode: %s", job_id, exc)  # noqa: TRY400 - no traceback for bad data
        return None


def _decoded_run(job_id: int, seq: int, record: bytes) -> Run | None:
    try:
        return decode_run(record)
    except msgspec.DecodeError as exc:
        log.error("replica: run %d of job %d does not decode: %s", seq, job_id, exc)  # noqa: TRY400 - no traceback for bad data
        return None
