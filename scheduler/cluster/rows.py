"""One transaction's writes, collected and written together: job rows with their versions, run
records, events and notifications.

Every write to ``jobs`` goes through :class:`Writes`: a job read with :meth:`Writes.lock` (``FOR
UPDATE``) is written back whole with ``version + 1``; a new job is inserted at version 1. The
indexed columns come from :func:`~.codec.job_columns`, in the same statement, so they never
disagree with the record. Each change sends its notification (``j:<id>:<version>``,
``d:<id>``, ``r:<id>``, ``e:<seq>``...: see CLUSTER_DESIGN.md) in the same transaction, so a
listener sees it only once it is committed. After the commit the writer applies what it wrote
to its own replica (:attr:`Writes.written`), so it reads its own writes at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from psycopg import sql

from scheduler.cluster.codec import JOB_COLUMNS, decode_job, encode_job, encode_run, job_columns
from scheduler.cluster.db import Connection, channel
from scheduler.cluster.feed import event_row, insert_events
from scheduler.events import Event, Hub, RunRecorded
from scheduler.model import Job, Run
from scheduler.store import Store

#: A job as locked: its record, its version and whether it is held.
Locked = tuple[Job, int, bool]

_COLUMNS = [sql.Identifier(name) for name in JOB_COLUMNS]
_UPDATE = sql.SQL(
    "UPDATE jobs SET version = version + 1, record = %(record)s, {} WHERE id = %(id)s"
    " RETURNING id, version"
).format(
    sql.SQL(", ").join(
        sql.SQL("{} = {}").format(column, sql.Placeholder(name))
        for column, name in zip(_COLUMNS, JOB_COLUMNS, strict=True)
    )
)
_INSERT = sql.SQL(
    "INSERT INTO jobs (id, version, record, {}) VALUES (%(id)s, 1, %(record)s, {})"
).format(sql.SQL(", ").join(_COLUMNS), sql.SQL(", ").join(map(sql.Placeholder, JOB_COLUMNS)))


class Writes:
    def __init__(self, conn: Connection, schema: str, *, history: int) -> None:
        self.conn = conn
        self.channel = channel(schema)
        self.history = history
        self._puts: dict[int, tuple[Job, bool]] = {}
        self._new: set[int] = set()
        self._deleted: set[int] = set()
        self._gone: set[int] = set()
        self._runs: list[Run] = []
        self._events: list[tuple[Event, float]] = []
        self._notes: list[str] = []
        self._buffers: dict[int, float] = {}
        self._cancels: dict[int, str] = {}
        #: After :meth:`flush`: every job written, with its new version; deleted ids.
        self.written: dict[int, tuple[Job, int]] = {}
        self.deleted: set[int] = set()
        self.runs_of: dict[int, list[Run]] = {}
        #: After :meth:`flush`: the runs written, per job, with their ``seq``.
        self.run_seqs: dict[int, list[tuple[int, Run]]] = {}

    @property
    def events(self) -> list[tuple[Event, float]]:
        """The streamed records written, with their instants."""
        return self._events

    async def lock(self, ids: Iterable[int]) -> dict[int, Locked]:
        """The jobs ``ids``, locked for this transaction (absent ids are gone)."""
        wanted = sorted(set(ids))  # in id order: two transactions never deadlock on them
        if not wanted:
            return {}
        cur = await self.conn.execute(
            "SELECT id, version, held, record FROM jobs WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            [wanted],
        )
        return {row[0]: (decode_job(row[3]), row[1], row[2]) for row in await cur.fetchall()}

    def put(self, job: Job, *, held: bool = False) -> None:
        """Write ``job`` whole at flush (it must have been locked, or be new)."""
        self._puts[job.id] = (job, held)
        self._deleted.discard(job.id)

    def insert(self, job: Job) -> None:
        self._new.add(job.id)
        self.put(job)

    def delete(self, job_id: int) -> None:
        self._puts.pop(job_id, None)
        self._deleted.add(job_id)

    def gone(self, job_id: int) -> None:
        """The caller's own SQL deleted the job: tell the replicas."""
        self._gone.add(job_id)

    def run(self, run: Run) -> None:
        self._runs.append(run)

    def event(self, event: Event, at: float) -> None:
        if event.name is not None:
            self._events.append((event, at))

    def notify(self, payload: str) -> None:
        self._notes.append(payload)

    def buffer(self, job_id: int, fire: float) -> None:
        """Keep ``fire`` of the job for when its run in flight ends (overlap)."""
        self._buffers[job_id] = fire

    def cancel(self, job_id: int, reason: str) -> None:
        """Ask the runs of the job in flight, on whichever node, to stop with ``reason``."""
        self._cancels[job_id] = reason

    async def flush(self) -> None:
        """Write everything collected (within the caller's transaction)."""
        await self._write_jobs()
        await self._write_side()
        await self._write_runs()
        if self._notes:
            await self.conn.execute(
                "SELECT pg_notify(%s, note) FROM unnest(%s::text[]) AS note",
                [self.channel, self._notes],
            )
        await self._write_events()

    async def _write_jobs(self) -> None:
        new = [self._row(job, held) for job, held in self._puts.values() if job.id in self._new]
        old = [self._row(job, held) for job, held in self._puts.values() if job.id not in self._new]
        async with self.conn.cursor() as cur:
            if new:
                await cur.executemany(_INSERT, new)
            for row in old:  # one at a time: each returns its version
                await cur.execute(_UPDATE, row)
                got = await cur.fetchone()
                if got is not None:
                    self.written[got[0]] = (self._puts[got[0]][0], got[1])
            if self._deleted:
                await cur.execute("DELETE FROM runs WHERE job_id = ANY(%s)", [list(self._deleted)])
                await cur.execute("DELETE FROM jobs WHERE id = ANY(%s)", [list(self._deleted)])
        for job_id in self._new:
            if job_id in self._puts:
                self.written[job_id] = (self._puts[job_id][0], 1)
        self.deleted = self._deleted | self._gone
        self._notes.extend(f"j:{job_id}:{version}" for job_id, (_, version) in self.written.items())
        self._notes.extend(f"d:{job_id}" for job_id in self.deleted)

    async def _write_side(self) -> None:
        for job_id, fire in self._buffers.items():
            await self.conn.execute(
                "INSERT INTO buffered (job_id, fire) VALUES (%s, %s)"
                " ON CONFLICT (job_id) DO UPDATE SET fire = excluded.fire",
                [job_id, fire],
            )
        for job_id, reason in self._cancels.items():
            await self.conn.execute(
                "UPDATE inflight SET cancel_reason = %s"
                " WHERE job_id = %s AND cancel_reason IS NULL",
                [reason, job_id],
            )
            self._notes.append(f"c:{job_id}")

    async def _write_runs(self) -> None:
        if not self._runs:
            return
        async with self.conn.cursor() as cur:
            # One statement; the sequence numbers it gives out, in the arrays' order, are
            # returned so that the writer applies its own runs with their seq at once.
            await cur.execute(
                "INSERT INTO runs (job_id, record)"
                " SELECT * FROM unnest(%s::bigint[], %s::bytea[]) RETURNING job_id, seq",
                [[run.job_id for run in self._runs], [encode_run(run) for run in self._runs]],
            )
            given = await cur.fetchall()
            jobs = sorted({run.job_id for run in self._runs})
            # Keep the last ``history`` runs of each job written to.
            await cur.execute(
                "DELETE FROM runs r USING (SELECT job_id, seq, row_number() OVER"
                " (PARTITION BY job_id ORDER BY seq DESC) AS n FROM runs"
                " WHERE job_id = ANY(%s)) old"
                " WHERE r.job_id = old.job_id AND r.seq = old.seq AND old.n > %s",
                [jobs, self.history],
            )
        seqs: dict[int, list[int]] = {}
        for job_id, seq in given:
            seqs.setdefault(int(job_id), []).append(int(seq))
        for run in self._runs:
            self.runs_of.setdefault(run.job_id, []).append(run)
        for job_id, runs in self.runs_of.items():  # per job, seq order is append order
            self.run_seqs[job_id] = list(zip(sorted(seqs.get(job_id, [])), runs, strict=True))
        self._notes.extend(f"r:{job_id}" for job_id in self.runs_of)

    async def _write_events(self) -> None:
        # Last: the feed relies on a writer inserting its events after its other writes.
        rows = [event_row(event, at) for event, at in self._events]
        await insert_events(self.conn, self.channel, rows)

    def publish_local(self, hub: Hub, store: Store) -> None:
        """What this node wrote, to its own in-process subscribers (metrics, logs, alerts): the
        runs it recorded (ended, missed, skipped, interrupted) and its streamed records.
        Streams get the records from the feed; every node's subscribers only their node's, so
        nothing is counted or alerted twice across the cluster."""
        if hub.wants(RunRecorded):
            for job_id, runs in self.runs_of.items():
                job = store.get(job_id)
                if job is not None:
                    for run in runs:
                        hub.publish(RunRecorded(job_id=job_id, job=job, run=run))
        for event, _at in self.events:
            if hub.wants(type(event)):
                hub.publish(event)

    def _row(self, job: Job, held: bool) -> dict[str, Any]:
        return {"id": job.id, "record": encode_job(job), **job_columns(job, held=held)}


async def cancel_reasons(conn: Connection, job_id: int, node_id: str) -> dict[float, str]:
    """The reasons cancellers wrote for ``node_id``'s runs of ``job_id`` in flight, by fire."""
    cur = await conn.execute(
        "SELECT fire, cancel_reason FROM inflight WHERE job_id = %s AND node_id = %s",
        [job_id, node_id],
    )
    return {float(r[0]): r[1] for r in await cur.fetchall() if r[1]}
