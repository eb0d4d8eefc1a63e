"""``scheduler cluster import``: move a single box's state into an empty cluster schema.

Policy:

- The state directory is read exactly as a start of the single box would read it
  (:func:`~scheduler.persistence.recovery.load_state`: newest valid snapshot plus the journal,
  the last ``history`` runs per job), while holding its lock, so no scheduler can start on it
  and change it meanwhile. A directory a running scheduler holds is refused, naming its pid.
  Nothing in the directory changes, except what any start does: an incomplete last journal
  record that was never acknowledged is cut off, after a copy is kept.
- The schema must hold no job, and no node may be alive in it: a live node would not see rows
  written without notifications. Both are checked in the import's one transaction, after
  locking ``jobs`` and ``runs`` against every other session, so that a node starting meanwhile
  waits and then loads the whole imported set.
- Jobs are written as they are (version 1), with the columns of
  :func:`~scheduler.cluster.codec.job_columns`; runs oldest first, so ``runs.seq`` keeps their
  order; the ``paused`` flag is copied. Jobs that were ``running`` when the single box stopped
  stay ``running`` with no in-flight row: the first node to start treats them as the single
  box's recovery would (``onCrash``).
- A state that breaks a unique index of the schema (two live jobs with one key) is refused whole.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.types.json import Jsonb

from scheduler.cluster.codec import JOB_COLUMNS, encode_job, encode_run, job_columns
from scheduler.cluster.db import Connection
from scheduler.errors import InvalidState, PersistenceError
from scheduler.model import Job, JobStatus, Run
from scheduler.persistence import files
from scheduler.persistence.recovery import RecoveredState, load_state
from scheduler.persistence.statelock import StateLock, holder

#: The version an imported job's row starts at.
FIRST_VERSION = 1
_JOB_COPY = sql.SQL("COPY jobs ({}) FROM STDIN").format(
    sql.SQL(", ").join(sql.Identifier(c) for c in ("id", "version", *JOB_COLUMNS, "record"))
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Imported:
    jobs: int
    runs: int
    running: int  # jobs that were running: onCrash applies at the first node's start
    paused: bool


@contextlib.contextmanager
def locked_state(directory: Path, *, history: int) -> Iterator[RecoveredState]:
    """The single box's state in ``directory``, loaded while holding its lock (module policy).

    Raises InvalidState when a running scheduler holds the directory, PersistenceError when
    it holds no state, CorruptState when it is damaged.
    """
    if not directory.is_dir():
        raise PersistenceError(f"{directory}: no such state directory")
    if not files.list_snapshots(directory) and not files.list_segments(directory):
        raise PersistenceError(f"{directory}: holds no scheduler state (no snapshot, no journal)")
    in_use, pid = holder(directory)
    if in_use:
        who = f"pid {pid}" if pid is not None else "a process still starting"
        raise InvalidState(
            f"{directory} is in use by a running scheduler ({who}): stop it before importing"
        )
    lock = StateLock.acquire(directory)
    try:
        yield load_state(directory, history=history)
    finally:
        lock.release()


async def import_state(conn: Connection, state: RecoveredState, *, lease: float) -> Imported:
    """Write ``state`` into the schema ``conn``'s ``search_path`` names, in one transaction.

    Raises InvalidState when the schema holds a job or a node is alive in it (heartbeat within
    ``lease`` seconds of the database's clock), or when the state breaks a unique index.
    """
    jobs = list(state.jobs.values())
    async with conn.transaction():
        await conn.execute("LOCK TABLE jobs, runs IN ACCESS EXCLUSIVE MODE")
        await _refuse_unless_empty(conn, lease)
        try:
            await _copy_jobs(conn, jobs)
            runs = await _copy_runs(conn, _runs_of(jobs, state.runs))
        except pg_errors.UniqueViolation as exc:
            detail = exc.diag.message_detail or exc.diag.message_primary or ""
            raise InvalidState(
                f"the state breaks a unique rule of the cluster's tables ({detail.strip()}):"
                " nothing was imported"
            ) from None
        await conn.execute(
            "UPDATE meta SET value = %s WHERE key = 'paused'", [Jsonb(state.meta.paused)]
        )
    running = sum(1 for job in jobs if job.status is JobStatus.RUNNING)
    return Imported(jobs=len(jobs), runs=runs, running=running, paused=state.meta.paused)


async def _refuse_unless_empty(conn: Connection, lease: float) -> None:
    cur = await conn.execute("SELECT count(*) FROM jobs")
    row = await cur.fetchone()
    count = int(row[0]) if row else 0
    if count:
        raise InvalidState(
            f"the cluster's schema already holds {count} jobs: import only into an empty one"
            " (a fresh cluster.schema, after scheduler cluster init)"
        )
    cur = await conn.execute(
        "SELECT node_id FROM nodes"
        " WHERE heartbeat_at > extract(epoch FROM clock_timestamp())::float8 - %s"
        " ORDER BY node_id",
        [lease],
    )
    alive = [str(node) for (node,) in await cur.fetchall()]
    if alive:
        raise InvalidState(
            f"nodes are running on the cluster's schema ({', '.join(alive)}): stop them"
            " before importing, so that every node loads the imported jobs when it starts"
        )


async def _copy_jobs(conn: Connection, jobs: Iterable[Job]) -> None:
    async with conn.cursor() as cur, cur.copy(_JOB_COPY) as copy:
        for job in jobs:
            columns = job_columns(job)
            row = (job.id, FIRST_VERSION, *(columns[c] for c in JOB_COLUMNS), encode_job(job))
            await copy.write_row(row)


def _runs_of(jobs: Iterable[Job], runs: Mapping[int, list[Run]]) -> Iterator[Run]:
    """The runs of the imported jobs, each job's oldest first (a run without its job is
    history of a deleted job, which the single box would not show either)."""
    for job in jobs:
        yield from runs.get(job.id, ())


async def _copy_runs(conn: Connection, runs: Iterable[Run]) -> int:
    count = 0
    async with conn.cursor() as cur, cur.copy("COPY runs (job_id, record) FROM STDIN") as copy:
        for run in runs:
            await copy.write_row((run.job_id, encode_run(run)))
            count += 1
    return count
