"""A cluster node's job operations: the single box's rules, each write one transaction.

Every operation reads the job it changes with ``FOR UPDATE`` (so two nodes changing one job
serialize), computes the new job with the same pure functions as the single box
(:class:`scheduler.service.BaseService`: build, rebuild, pause, resume...), writes it whole
with ``version + 1`` and commits synchronously before it answers; the node then applies what
it wrote to its own replica, so it reads its own writes at once. A unique key taken on any node
is a 409 (the database's unique index says so). While the database is unreachable, every write
answers 503 and reads keep answering from the replica.

Runs on other nodes: a cancel or a delete marks the job's ``inflight`` rows and notifies; the
node running it stops it and records its end; the answer comes once the rows are gone (at most
a lease and a quarter later, when a dead node's rows are reaped). A run-now is a row in
``manual`` that any node with a free slot claims; its ``?wait`` ends when the run of that fire
is recorded, whichever node ran it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import psycopg
from msgspec.structs import replace

from scheduler import ids
from scheduler.clock import Clock
from scheduler.cluster.db import POOL_TIMEOUT, Connection, db_errors, db_now
from scheduler.cluster.engine import ClusterEngine
from scheduler.cluster.rows import Locked, Writes
from scheduler.engine.outcomes import SUPERSEDED
from scheduler.engine.planning import resumed
from scheduler.errors import (
    DuplicateJob,
    InvalidInput,
    InvalidState,
    JobNotFound,
    Unavailable,
)
from scheduler.events import Hub, JobCancelled, JobCreated, SchedulerStatus
from scheduler.jobspec import JobSpec
from scheduler.model import FINISHED, Job, JobStatus, Overlap, Run, Source
from scheduler.service import BaseService, WorkflowNotFound
from scheduler.service.base import check_editable
from scheduler.store import Store

#: Bounded wait, beyond the lease and a quarter, for runs of a cancelled or deleted job to end.
_END_MARGIN = 5.0
_POLL = 0.05
#: Seconds a write waits for a connection while the node's listener has lost the database
#: (it is most likely down: answer 503 soon rather than after the pool's full wait).
_DOWN_WAIT = 1.0
#: Seconds a read that missed the replica may wait for the database before it answers 404.
_MISS_WITHIN = 1.0


class ClusterService(BaseService):
    def __init__(
        self,
        store: Store,
        engine: ClusterEngine,
        clock: Clock,
        *,
        hub: Hub,
        known_task: Callable[[str], bool],
    ) -> None:
        super().__init__(store, engine, clock, hub=hub, known_task=known_task)
        self.engine: ClusterEngine = engine

    # --- the transaction -----------------------------------------------------------------

    async def _tx(self, body: Callable[[Connection, Writes], Awaitable[Any]]) -> Any:
        """Run ``body`` in one transaction, flush its writes, commit; apply them to the
        replica. 409 on a unique key, 503 when the database is unreachable."""
        engine = self.engine
        try:
            with db_errors():
                wait = POOL_TIMEOUT if engine.replica.connected else _DOWN_WAIT
                async with engine.pool.connection(wait) as conn, conn.transaction():
                    writes = Writes(conn, engine.schema, history=engine.history)
                    result = await body(conn, writes)
                    await writes.flush()
        except psycopg.errors.UniqueViolation as exc:
            raise await self._duplicate(exc) from None
        engine.applied(writes)
        return result

    async def _duplicate(self, exc: psycopg.errors.UniqueViolation) -> DuplicateJob:
        """The 409 for a unique violation: which key, and which job holds it."""
        constraint = exc.diag.constraint_name or ""
        column = {"jobs_unique_key": "unique_key", "jobs_workflow": "workflow_id"}.get(
            constraint, "name"
        )
        detail = exc.diag.message_detail or ""
        key = detail.partition("=(")[2].rpartition(")")[0] or "?"
        async with self.engine.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT id FROM jobs WHERE {column} = %s"  # noqa: S608 - a fixed column name
                " AND status NOT IN ('completed', 'failed', 'cancelled')",
                [key],
            )
            row = await cur.fetchone()
        return DuplicateJob(key, ids.encode(int(row[0])) if row is not None else "?")

    async def _locked(self, writes: Writes, job_id: str) -> Locked:
        found = await writes.lock([ids.decode(job_id)])
        if not found:
            raise JobNotFound(job_id)
        return next(iter(found.values()))

    # --- creating and changing -----------------------------------------------------------

    async def create(self, spec: JobSpec, *, source: Source = Source.API) -> Job:
        job = await self.add(self.build(spec, source=source))
        self._seed(job, spec)
        return job

    async def add(self, job: Job) -> Job:
        async def body(conn: Connection, writes: Writes) -> None:
            writes.insert(job)
            writes.event(JobCreated(job_id=job.id, job=job), await db_now(conn))

        await self._tx(body)
        return job

    async def modify(self, job_id: str, spec: JobSpec | Callable[[Job], JobSpec]) -> Job:
        """As on the single box; a ``spec`` that is a function (a merge patch) is applied to
        the job as locked in the database, so a change made a moment ago on another node is
        kept, never overwritten from a stale replica."""
        used: list[JobSpec] = []

        async def body(_conn: Connection, writes: Writes) -> Job:
            job, _, _ = await self._locked(writes, job_id)
            check_editable(job)
            wanted = spec(job) if callable(spec) else spec
            used.append(wanted)
            new = self.rebuilt(job, wanted)
            if new != job:
                writes.put(new)
            return new

        new: Job = await self._tx(body)
        self._seed(new, used[-1])
        return new

    async def fetch(self, job_id: str) -> Job:
        """The replica's job; on a miss, the database's (a job another node created a moment
        ago, whose notification has not arrived): "created on one node, readable on any other
        at once". While the database is unreachable, a miss is a 404 as the replica says."""
        job = self.find(job_id)
        if job is not None:
            return job
        with contextlib.suppress(Unavailable, TimeoutError):
            async with asyncio.timeout(_MISS_WITHIN):
                await self.engine.replica.fetch(ids.decode(job_id))
        return self.get(job_id)

    async def upsert_workflow(self, workflow_id: str, spec: JobSpec) -> tuple[Job, bool]:
        spec = replace(spec, workflow_id=workflow_id)
        old = self.find_workflow(workflow_id)
        if old is None:
            return await self.create(spec), True

        async def body(_conn: Connection, writes: Writes) -> Job:
            job, _, _ = await self._locked(writes, ids.encode(old.id))
            check_editable(job)
            new = self.rebuilt(job, spec, revive=True)
            if new != job:
                writes.put(new)
            return new

        new: Job = await self._tx(body)
        self._seed(new, spec)
        return new, False

    async def delete_workflow(self, workflow_id: str) -> int:
        jobs = self.store.workflow_jobs(workflow_id)
        if not jobs:
            raise WorkflowNotFound(workflow_id)
        for job in jobs:
            check_editable(job)
        for job in jobs:
            if self.store.get(job.id) is not None:
                await self.delete(ids.encode(job.id))
        return len(jobs)

    async def sync_static(self, wanted: Mapping[str, tuple[JobSpec, Source]]) -> None:
        """Make the stored static jobs match ``wanted`` (once for the cluster: a name is unique,
        so two nodes doing this at once make one job)."""
        writes_wanted, removed = self.static_plan(wanted, self.static_jobs())

        async def body(conn: Connection, writes: Writes) -> None:
            present = await writes.lock([job.id for job in writes_wanted])
            for job in writes_wanted:
                if job.id in present:
                    writes.put(job)
                else:
                    writes.insert(job)
            for job in removed:
                await _cancel_rows(conn, writes, job.id, "removed from config")
                writes.delete(job.id)

        with contextlib.suppress(DuplicateJob):  # another node installed them first
            await self._tx(body)

    # --- actions -------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> Job:
        async def body(conn: Connection, writes: Writes) -> Job:
            job, _, _ = await self._locked(writes, job_id)
            if job.status in FINISHED:
                raise InvalidState(f"job {job_id} is already {job.status}", field="status")
            now = await db_now(conn)
            done = replace(
                job, status=JobStatus.CANCELLED, scheduled=None, fire=None, completed=now
            )
            writes.put(done)
            await _cancel_rows(conn, writes, job.id, "cancelled on request")
            writes.event(JobCancelled(job_id=job.id, outcome="cancelled", attempt=job.attempt), now)
            return done

        done: Job = await self._tx(body)
        await self._runs_ended(done.id)
        self.engine.release_waiters(done.id, done)
        return self.store.get(done.id) or done

    async def delete(self, job_id: str) -> None:
        async def body(conn: Connection, writes: Writes) -> int:
            job, _, _ = await self._locked(writes, job_id)
            check_editable(job)
            await _cancel_rows(conn, writes, job.id, "deleted")
            writes.delete(job.id)
            return job.id

        gone: int = await self._tx(body)
        await self._runs_ended(gone)
        self.engine.forget(gone)

    async def run_now(self, job_id: str, *, force: bool = False) -> asyncio.Future[Run]:
        """A run-now request any node may claim; the overlap policy applies as on a single
        box, counting runs in flight on any node and requests not yet claimed."""

        async def body(conn: Connection, writes: Writes) -> float:
            job, _, _ = await self._locked(writes, job_id)
            if job.status in FINISHED or job.status is JobStatus.PAUSED:
                raise InvalidState(
                    f"job {job_id} is {job.status}; it cannot run now", field="status"
                )
            self.engine.refuse_in_maintenance(job)  # before cancel_other stops anything
            busy = await _busy(conn, job.id)
            overlap = job.policy.overlap
            alone = force or not busy or overlap is Overlap.ALLOW
            if not alone and overlap is Overlap.CANCEL_OTHER:
                await _cancel_rows(conn, writes, job.id, SUPERSEDED)
            elif not alone and (overlap is not Overlap.BUFFER_ONE or await _waiting(conn, job.id)):
                raise InvalidState(
                    f"job {job_id} is running and its overlap policy is {overlap}; "
                    "add ?force=true to run it anyway",
                    field="overlap",
                )
            requested = await db_now(conn)
            await conn.execute(
                "INSERT INTO manual (job_id, requested, force, node_id) VALUES (%s, %s, %s, %s)",
                [job.id, requested, alone, self.engine.node.node_id],
            )
            writes.notify("w")
            return requested

        requested: float = await self._tx(body)
        return self.engine.wait_fire(ids.decode(job_id), requested)

    async def pause(
        self,
        job_id: str,
        *,
        until: float | None = None,
        reason: str | None = None,
        by: str | None = None,
    ) -> Job:
        async def body(conn: Connection, writes: Writes) -> Job:
            job, _, _ = await self._locked(writes, job_id)
            if job.status in FINISHED:
                raise InvalidState(
                    f"job {job_id} is {job.status}; only a live job can be paused", field="status"
                )
            if until is not None and until <= await db_now(conn):
                raise InvalidInput("until: expected an instant in the future", field="until")
            paused = replace(
                job, status=JobStatus.PAUSED, paused_until=until, pause_reason=reason, paused_by=by
            )
            writes.put(paused)
            await conn.execute("DELETE FROM manual WHERE job_id = %s", [job.id])
            return paused

        paused: Job = await self._tx(body)
        return paused

    async def resume(self, job_id: str, *, catch_up: bool = False) -> Job:
        async def body(conn: Connection, writes: Writes) -> Job:
            job, _, _ = await self._locked(writes, job_id)
            if job.status is not JobStatus.PAUSED:
                raise InvalidState(f"job {job_id} is {job.status}, not paused", field="status")
            back = resumed(
                job,
                await db_now(conn),
                lambda t: self.engine.triggers.next_after(job, t),
                catch_up=catch_up,
                in_flight=await _busy(conn, job.id),
            )
            writes.put(back)
            return back

        back: Job = await self._tx(body)
        return back

    async def retry(self, job_id: str) -> Job:
        async def body(conn: Connection, writes: Writes) -> Job:
            job, _, _ = await self._locked(writes, job_id)
            if job.status is not JobStatus.FAILED:
                raise InvalidState(
                    f"job {job_id} is {job.status}; only a failed job can be retried",
                    field="status",
                )
            again = replace(
                job,
                status=JobStatus.PENDING,
                attempt=0,
                fire=None,
                interrupted=0,
                error=None,
                scheduled=await db_now(conn),
            )
            writes.put(again)
            return again

        again: Job = await self._tx(body)
        return again

    # --- the whole cluster ---------------------------------------------------------------

    async def set_paused(self, paused: bool) -> None:
        async def body(conn: Connection, writes: Writes) -> None:
            await conn.execute(
                "UPDATE meta SET value = %s::jsonb WHERE key = 'paused'",
                ["true" if paused else "false"],
            )
            writes.notify("m:paused")
            writes.event(SchedulerStatus(paused=paused), await db_now(conn))

        await self._tx(body)
        await self.engine.replica.refresh_paused()

    async def clean(self, statuses: Collection[JobStatus], older_than: float) -> int:
        unfinished = set(statuses) - FINISHED
        if unfinished:
            raise InvalidInput(
                f"status: expected a finished status, got {sorted(unfinished)[0]!r}",
                field="status",
            )

        async def body(conn: Connection, writes: Writes) -> int:
            cutoff = await db_now(conn) - older_than
            cur = await conn.execute(
                "DELETE FROM jobs WHERE status = ANY(%s) AND coalesce(completed, 0) <= %s"
                " RETURNING id",
                [[s.value for s in statuses], cutoff],
            )
            gone = [int(row[0]) for row in await cur.fetchall()]
            for job_id in gone:
                writes.gone(job_id)
            return len(gone)

        count: int = await self._tx(body)
        return count

    # --- helpers -------------------------------------------------------------------------

    async def _runs_ended(self, job_id: int) -> None:
        """Wait (bounded) until no run of the job is in flight on any node."""
        deadline = time.monotonic() + self.engine.node.lease * 1.25 + _END_MARGIN
        for fut in self.engine.local_cancel(job_id, "cancelled on request"):
            await asyncio.wait({fut}, timeout=max(0.0, deadline - time.monotonic()))
        while time.monotonic() < deadline:
            async with self.engine.pool.connection() as conn:
                if not await _busy(conn, job_id, manual=False):
                    return
            await asyncio.sleep(_POLL)


async def _cancel_rows(conn: Connection, writes: Writes, job_id: int, reason: str) -> None:
    """Ask the job's runs in flight, wherever they run, to stop; drop its run-now requests."""
    writes.cancel(job_id, reason)
    await conn.execute("DELETE FROM manual WHERE job_id = %s", [job_id])
    await conn.execute("DELETE FROM buffered WHERE job_id = %s", [job_id])


async def _busy(conn: Connection, job_id: int, *, manual: bool = True) -> bool:
    """A run of the job in flight on any node, or (``manual``) a run-now not yet claimed."""
    cur = await conn.execute("SELECT 1 FROM inflight WHERE job_id = %s LIMIT 1", [job_id])
    if await cur.fetchone() is not None:
        return True
    return manual and await _waiting(conn, job_id)


async def _waiting(conn: Connection, job_id: int) -> bool:
    cur = await conn.execute("SELECT 1 FROM manual WHERE job_id = %s LIMIT 1", [job_id])
    return await cur.fetchone() is not None
