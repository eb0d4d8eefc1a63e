"""A cluster node's engine: claims due work from the shared job set, runs it, records it.

It offers the single box engine's interface to the service, the API, metrics and alerts, over
other parts: the job set is the node's replica (:mod:`.replica`), kept in step with the
database; due work is claimed in transactions (:mod:`.claims`); a run's end is recorded fenced
(:mod:`.complete`); runs of dead nodes are reaped; the node's lease and clock are
:mod:`.node`'s. The run itself (its timeout, its cancel) is the single box's
(:mod:`scheduler.engine.execution`).

When to claim. The replica knows every job's next instant (in database time: the node arms its
timer on its own clock plus the measured offset); a claim also follows every notification that
something may be due (a job written, a slot freed, a run-now requested), and the periodic scan.
A pass that finds nothing to do waits for the next notification rather than spinning on work
another node holds or a task limit blocks. Work inside its task's maintenance window waits the
same way, and at the latest until the window's end, when the node claims again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Mapping

from scheduler.clock import Clock
from scheduler.cluster.claims import Claimer, Started
from scheduler.cluster.complete import Ending, complete, reap
from scheduler.cluster.db import Connection, Pool, db_now
from scheduler.cluster.feed import Feed
from scheduler.cluster.housekeeping import housekeeping_loop, reap_loop
from scheduler.cluster.node import Node
from scheduler.cluster.replica import Replica
from scheduler.cluster.rows import Writes, cancel_reasons
from scheduler.engine.cache import TriggerCache
from scheduler.engine.execution import ActiveRun, cancel_run, execute, run_context, run_record
from scheduler.engine.outcomes import SHUTDOWN
from scheduler.engine.queue import TaskRuntime
from scheduler.engine.waiters import Waiters, not_started
from scheduler.errors import Unavailable
from scheduler.events import Hub
from scheduler.ids import encode
from scheduler.maintenance import Maintenance, refuse_run_now
from scheduler.model import Job, JobStatus, Run, RunResult
from scheduler.store import Store
from scheduler.triggers import Trigger

log = logging.getLogger("scheduler.cluster")

LEASE_LOST = "lease lost: this node could not renew its lease in time"
#: Seconds between tries to record a run's end while the database is unreachable.
RETRY_COMPLETE = 0.5
#: Longest wait, in seconds, for the database's clock to reach an instant this node's clock
#: says has come.
CLOCK_SLACK = 0.05


class ClusterEngine:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        tasks: Mapping[str, TaskRuntime],
        hub: Hub,
        pool: Pool,
        node: Node,
        replica: Replica,
        feed: Feed,
        schema: str,
        history: int,
        max_concurrency: int = 10,
        scan_interval: float = 60.0,
        retention: float = 86400.0,
        default_timeout: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.tasks = tasks
        self.hub = hub
        self.pool = pool
        self.node = node
        self.replica = replica
        self.feed = feed
        self.schema = schema
        self.history = history
        self.max_concurrency = max_concurrency
        self.scan_interval = scan_interval
        self.retention = retention
        self.default_timeout = default_timeout
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.triggers = TriggerCache()
        self.waiters = Waiters()
        self.claimer = Claimer(
            node_id=node.node_id,
            tasks=tasks,
            triggers=self.triggers,
            history=history,
            schema=schema,
            rng=self.rng,
        )
        self.running: dict[int, list[ActiveRun]] = {}
        self.stopping = False
        #: Fenced completions (a run this node lost), claims made, runs started: for metrics.
        self.fenced = 0
        self.claims = 0
        self.claim_seconds = 0.0
        self._fires: dict[tuple[int, float], asyncio.Future[Run]] = {}
        self._wake = asyncio.Event()
        self._idle = False  # the last pass did nothing: wait for a notification
        self._passed_at = -math.inf  # the database's clock at the last pass ...
        self._passed_mono = 0.0  # ... and the monotonic clock then (0: no pass yet)
        self._blocked: set[int] = set()
        self._pokes = 0  # how many pokes so far: one during a pass makes its skips stale
        #: The earliest end of a maintenance window holding due work back (None: none does).
        self._deferred_until: float | None = None
        self._stopped: asyncio.Event | None = None
        self._group: asyncio.TaskGroup | None = None
        self._epochs: dict[int, int] = {}  # id(run) -> the epoch it was claimed under
        replica.on_job = self._on_job
        replica.on_runs = self._on_runs
        replica.on_cancel = self._on_cancel
        replica.on_wake = self.poke
        replica.on_paused = lambda _paused: self.poke()
        replica.on_delete = self._on_delete
        replica.on_events = feed.poke
        node.on_fenced = self._on_fenced
        node.on_registered = self.poke

    # --- lifecycle -----------------------------------------------------------------------

    async def serve(self, started: asyncio.Event | None = None) -> None:
        """Run until :meth:`stop`: the heartbeat, the replica's listener, the claims, the
        reaper and the housekeeping, and the runs, in one task group."""
        self._stopped = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            self._group = group
            loops = [
                group.create_task(self.node.serve(), name="cluster-heartbeat"),
                group.create_task(self.replica.serve(), name="cluster-replica"),
                group.create_task(self.feed.serve(), name="cluster-feed"),
                group.create_task(self._claim_loop(), name="cluster-claims"),
                group.create_task(reap_loop(self), name="cluster-reaper"),
                group.create_task(housekeeping_loop(self), name="cluster-housekeeping"),
            ]
            if started is not None:
                started.set()
            await self._stopped.wait()
            for loop in loops:
                loop.cancel()
        self._group = None

    async def stop(self, grace: float) -> None:
        """Stop claiming; runs in flight get ``grace`` seconds, then are cancelled and recorded
        as interrupted (they follow ``onCrash``: another node reruns them)."""
        self.stopping = True
        self.poke()
        waiting = [r.ended() for runs in self.running.values() for r in runs]
        if waiting and grace > 0:
            await asyncio.wait(waiting, timeout=grace)
        for runs in list(self.running.values()):
            for run in runs:
                cancel_run(run, SHUTDOWN)
        remaining = [r.ended() for runs in self.running.values() for r in runs]
        if remaining:
            await asyncio.wait(remaining, timeout=grace + 30.0)
        if self._stopped is not None:
            self._stopped.set()
        await self.node.close()

    async def recover_interrupted(self) -> int:
        """At start: this node's runs from before the restart (older epochs) are handled now,
        not after a lease."""
        async with self.pool.connection() as conn, conn.transaction():
            writes = self.writes(conn)
            count = await reap(
                conn,
                writes,
                now=await db_now(conn),
                where="node_id = %s AND epoch < %s",
                params=[self.node.node_id, self.node.epoch],
            )
            await writes.flush()
        self.applied(writes)
        return count

    def set_paused(self, paused: bool) -> None:
        """The cluster-wide flag is in the database (the service writes it); look again."""
        del paused
        self.poke()

    def set_concurrency(self, limit: int) -> None:
        self.max_concurrency = limit
        self.poke()

    @property
    def maintenance(self) -> Maintenance | None:
        return self.claimer.maintenance

    def set_maintenance(self, maintenance: Maintenance) -> None:
        """Use these windows from the next claim on (start, reload): work they held is looked
        at again at once."""
        self.claimer.maintenance = maintenance or None
        self._deferred_until = None
        self.poke()

    def refuse_in_maintenance(self, job: Job) -> None:
        """Raise :class:`~scheduler.maintenance.InMaintenance` (409) when the job's task is
        inside an open window (a run-now would start what the window prevents)."""
        refuse_run_now(self.maintenance, job.task, self.clock.time())

    # --- claiming ------------------------------------------------------------------------

    def poke(self) -> None:
        """Something may be due or a slot free: claim again."""
        self._idle = False
        self._blocked.clear()
        self._pokes += 1
        self._wake.set()

    async def _claim_loop(self) -> None:
        while True:
            await self._until_due()
            if self.stopping:
                return
            if self.store.paused or not self.node.lease_valid():
                # Nothing may start until a resume or a registration (each pokes).
                await self._poked(self.scan_interval)
                continue
            free = self.max_concurrency - self.in_flight()
            if free <= 0:  # full: the end of a run pokes (nodes with room take the due work)
                await self._poked(self.scan_interval)
                continue
            try:
                did = await self._claim(free)
            except Unavailable as exc:
                log.warning("claim: %s", exc.message)
                await asyncio.sleep(1.0)
                continue
            self._idle = not did

    async def _until_due(self) -> None:
        """Wait for the replica's earliest due instant (on the database's clock), a
        notification, or the periodic scan."""
        timeout = self.scan_interval
        if self._deferred_until is not None:
            until = self._deferred_until - self.clock.time()
            if until <= 0:  # a window that held work back has closed: look at it again
                self._deferred_until = None
                self._blocked.clear()
                self._idle = False
            else:
                timeout = until
        nxt = self.store.next_wake()
        if nxt is not None:
            ahead = nxt - self.clock.time()  # the database's clock, as estimated (NodeClock)
            if ahead <= 0 and self._passed_mono:
                # The estimate may run a little ahead of the database: also wait for the
                # database's clock, as it went on from the last pass, to reach the instant
                # (bounded: a pass made meanwhile corrects it).
                since = time.monotonic() - self._passed_mono
                ahead = min(nxt - (self._passed_at + since), CLOCK_SLACK)
            # Work that was due at the last pass and that the pass could not take (another
            # node holds it, a task limit blocks it) waits for a notification, not a spin;
            # work that came due after it is claimed when it comes.
            if ahead > 0 or not self._idle or nxt > self._passed_at:
                timeout = min(timeout, max(0.0, ahead))
        if timeout > 0:
            await self._poked(timeout)
        else:
            await asyncio.sleep(0)  # never a pass after a pass without the loop's other work
            self._wake.clear()

    async def _poked(self, within: float) -> None:
        """Wait up to ``within`` seconds for :meth:`poke`."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
        # arrives as the event is set, and a stop would then wait for this loop forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._wake.wait()
        self._wake.clear()

    async def _claim(self, free: int) -> bool:
        """One pass; whether it did something, or was poked meanwhile (look again at once)."""
        began = time.perf_counter()
        pokes = self._pokes
        async with self.pool.connection() as conn, conn.transaction():
            claim, writes = await self.claimer.claim(
                conn,
                epoch=self.node.epoch,
                lease=self.node.lease,
                free=max(free, 0),
                skip=self._blocked,
            )
            await writes.flush()
        self.claims += 1
        self.claim_seconds += time.perf_counter() - began
        self._passed_at, self._passed_mono = claim.now, time.monotonic()
        self.applied(writes)
        # What this pass could not take is skipped until the next poke, unless a poke came
        # while it ran (a reload that removed a window, a run's end): the world it decided
        # on is gone, so nothing is skipped and the loop looks again at once.
        poked = self._pokes != pokes
        if not poked:
            self._blocked |= claim.blocked
        if claim.deferred and not poked:
            self._blocked |= claim.deferred.keys()
            end = min(claim.deferred.values())
            if self._deferred_until is None or end < self._deferred_until:
                self._deferred_until = end
        epoch = self.node.epoch
        for started in claim.started:
            self._launch(started, epoch)
        return poked or bool(claim.started or writes.written or writes.deleted)

    def _launch(self, started: Started, epoch: int) -> None:
        run = ActiveRun(
            started.job.id, started.fire, started.attempt, self.clock.time(), started.manual
        )
        self.running.setdefault(run.job_id, []).append(run)
        self._epochs[id(run)] = epoch
        assert self._group is not None
        self._group.create_task(self._run(started.job, run), name=f"run-{encode(run.job_id)}")

    # --- running -------------------------------------------------------------------------

    async def _run(self, job: Job, run: ActiveRun) -> None:
        ctx = run_context(job, run, report_progress=_ignore, report_pid=_ignore)
        result = await execute(
            self.tasks.get(job.task), job, run, ctx, self.clock, default=self.default_timeout
        )
        record = run_record(job.id, run, result, self.clock.time())
        try:
            if run.cancel_reason != LEASE_LOST:
                await self._complete(job, run, record, result)
        finally:
            self._unregister(run)
            for fut in (run.done, run.waiter):
                if fut is not None and not fut.done():
                    fut.set_result(record)
            self.waiters.ended(job.id, record)
            self.poke()

    async def _complete(self, job: Job, run: ActiveRun, record: Run, result: RunResult) -> None:
        epoch = self._epochs.pop(id(run), self.node.epoch)
        ending = Ending(
            job_id=job.id,
            fire=run.fire,
            attempt=run.attempt,
            started=run.started,
            manual=run.manual,
            record=record,
            result=result,
            cancel_reason=run.cancel_reason,
        )
        while True:
            if epoch != self.node.epoch or self.node.fenced:
                self.fenced += 1
                return  # fenced: the run was reaped, and perhaps rerun elsewhere
            try:
                async with self.pool.connection() as conn, conn.transaction():
                    writes = self.writes(conn)
                    kept = await complete(
                        conn,
                        writes,
                        ending,
                        node_id=self.node.node_id,
                        epoch=epoch,
                        now=await db_now(conn),
                        rng=self.rng,
                    )
                    await writes.flush()
            except Unavailable as exc:
                log.warning(
                    "job %s: its run ended, the database is unreachable (%s); retrying",
                    encode(job.id),
                    exc.message,
                )
                await asyncio.sleep(RETRY_COMPLETE)
                continue
            if not kept:
                self.fenced += 1
                log.warning("job %s: its run was fenced (this node lost it)", encode(job.id))
                return
            self.applied(writes)
            return

    def _unregister(self, run: ActiveRun) -> None:
        runs = self.running.get(run.job_id, [])
        if run in runs:
            runs.remove(run)
        if not runs:
            self.running.pop(run.job_id, None)

    def _on_fenced(self) -> None:
        for runs in list(self.running.values()):
            for run in runs:
                cancel_run(run, LEASE_LOST)

    def _on_cancel(self, job_id: int) -> None:
        if job_id in self.running and self._group is not None:
            self._group.create_task(self._cancel_local(job_id))

    async def _cancel_local(self, job_id: int) -> None:
        """Stop this node's runs of ``job_id`` with the reason the canceller wrote."""
        async with self.pool.connection() as conn:
            reasons = await cancel_reasons(conn, job_id, self.node.node_id)
        for run in self.running.get(job_id, ()):
            reason = reasons.get(run.fire)
            if reason:
                cancel_run(run, reason)

    # --- the replica's changes -----------------------------------------------------------

    def writes(self, conn: Connection) -> Writes:
        return Writes(conn, self.schema, history=self.history)

    def applied(self, writes: Writes) -> None:
        """What this node just committed, into its replica (it reads its own writes), and
        to its in-process subscribers."""
        for job, version in writes.written.values():
            self.replica.apply_job(job, version)
        for job_id in writes.deleted:
            self.replica.apply_delete(job_id)
        for job_id, runs in writes.run_seqs.items():
            self.replica.apply_runs(job_id, runs)
        writes.publish_local(self.hub, self.store)

    def _on_job(self, job: Job) -> None:
        if job.status is JobStatus.CANCELLED:
            self.waiters.release(job.id, job)  # it will not run again: waits end now
        self.poke()

    def _on_delete(self, job_id: int) -> None:
        self.triggers.forget(job_id)
        self.waiters.release(job_id, None)
        for key in [k for k in self._fires if k[0] == job_id]:
            not_started(self._fires.pop(key), job_id, None)

    def _on_runs(self, job: Job, runs: list[Run]) -> None:
        for run in runs:
            self.waiters.recorded(job.id, run)
            fut = self._fires.pop((job.id, run.fire), None)
            if fut is not None and not fut.done():
                fut.set_result(run)

    # --- operations used by the service --------------------------------------------------

    def wait_fire(self, job_id: int, fire: float) -> asyncio.Future[Run]:
        """A future for the run of ``fire`` (a run-now's ``?wait``), from any node."""
        fut: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self._fires[(job_id, fire)] = fut
        return fut

    def busy(self, job_id: int) -> bool:
        job = self.store.get(job_id)
        return job_id in self.running or (job is not None and job.status is JobStatus.RUNNING)

    def next_record(self, job_id: int) -> asyncio.Future[Run]:
        return self.waiters.next_record(job_id)

    def next_run_end(self, job_id: int) -> asyncio.Future[Run]:
        return self.waiters.next_end(job_id)

    def release_waiters(self, job_id: int, job: Job | None) -> None:
        self.waiters.release(job_id, job)

    def forget(self, job_id: int) -> None:
        self._on_delete(job_id)

    def trigger(self, job: Job) -> Trigger:
        return self.triggers.trigger(job)

    def next_times(self, job: Job, n: int) -> list[float]:
        return self.triggers.next_times(job, n)

    def waiting(self) -> int:
        """Due work this node found no room for (task limits), as far as it knows."""
        return len(self._blocked)

    def in_flight(self) -> int:
        return sum(len(r) for r in self.running.values())

    def local_cancel(self, job_id: int, reason: str) -> list[asyncio.Future[Run]]:
        """Stop this node's runs of the job (the service also asks the others)."""
        out = []
        for run in self.running.get(job_id, ()):
            cancel_run(run, reason)
            out.append(run.ended())
        return out


def _ignore(*_args: object) -> None:
    """A run's progress and process id: not shared between nodes (see docs/cluster.md)."""
