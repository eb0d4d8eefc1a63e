"""Runs: the workers that take them from the ready queue, and each run's life from start to end.

A worker takes a run (its place under every limit is reserved at that moment, see
:mod:`.queue`), registers it before anything is awaited (so cancel, delete and the overlap
policy see it at once), journals its start durably before the side effect, so a fire id is
never claimed twice, runs the executor under the run's timeout, and records the end. The end
is made durable (the same group commit as everything else) before anyone is told of it.

Cancelling a run (cancel, delete, ``cancel_other``, a timeout, shutdown) moves the deadline of
the run's ``asyncio.timeout`` scope to now, with a reason; the executor sees ``CancelledError``
and cleans up. A run cancelled while its start was being journalled never calls the executor.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from typing import Final

from msgspec.structs import replace

from scheduler.clock import Clock
from scheduler.engine.cache import TriggerCache
from scheduler.engine.execution import (
    ActiveRun,
    cancel_run,
    cancelled,
    execute,
    run_context,
    run_record,
)
from scheduler.engine.outcomes import SHUTDOWN, settle
from scheduler.engine.planning import started
from scheduler.engine.queue import (
    BUFFERED,
    FROM_FIRE,
    MANUAL,
    RETRY,
    Place,
    QueuedRun,
    ReadyQueue,
    TaskRuntime,
)
from scheduler.engine.retention import Retention
from scheduler.engine.waiters import Waiters, not_started
from scheduler.engine.workers import WorkerPool
from scheduler.errors import StorageFull
from scheduler.events import (
    Hub,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobRetrying,
    RunProgress,
    RunRecorded,
    RunStarted,
    Settled,
)
from scheduler.executors.base import RunContext
from scheduler.ids import encode
from scheduler.model import (
    FINISHED,
    AddRun,
    Job,
    JobStatus,
    JobType,
    Outcome,
    Progress,
    PutJob,
    Run,
    RunResult,
)
from scheduler.store import Store

log = logging.getLogger("scheduler.engine")
#: The settled record for each event name :func:`~.outcomes.settle` gives.
SETTLED: Final[dict[str, type[Settled]]] = {
    "job-completed": JobCompleted,
    "job-failed": JobFailed,
    "job-retry": JobRetrying,
    "job-cancelled": JobCancelled,
}


class Runner:
    """The workers and the runs in flight. ``on_idle(job_id)`` is called whenever a job may
    have no run left in flight or queued (the engine then starts what its overlap policy
    held back)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        tasks: Mapping[str, TaskRuntime],
        hub: Hub,
        triggers: TriggerCache,
        retention: Retention,
        waiters: Waiters,
        max_concurrency: int,
        default_timeout: float | None,
        rng: random.Random,
        on_idle: Callable[[int], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.tasks = tasks
        self.hub = hub
        self.triggers = triggers
        self.retention = retention
        self.waiters = waiters
        self.default_timeout = default_timeout
        self.rng = rng
        self.on_idle = on_idle
        self.running: dict[int, list[ActiveRun]] = {}
        self.stopping = False
        self.pool = WorkerPool(max_concurrency, take=self.take, start=self.start)
        self.queue = ReadyQueue(
            clock, tasks, self.pool.wake, limit=max_concurrency, on_drop=self._dropped
        )
        self.pool.ready = self.queue.ready

    # --- the workers (see :mod:`.workers`) ------------------------------------------------

    @property
    def max_concurrency(self) -> int:
        return self.pool.limit

    def start_workers(self, group: asyncio.TaskGroup) -> None:
        self.stopping = False
        self.pool.start(group)

    def stop_workers(self) -> None:
        self.pool.stop()

    def set_concurrency(self, limit: int) -> None:
        """Change ``max_concurrency`` at run time (reload): add or retire workers."""
        self.queue.limit = limit
        self.pool.resize(limit)

    def wake(self) -> None:
        self.pool.wake()

    def take(self) -> tuple[QueuedRun, Job, Place] | None:
        """The next run a worker may start now, its place reserved; None to wait."""
        if self.stopping or self.store.paused:
            return None
        return self.queue.take(self.store.jobs)

    # --- runs in flight ------------------------------------------------------------------

    def busy(self, job_id: int) -> bool:
        """Whether a run of the job is in flight, starting, or waiting in the queue: what the
        overlap policy and run-now count as "still running"."""
        return job_id in self.running or self.queue.queued(job_id) > 0

    def in_flight(self) -> int:
        return sum(len(r) for r in self.running.values())

    def cancel(self, job_id: int, reason: str) -> list[asyncio.Future[Run]]:
        """Stop the job's runs in flight (one whose start is being journalled included);
        futures that resolve when they have ended."""
        out = []
        for run in self.running.get(job_id, ()):
            cancel_run(run, reason)
            out.append(run.ended())
        return out

    async def stop_runs(self, grace: float) -> None:
        """Let runs in flight finish for ``grace`` seconds, then cancel them and wait (bounded)
        while their executors stop what they started (a process group: TERM, grace, KILL)."""
        self.stopping = True
        waiting = [r.ended() for runs in self.running.values() for r in runs]
        if waiting:
            await self._wait_for(waiting, grace)
        for runs in list(self.running.values()):
            for run in runs:
                cancel_run(run, SHUTDOWN)
        remaining = [r.ended() for runs in self.running.values() for r in runs]
        if remaining:
            await asyncio.wait(remaining, timeout=grace + 30.0)

    async def _wait_for(self, futures: list[asyncio.Future[Run]], seconds: float) -> None:
        """Wait until all ``futures`` are done or ``seconds`` of the injected clock pass."""
        if seconds <= 0:
            return
        everything = asyncio.ensure_future(asyncio.wait(futures))
        timer = asyncio.ensure_future(self.clock.sleep(seconds))
        await asyncio.wait({everything, timer}, return_when=asyncio.FIRST_COMPLETED)
        for fut in (everything, timer):
            fut.cancel()

    # --- a run's life --------------------------------------------------------------------

    def _plan_start(
        self, queued: QueuedRun, job: Job, now: float
    ) -> tuple[float, int, float | None] | None:
        """``(fire, attempt, next scheduled instant)`` for a run about to start, or None when
        the job changed while it waited for a slot (modified, cancelled, paused)."""
        kind = queued.kind
        live = job.status is JobStatus.PENDING or job.status is JobStatus.RUNNING
        if kind == MANUAL:
            # Outside the schedule, which stays as it was (a one-off keeps its own run too).
            return (now, 1, job.scheduled) if live else None
        if kind == BUFFERED:
            return (queued.fire, 1, job.scheduled) if live else None
        if not live or job.scheduled != queued.expect:
            return None
        if queued.expect is not None and queued.expect > now:  # a timer fired early
            self.store.requeue(job)
            return None
        if job.schedule.type is not JobType.RECURRING:
            nxt = None
        elif queued.nxt == FROM_FIRE:
            nxt = self.triggers.next_after(job, queued.fire)
        else:
            nxt = queued.nxt
        return queued.fire, job.attempt + 1 if kind == RETRY else 1, nxt

    async def start(self, queued: QueuedRun, job: Job, place: Place) -> None:
        now = self.clock.time()
        plan = self._plan_start(queued, job, now)
        if plan is None:
            self.queue.release(place, started=False)
            self._dropped(queued, self.store.jobs.get(job.id))
            self.on_idle(job.id)
            return
        fire, attempt, nxt = plan
        # Registered before the first await: from here on a cancel, a delete or the overlap
        # policy sees this run, even while its start is being made durable.
        run = ActiveRun(job.id, fire, attempt, now, queued.kind == MANUAL, waiter=queued.waiter)
        self.running.setdefault(job.id, []).append(run)
        begun = started(job, fire=fire, attempt=attempt, now=now, nxt=nxt)
        try:
            job = self.store.put(begun)
            await self.store.commit()  # the start is durable before the side effect
        except StorageFull:
            self._unregister(run)
            self.queue.release(place, started=False)
            self._start_refused(queued, job, run, now)
            return
        if self.hub.wants(RunStarted):
            self.hub.publish(RunStarted(job_id=job.id, attempt=attempt, fire=fire))
        try:
            if run.cancel_reason is not None:  # cancelled while its start was journalled
                result = cancelled(run.cancel_reason)
            else:
                ctx = self._context(job, run)
                runtime = self.tasks.get(job.task)
                result = await execute(
                    runtime, job, run, ctx, self.clock, default=self.default_timeout
                )
        finally:
            self.queue.release(place)
        await self._finish(job.id, run, result)

    def _start_refused(self, queued: QueuedRun, job: Job, run: ActiveRun, now: float) -> None:
        """The disk refused the start record: nothing ran. Try again in 5 s, unless the run
        was cancelled meanwhile (its canceller is told it ended)."""
        if run.done is not None and not run.done.done():
            run.done.set_result(
                Run(job_id=job.id, fire=run.fire, attempt=run.attempt, outcome=Outcome.CANCELLED)
            )
        if run.cancel_reason is not None:
            self._dropped(queued, job)
            return
        log.warning(
            "job %s: cannot record its start, the disk is full; retrying in 5 s", encode(job.id)
        )
        self.clock.call_at(now + 5.0, lambda: self.queue.put_back(queued, job))

    def _unregister(self, run: ActiveRun) -> None:
        runs = self.running.get(run.job_id, [])
        if run in runs:
            runs.remove(run)
        if not runs:
            self.running.pop(run.job_id, None)

    def _dropped(self, queued: QueuedRun, job: Job | None) -> None:
        """A queued run will not start (its job was deleted, cancelled, paused or changed):
        a ``?wait=true`` caller is told so instead of waiting for ever."""
        if queued.waiter is not None:
            not_started(queued.waiter, queued.job_id, job)

    def _context(self, job: Job, run: ActiveRun) -> RunContext:
        job_id = job.id
        return run_context(
            job,
            run,
            report_progress=lambda pct, msg: self._progress(job_id, pct, msg),
            report_pid=lambda pid: self._pid(job_id, pid),
        )

    def _progress(self, job_id: int, percent: float, message: str | None) -> None:
        job = self.store.jobs.get(job_id)
        if job is None or job.status is not JobStatus.RUNNING:
            return
        progress = Progress(max(0.0, min(100.0, float(percent))), message)
        self.store.jobs[job_id] = replace(job, progress=progress)  # not journalled: transient
        if self.hub.wants(RunProgress):
            self.hub.publish(RunProgress(job_id=job_id, percent=progress.percent, message=message))

    def _pid(self, job_id: int, pid: int | None) -> None:
        job = self.store.jobs.get(job_id)
        if job is None:
            return
        from scheduler.executors.command import process_start_ticks

        ticks = process_start_ticks(pid) if pid is not None else None
        try:
            self.store.put(replace(job, pid=pid, pid_started=ticks))
        except StorageFull:
            log.warning("job %s: could not journal its process id (disk full)", encode(job_id))

    async def _finish(self, job_id: int, run: ActiveRun, result: RunResult) -> None:
        """Record a run's end and the job's new state (one journal write); once that is
        durable (the same group commit as everything else), tell whoever waits or listens."""
        now = self.clock.time()
        self._unregister(run)
        record = run_record(job_id, run, result, now)
        job = self.store.jobs.get(job_id)
        settled = None
        if job is not None:
            job, settled = self._settle(job, run, result, record, now)
        await self.store.commit()
        if job is not None:
            self.notify(job, record)
            if settled is not None and self.hub.wants(settled):
                self.hub.publish(
                    settled(
                        job_id=job_id,
                        outcome=record.outcome,
                        attempt=record.attempt,
                        error=record.error,
                        final=settled is not JobRetrying,
                    )
                )
        for fut in (run.done, run.waiter):
            if fut is not None and not fut.done():
                fut.set_result(record)
        self.waiters.ended(job_id, record)
        self.on_idle(job_id)

    def _settle(
        self, job: Job, run: ActiveRun, result: RunResult, record: Run, now: float
    ) -> tuple[Job, type[Settled]]:
        """Record the run and store the job's state after it (see :mod:`.outcomes`); returns
        it and the kind of record to publish once it is durable."""
        new, event = settle(
            job,
            record,
            result=result,
            cancel_reason=run.cancel_reason,
            busy=job.id in self.running,  # in flight (overlap=allow); queued runs start anew
            now=now,
            rng=self.rng,
        )
        try:
            self.store.end_run(record, new)
        except StorageFull:
            log.error(  # noqa: TRY400 - a full disk needs no traceback
                "job %s: could not journal the end of its run (disk full); after a restart "
                "the run counts as interrupted and follows onCrash",
                encode(job.id),
            )
            # Memory stays truthful; only durability lags.
            self.store.apply(AddRun(record))
            self.store.apply(PutJob(new))
        if new.status in FINISHED:
            self.retention.note(new)
        return new, SETTLED[event]

    # --- the history ---------------------------------------------------------------------

    def record(self, job: Job, run: Run) -> None:
        """Add ``run`` to the job's history and tell listeners and waiters."""
        self.record_quietly(run)
        self.notify(job, run)

    def record_quietly(self, run: Run) -> None:
        try:
            self.store.add_run(run)
        except StorageFull:
            log.error("job %s: run not recorded, the disk is full", encode(run.job_id))  # noqa: TRY400

    def notify(self, job: Job, run: Run) -> None:
        if self.hub.wants(RunRecorded):
            self.hub.publish(RunRecorded(job_id=job.id, job=job, run=run))
        self.waiters.recorded(job.id, run)
