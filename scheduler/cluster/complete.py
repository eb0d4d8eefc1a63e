"""The end of a run, fenced; and the reaping of runs whose node died.

Completion deletes the run's ``inflight`` row by ``(job_id, fire, node_id, epoch)``: when no
row matches, this node lost the run (it was fenced, and the run was reaped and perhaps rerun
elsewhere), so it writes nothing and counts it. Otherwise it settles the job with the single
box's pure :func:`~scheduler.engine.outcomes.settle`, records the run (the history trimmed to
``history``), releases an occurrence held back by the overlap policy, and commits.

Reaping: an ``inflight`` row whose lease expired belongs to a node that stopped renewing (it
died, or was paused or cut off long enough to fence itself). Any node takes such rows with
``SKIP LOCKED`` and applies ``onCrash`` exactly as a single box does after a crash
(:func:`~scheduler.engine.outcomes.interrupted`): rerun with the same fire id, or abandon;
three in a row quarantine the job.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from msgspec.structs import replace

from scheduler.cluster.db import Connection
from scheduler.cluster.rows import Writes
from scheduler.engine.outcomes import cut_short, interrupted, settle
from scheduler.engine.runner import SETTLED
from scheduler.events import JobRetrying
from scheduler.model import Job, JobStatus, JobType, Outcome, Run, RunResult

#: Rows reaped per transaction.
REAP_BATCH = 100


@dataclass(frozen=True, slots=True)
class Ending:
    """A run of this node that ended, as the engine hands it over."""

    job_id: int
    fire: float
    attempt: int
    started: float
    manual: bool
    record: Run
    result: RunResult
    cancel_reason: str | None


async def complete(
    conn: Connection,
    writes: Writes,
    ending: Ending,
    *,
    node_id: str,
    epoch: int,
    now: float,
    rng: random.Random,
) -> bool:
    """Record ``ending`` (within the caller's transaction); False when fenced."""
    cur = await conn.execute(
        "DELETE FROM inflight WHERE job_id = %s AND fire = %s AND node_id = %s AND epoch = %s"
        " RETURNING cancel_reason",
        [ending.job_id, ending.fire, node_id, epoch],
    )
    row = await cur.fetchone()
    if row is None:
        return False
    reason = ending.cancel_reason or row[0]
    locked = await writes.lock([ending.job_id])
    if ending.job_id not in locked:
        return True  # deleted while it ran: nothing left to settle
    job, _, _ = locked[ending.job_id]
    others = await _in_flight(conn, ending.job_id)
    writes.run(ending.record)
    if job.status is JobStatus.CANCELLED:  # cancelled while it ran: it stays cancelled
        writes.put(replace(job, runs=job.runs + 1, progress=None, pid=None))
        return True
    new, event = settle(
        job,
        ending.record,
        result=ending.result,
        cancel_reason=reason,
        busy=others > 0,
        now=now,
        rng=rng,
    )
    writes.put(new)  # not held: a job held back for this run is due again
    if others == 0:
        await _release_buffered(conn, ending.job_id)
    kind = SETTLED[event]
    writes.event(
        kind(
            job_id=job.id,
            outcome=ending.record.outcome,
            attempt=ending.record.attempt,
            error=ending.record.error,
            final=kind is not JobRetrying,
        ),
        now,
    )
    writes.notify("w")  # a slot is free: nodes waiting for one look again
    return True


async def reap(
    conn: Connection, writes: Writes, *, now: float, where: str, params: list[object]
) -> int:
    """Apply ``onCrash`` to the in-flight runs matching ``where`` (locked, skipping those
    another node holds); how many."""
    cur = await conn.execute(
        "SELECT job_id, fire, attempt, started FROM inflight WHERE "  # noqa: S608 - a fixed clause
        + where
        + " ORDER BY job_id LIMIT %s FOR UPDATE SKIP LOCKED",
        [*params, REAP_BATCH],
    )
    rows = [(int(r[0]), float(r[1]), int(r[2]), float(r[3])) for r in await cur.fetchall()]
    if not rows:
        return 0
    locked = await writes.lock([job_id for job_id, *_ in rows])
    for job_id, fire, attempt, started in rows:
        await conn.execute("DELETE FROM inflight WHERE job_id = %s AND fire = %s", [job_id, fire])
        got = locked.get(job_id)
        if got is None:
            continue
        job = got[0]
        writes.run(
            Run(
                job_id=job_id,
                fire=fire,
                attempt=attempt,
                outcome=Outcome.INTERRUPTED,
                started=started,
                reason="its node stopped while this run was in flight (its lease expired)",
            )
        )
        if job.status in (JobStatus.CANCELLED, JobStatus.COMPLETED, JobStatus.FAILED):
            continue  # cancelled meanwhile: nothing to rerun
        if await _in_flight(conn, job_id) == 0:
            await _release_buffered(conn, job_id)
        writes.put(_rerun_keeping_grid(job, fire=fire, attempt=attempt, now=now))
    writes.notify("w")
    return len(rows)


def _rerun_keeping_grid(job: Job, *, fire: float, attempt: int, now: float) -> Job:
    """``onCrash`` for a reaped run, as on a single box, except that a recurring job's schedule
    goes on from where the other nodes left it: while the run was thought in flight they
    handled its later instants (skipped or missed them, each recorded), which the rerun must
    not walk, and record, again."""
    new = interrupted(job, fire=fire, attempt=attempt, now=now, cause="a node that stopped")
    if new.fire is None or job.type is not JobType.RECURRING:
        return new
    grid = job.scheduled if job.scheduled is not None else math.inf
    return replace(new, resume_grid=grid)


async def reap_orphans(conn: Connection, writes: Writes, *, now: float) -> int:
    """Jobs marked running with no run in flight (a single box's state imported while a run
    was in flight): their run was interrupted."""
    cur = await conn.execute(
        "SELECT id FROM jobs j WHERE status = 'running'"
        " AND NOT EXISTS (SELECT 1 FROM inflight i WHERE i.job_id = j.id)"
        " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        [REAP_BATCH],
    )
    ids = [int(r[0]) for r in await cur.fetchall()]
    locked = await writes.lock(ids)
    for job, _, _ in locked.values():
        record, after = cut_short(job, now, cause="a node that stopped")
        writes.run(record)
        writes.put(after)
    return len(locked)


async def _in_flight(conn: Connection, job_id: int) -> int:
    cur = await conn.execute("SELECT count(*) FROM inflight WHERE job_id = %s", [job_id])
    row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def _release_buffered(conn: Connection, job_id: int) -> None:
    """An occurrence held back by the overlap policy becomes a run request: it starts now."""
    cur = await conn.execute("DELETE FROM buffered WHERE job_id = %s RETURNING fire", [job_id])
    row = await cur.fetchone()
    if row is not None:
        await conn.execute(
            "INSERT INTO manual (job_id, requested, force, node_id) VALUES (%s, %s, true, '')",
            [job_id, float(row[0])],
        )
