"""The claim: in one transaction, take the due work this node has room for and start it.

``SELECT ... FOR UPDATE SKIP LOCKED`` hands each due job (and each run-now request) to exactly
one node; what to do with it is the single box's decision (:func:`scheduler.engine.planning.
decide`); a run that starts gets its ``inflight`` row, whose primary key ``(job_id, fire)``
makes a fire startable once. The transaction also writes the job's next state, the missed and
skipped runs, the events and the notifications, and commits (synchronously) before any task is
called: the start is durable before its side effect.

A job due inside its task's maintenance window is left as it is (every node has the same
windows, from the same config): the claim names it with the window's end in
:attr:`Claim.deferred`, and the node looks at it again then.

Per-task ``concurrency`` and ``rate_limit`` hold across the cluster: a limited task's
``task_limits`` row is locked in the claim, its runs in flight are counted from ``inflight``,
and its recent starts are kept in the row (a sliding log, as on a single box). Only claims of
limited tasks wait on each other.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from msgspec.structs import replace

from scheduler.cluster.db import Connection
from scheduler.cluster.rows import Writes
from scheduler.engine.cache import TriggerCache
from scheduler.engine.outcomes import SUPERSEDED
from scheduler.engine.planning import (
    Action,
    Decision,
    decide,
    ended,
    missed_record,
    resumed,
    skipped_record,
    started,
)
from scheduler.engine.queue import TaskRuntime
from scheduler.events import JobFailed, RunStarted
from scheduler.maintenance import Maintenance
from scheduler.model import Job, JobStatus, JobType


@dataclass(frozen=True, slots=True)
class Started:
    """A run this node claimed: its job (as started), fire, attempt and kind."""

    job: Job
    fire: float
    attempt: int
    started: float  # database time
    manual: bool


@dataclass(slots=True)
class Claim:
    started: list[Started] = field(default_factory=list)
    #: Due jobs left untouched because their task had no room: the node waits for a run to
    #: end (a ``w`` notification) before it looks at them again.
    blocked: set[int] = field(default_factory=set)
    #: Jobs whose runs elsewhere must stop (overlap = cancel_other).
    cancels: set[int] = field(default_factory=set)
    #: The database's clock when the claim read what is due.
    now: float = 0.0
    #: Due jobs inside their task's maintenance window, untouched: job id -> the window's end.
    deferred: dict[int, float] = field(default_factory=dict)


@dataclass(slots=True)
class Limits:
    """A limited task's room in this claim."""

    concurrency: int | None
    rate: tuple[int, float] | None
    running: int
    starts: list[float]

    def admit(self, now: float) -> bool:
        if self.concurrency is not None and self.running >= self.concurrency:
            return False
        if self.rate is not None:
            count, per = self.rate
            self.starts = [t for t in self.starts if now - t < per]
            if len(self.starts) >= count:
                return False
            self.starts.append(now)
        self.running += 1
        return True


class Claimer:
    def __init__(
        self,
        *,
        node_id: str,
        tasks: Mapping[str, TaskRuntime],
        triggers: TriggerCache,
        history: int,
        schema: str,
        rng: random.Random,
    ) -> None:
        self.node_id = node_id
        self.tasks = tasks
        self.triggers = triggers
        self.history = history
        self.schema = schema
        self.rng = rng
        #: The maintenance windows; None when none are configured.
        self.maintenance: Maintenance | None = None

    async def claim(
        self, conn: Connection, *, epoch: int, lease: float, free: int, skip: set[int]
    ) -> tuple[Claim, Writes]:
        """Claim up to ``free`` runs (within the caller's transaction)."""
        out = Claim()
        writes = Writes(conn, self.schema, history=self.history)
        now = out.now = await _now(conn)
        manual = await self._manual(conn, free)
        due = await self._due(conn, now, free, skip)
        locked = await writes.lock({row[1] for row in manual} | set(due))
        busy = await self._busy(conn, list(locked))
        buffered = await self._buffered(conn, list(locked))
        limits = await self._limits(conn, [job for job, *_ in locked.values()])
        starts: list[tuple[Job, float, int, bool]] = []
        for request_id, job_id, requested, force in manual:
            got = locked.get(job_id)
            if not force and job_id in busy:
                continue  # overlap: it waits for the job's run in flight to end
            if len(starts) >= free or (got is not None and not _room(limits, got[0], now)):
                continue
            await conn.execute("DELETE FROM manual WHERE id = %s", [request_id])
            if got is None or got[0].status not in (JobStatus.PENDING, JobStatus.RUNNING):
                continue  # the job went away or stopped running meanwhile
            starts.append((got[0], requested, 1, True))
            busy.add(job_id)
        for job_id in due:
            got = locked.get(job_id)
            if got is None:
                continue
            job, _, _ = got
            if len(starts) >= free and _may_start(job):
                continue  # no slot: it stays due (a run's end pokes this node)
            decision = decide(
                job,
                now,
                functools.partial(self.triggers.timeline, job),
                busy=job.id in busy,
                buffered=job.id in buffered,
                maintenance=self.maintenance,
            )
            start = self._apply(
                writes, job, decision, now=now, out=out, busy=busy, buffered=buffered
            )
            if start is None:
                continue
            if not _room(limits, job, now):
                out.blocked.add(job.id)  # untouched: it stays due
                continue
            starts.append(start)
            busy.add(job.id)
        for job, fire, attempt, manual_run in starts:
            out.started.append(
                await self._start(
                    conn,
                    writes,
                    job,
                    fire=fire,
                    attempt=attempt,
                    manual=manual_run,
                    now=now,
                    epoch=epoch,
                    lease=lease,
                )
            )
        await self._save_limits(conn, limits)
        return out, writes

    # --- reading -------------------------------------------------------------------------

    async def _manual(self, conn: Connection, free: int) -> list[tuple[int, int, float, bool]]:
        if free <= 0:
            return []
        cur = await conn.execute(
            "SELECT id, job_id, requested, force FROM manual ORDER BY id LIMIT %s"
            " FOR UPDATE SKIP LOCKED",
            [free + 16],
        )
        return [(int(r[0]), int(r[1]), float(r[2]), bool(r[3])) for r in await cur.fetchall()]

    async def _due(self, conn: Connection, now: float, free: int, skip: set[int]) -> list[int]:
        # Beyond the free slots, a few more: due jobs that start nothing (a resume, a miss, an
        # overlap skip) are handled in the same pass.
        cur = await conn.execute(
            "SELECT id FROM jobs WHERE wake <= %s AND NOT held AND NOT (id = ANY(%s))"
            " ORDER BY priority, wake, id LIMIT %s FOR UPDATE SKIP LOCKED",
            [now, sorted(skip), max(free, 0) + 16],
        )
        return [int(r[0]) for r in await cur.fetchall()]

    async def _busy(self, conn: Connection, ids: list[int]) -> set[int]:
        if not ids:
            return set()
        cur = await conn.execute(
            "SELECT DISTINCT job_id FROM inflight WHERE job_id = ANY(%s)", [ids]
        )
        return {int(r[0]) for r in await cur.fetchall()}

    async def _buffered(self, conn: Connection, ids: list[int]) -> set[int]:
        if not ids:
            return set()
        cur = await conn.execute("SELECT job_id FROM buffered WHERE job_id = ANY(%s)", [ids])
        return {int(r[0]) for r in await cur.fetchall()}

    async def _limits(self, conn: Connection, jobs: list[Job]) -> dict[str, Limits]:
        limited = sorted(
            {
                job.task
                for job in jobs
                if (rt := self.tasks.get(job.task)) is not None
                and (rt.concurrency is not None or rt.rate_limit is not None)
            }
        )
        if not limited:
            return {}
        await conn.execute(
            "INSERT INTO task_limits (task) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
            [limited],
        )
        cur = await conn.execute(
            "SELECT task, starts FROM task_limits WHERE task = ANY(%s) ORDER BY task FOR UPDATE",
            [limited],
        )
        rows = {r[0]: list(r[1] or []) for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT task, count(*) FROM inflight WHERE task = ANY(%s) GROUP BY task", [limited]
        )
        running = {r[0]: int(r[1]) for r in await cur.fetchall()}
        out = {}
        for task in limited:
            runtime = self.tasks[task]
            out[task] = Limits(
                runtime.concurrency, runtime.rate_limit, running.get(task, 0), rows.get(task, [])
            )
        return out

    async def _save_limits(self, conn: Connection, limits: dict[str, Limits]) -> None:
        for task, room in limits.items():
            if room.rate is not None:
                await conn.execute(
                    "UPDATE task_limits SET starts = %s WHERE task = %s", [room.starts, task]
                )

    # --- deciding ------------------------------------------------------------------------

    def _apply(
        self,
        writes: Writes,
        job: Job,
        decision: Decision,
        *,
        now: float,
        out: Claim,
        busy: set[int],
        buffered: set[int],
    ) -> tuple[Job, float, int, bool] | None:
        """Write what ``decision`` says; the run to start, if it starts one."""
        action, fire, nxt = decision.action, decision.fire, decision.nxt
        if decision.missed is not None:
            writes.run(missed_record(job, decision.missed, now))
        if action is Action.RESUME:
            back = resumed(
                job,
                now,
                lambda t: self.triggers.next_after(job, t),
                catch_up=False,
                in_flight=job.id in busy,
            )
            writes.put(back)
            return None
        if action is Action.RETRY:
            assert fire is not None
            return job, fire, job.attempt + 1, False
        if action is Action.RUN:
            assert fire is not None
            recurring = job.type is JobType.RECURRING
            return replace(job, scheduled=nxt if recurring else None), fire, 1, False
        if action is Action.DEFER:
            assert nxt is not None
            out.deferred[job.id] = nxt
        elif action is Action.HOLD:
            writes.put(job, held=True)
        elif action is Action.RESCHEDULE:
            writes.put(_rescheduled(job, nxt, now, busy=job.id in busy))
        elif action is Action.SKIP:
            assert fire is not None
            writes.run(skipped_record(job.id, fire, now))
            writes.put(_rescheduled(job, nxt, now, busy=True))
        elif action in (Action.BUFFER, Action.CANCEL_OTHER):
            assert fire is not None
            buffered.add(job.id)
            writes.buffer(job.id, fire)
            writes.put(_rescheduled(job, nxt, now, busy=True))
            if action is Action.CANCEL_OTHER:
                out.cancels.add(job.id)
                writes.cancel(job.id, SUPERSEDED)
        else:  # MISSED
            error = "missed: later than its misfire grace"
            writes.put(
                replace(job, status=JobStatus.FAILED, scheduled=None, completed=now, error=error)
            )
            writes.event(JobFailed(job_id=job.id, outcome="missed", attempt=0, error=error), now)
        return None

    async def _start(
        self,
        conn: Connection,
        writes: Writes,
        job: Job,
        *,
        fire: float,
        attempt: int,
        manual: bool,
        now: float,
        epoch: int,
        lease: float,
    ) -> Started:
        nxt = job.scheduled
        if not manual and job.fire is not None and job.type is JobType.RECURRING:
            # A retry: the grid continues from its fire; a rerun after a dead node: from where
            # the other nodes left it (see complete.py).
            grid = job.resume_grid
            if grid is None or grid <= fire:
                nxt = self.triggers.next_after(job, fire)
            else:
                nxt = None if math.isinf(grid) else grid
        elif not manual and job.fire is not None:
            nxt = None
        begun = started(job, fire=fire, attempt=attempt, now=now, nxt=nxt)
        writes.put(begun)
        await conn.execute(
            "INSERT INTO inflight (job_id, fire, attempt, node_id, epoch, task, started,"
            " lease_until, manual) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [job.id, fire, attempt, self.node_id, epoch, job.task, now, now + lease, manual],
        )
        writes.event(RunStarted(job_id=job.id, attempt=attempt, fire=fire), now)
        return Started(begun, fire, attempt, now, manual)


def _may_start(job: Job) -> bool:
    """Whether a due job would most likely start a run (then it waits for a free slot)."""
    return job.status is not JobStatus.PAUSED


def _room(limits: dict[str, Limits], job: Job, now: float) -> bool:
    room = limits.get(job.task)
    return room is None or room.admit(now)


def _rescheduled(job: Job, nxt: float | None, now: float, *, busy: bool) -> Job:
    """A recurring job's next instant; a rule that ended ends the job unless a run of it is in
    flight (that run settles it)."""
    if nxt is None and not busy and job.status is JobStatus.PENDING:
        return ended(job, now)
    return replace(job, scheduled=nxt)


async def _now(conn: Connection) -> float:
    cur = await conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
    row = await cur.fetchone()
    assert row is not None
    return float(row[0])
