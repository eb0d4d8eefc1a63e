"""The engine: sleeps until the earliest due time or until woken, and runs what is due.

How a job gets run:

1. The store's due heap holds every pending job's next instant. One timer is armed (through the
   injected clock) for the earliest; adding an earlier job re-arms it. A periodic scan
   (``scan_interval``) re-arms from the wall clock, so a clock step or a suspend is caught within
   one interval; it is never the only trigger.
2. When the timer fires, due jobs are popped (never before their instant: the clock is re-read)
   and planned: the misfire policy (:mod:`scheduler.engine.misfire`) and, for a job still
   running, the overlap policy decide what runs; what does not run is recorded as a run with
   an outcome.
3. What runs goes to the ready queue, ordered by priority, then scheduled time, then creation
   order. ``max_concurrency`` long-lived workers take from it, honouring per-task concurrency and
   rate limits. A worker journals the run's start (durably) before calling the executor, so a
   fire id is never claimed twice, then applies the timeout and records the outcome: success,
   a retry (a pending attempt in the store, not a sleeping task), or a final failure.

Cancelling a run (cancel, delete, ``cancel_other``, shutdown) moves the deadline of the run's
``asyncio.timeout`` to now, with a reason; the executor sees ``CancelledError`` and cleans up.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import msgspec
from msgspec.structs import replace

from scheduler.clock import Clock, Timer
from scheduler.engine.misfire import plan_fire, plan_one_off
from scheduler.engine.outcomes import SHUTDOWN, SUPERSEDED, interrupted, settle
from scheduler.engine.queue import (
    BUFFERED,
    DUE,
    FROM_FIRE,
    MANUAL,
    RETRY,
    Place,
    QueuedRun,
    ReadyQueue,
    TaskRuntime,
)
from scheduler.errors import InvalidState, JobNotFound, StorageFull
from scheduler.events import Hub
from scheduler.executors.base import RunContext
from scheduler.ids import encode
from scheduler.model import (
    FINISHED,
    Coalesce,
    Job,
    JobStatus,
    JobType,
    Outcome,
    Overlap,
    Progress,
    PutJob,
    Run,
    RunResult,
    Source,
    fire_id,
)
from scheduler.schedules import load_zone
from scheduler.store import Store
from scheduler.triggers import Timeline, Trigger, compile_stored

log = logging.getLogger("scheduler.engine")

_YIELD_EVERY: Final = 64
_RESULT_CAP: Final = 65536
_RESULT_DEPTH: Final = 64
_ENCODER = msgspec.msgpack.Encoder()


@dataclass(slots=True)
class ActiveRun:
    """A run from the moment a worker took it (before its start is journalled, so cancel,
    delete and the overlap policy see it at once) until its end is recorded."""

    job_id: int
    fire: float
    attempt: int
    started: float
    manual: bool
    scope: asyncio.Timeout | None = None
    cancel_reason: str | None = None
    done: asyncio.Future[Run] | None = None  # made on demand: most runs have no waiter
    waiter: asyncio.Future[Run] | None = None  # the ``?wait=true`` of a run-now

    def ended(self) -> asyncio.Future[Run]:
        """A future that resolves with this run's record when it ends."""
        if self.done is None:
            self.done = asyncio.get_running_loop().create_future()
        return self.done


RunListener = Callable[[Job, Run], None]


class Engine:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        tasks: Mapping[str, TaskRuntime],
        hub: Hub | None = None,
        max_concurrency: int = 10,
        scan_interval: float = 60.0,
        retention: float = 86400.0,
        default_timeout: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.tasks = tasks
        self.hub = hub or Hub()
        self.max_concurrency = max_concurrency
        self.scan_interval = scan_interval
        self.retention = retention
        self.default_timeout = default_timeout
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.listeners: list[RunListener] = []
        self.running: dict[int, list[ActiveRun]] = {}
        self.stopping = False
        self.queue = ReadyQueue(
            clock, tasks, self._wake_workers, limit=max_concurrency, on_drop=self._dropped
        )
        self._watchers: dict[int, list[asyncio.Future[Run]]] = {}
        self._buffered: dict[int, float] = {}
        self._after: dict[int, asyncio.Future[Run]] = {}  # run-now waiting (buffer_one)
        self._record_waiters: dict[int, list[asyncio.Future[Run]]] = {}
        self._held: set[int] = set()
        self._expiry: list[tuple[float, int]] = []
        self._triggers: dict[int, tuple[Job, Trigger]] = {}
        self._idle: deque[asyncio.Future[None]] = deque()
        self._timer: Timer | None = None
        self._timer_at: float | None = None
        self._stopped: asyncio.Event | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._group: asyncio.TaskGroup | None = None
        store.on_wake = self._arm

    # --- lifecycle -----------------------------------------------------------------------

    async def serve(self, started: asyncio.Event | None = None) -> None:
        """Run until :meth:`stop` finishes; every task lives in this TaskGroup."""
        self._stopped = asyncio.Event()
        self.stopping = False
        retention = self.retention
        self._expiry = []
        ended = []
        for job in self.store.jobs.values():
            if _expires(job):
                self._expiry.append(((job.completed or job.created) + retention, job.id))
            elif job.scheduled is None and job.status is JobStatus.PENDING and job.fire is None:
                ended.append(job)  # a rule that ended before this version finished such jobs
        heapq.heapify(self._expiry)
        for job in ended:
            self._finish_ended(job, self.clock.time())
        async with asyncio.TaskGroup() as group:
            self._group = group
            self._workers = [group.create_task(self._worker()) for _ in range(self.max_concurrency)]
            scan = group.create_task(self._scan_loop())
            self._rearm()
            if started is not None:
                started.set()
            await self._stopped.wait()
            scan.cancel()
            for worker in self._workers:
                worker.cancel()
        self._group = None

    async def stop(self, grace: float) -> None:
        """Stop admitting, let running runs finish for ``grace`` seconds, then cancel them."""
        self.stopping = True
        self._disarm()
        waiting = [r.ended() for runs in self.running.values() for r in runs]
        if waiting:
            await self._wait_for(waiting, grace)
        for runs in list(self.running.values()):
            for run in runs:
                self._cancel_run(run, SHUTDOWN)
        remaining = [r.ended() for runs in self.running.values() for r in runs]
        if remaining:
            # Executors stop what they started (a process group gets TERM, grace, KILL).
            await asyncio.wait(remaining, timeout=grace + 30.0)
        for fut in self._idle:
            if not fut.done():
                fut.cancel()
        if self._stopped is not None:
            self._stopped.set()

    async def _wait_for(self, futures: list[asyncio.Future[Run]], seconds: float) -> None:
        """Wait until all ``futures`` are done or ``seconds`` of the injected clock pass."""
        if seconds <= 0:
            return
        everything = asyncio.ensure_future(asyncio.wait(futures))
        timer = asyncio.ensure_future(self.clock.sleep(seconds))
        await asyncio.wait({everything, timer}, return_when=asyncio.FIRST_COMPLETED)
        for fut in (everything, timer):
            fut.cancel()

    def set_paused(self, paused: bool) -> None:
        """Pause or resume dispatching for the whole daemon (jobs are still accepted)."""
        self.store.set_paused(paused)
        if paused:
            self._disarm()
        else:
            self._rearm()
            self._wake_workers()

    def set_concurrency(self, limit: int) -> None:
        """Change ``max_concurrency`` at run time (reload): add or retire workers."""
        self.max_concurrency = limit
        self.queue.limit = limit
        group = self._group
        if group is None:
            return
        self._workers = [w for w in self._workers if not w.done()]
        while len(self._workers) < limit:
            self._workers.append(group.create_task(self._worker()))
        # Extra workers retire as they go idle (a run in flight is never cut short for this).
        for fut in list(self._idle):
            if not fut.done():
                fut.set_result(None)
        self._idle.clear()

    # --- the timer -----------------------------------------------------------------------

    def _arm(self, when: float) -> None:
        if self.stopping or self.store.paused or self._stopped is None:
            return
        if self._timer_at is not None and self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.clock.call_at(when, self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _rearm(self) -> None:
        self._disarm()
        self._on_timer()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.stopping or self.store.paused:
            return
        self._collect_due(self.clock.time())
        nxt = self.store.next_wake()
        if nxt is not None:
            self._arm(nxt)

    async def _scan_loop(self) -> None:
        while True:
            await self.clock.sleep(self.scan_interval)
            self.scan()

    def scan(self) -> None:
        """Re-check everything against the wall clock; expire finished jobs."""
        self._expire(self.clock.time())
        self._rearm()

    # --- planning due jobs ---------------------------------------------------------------

    def _collect_due(self, now: float) -> None:
        pushed = 0
        for job in self.store.pop_due(now):
            if job.status is JobStatus.PAUSED:
                self.resume_job(job, catch_up=False)
            elif job.fire is not None and job.status is JobStatus.PENDING:
                self.queue.push(job, job.fire, RETRY, sort=job.scheduled)
                pushed += 1
            elif job.type is JobType.RECURRING:
                pushed += self._plan_recurring(job, now)
            elif self.busy(job.id):
                self._held.add(job.id)  # a run-now of it is in flight: its own run comes after
            elif plan_one_off(job.scheduled or now, now, job.policy.misfire):
                self.queue.push(job, job.scheduled or now, DUE)
                pushed += 1
            else:
                self._missed_one_off(job, now)
        if pushed:
            self._wake_workers()

    def _missed_one_off(self, job: Job, now: float) -> None:
        fire = job.scheduled or now
        self._record_missed(job, fire, fire, 1, now)
        error = "missed: later than its misfire grace"
        failed = replace(job, status=JobStatus.FAILED, scheduled=None, completed=now, error=error)
        self._note_finished(self._put(failed))
        if self.hub.wants("job-failed"):
            self.hub.publish(
                "job-failed",
                encode(job.id),
                {"outcome": "missed", "error": error, "attempt": 0, "final": True},
            )

    def _plan_recurring(self, job: Job, now: float) -> int:
        assert job.scheduled is not None
        plan = plan_fire(job.scheduled, now, self._next_fn(job), job.policy.misfire)
        if plan.missed_count and plan.missed_first is not None and plan.missed_last is not None:
            self._record_missed(
                job, plan.missed_first, plan.missed_last, plan.missed_count, now, exact=plan.exact
            )
        if plan.run is None:
            self._reschedule(job, plan.next)
            return 0
        if self.busy(job.id) and job.policy.overlap is not Overlap.ALLOW:
            return self._overlap(job, plan.run, plan.next)
        self.queue.push(job, plan.run, DUE, nxt=plan.next)
        return 1

    def _overlap(self, job: Job, fire: float, nxt: float | None) -> int:
        policy = job.policy.overlap
        if job.policy.misfire.coalesce is Coalesce.ALL:
            self._held.add(job.id)  # due again as soon as the run in flight ends
            return 0
        if policy is Overlap.CANCEL_OTHER or (
            policy is Overlap.BUFFER_ONE and job.id not in self._buffered
        ):
            # The new run starts when the one in flight has ended (at once, if cancelled).
            self._buffered[job.id] = fire
            job = self._reschedule(job, nxt)
            if policy is Overlap.CANCEL_OTHER:
                for run in self.running.get(job.id, ()):
                    self._cancel_run(run, SUPERSEDED)
                self.queue.drop_job(job.id, job)
                self._after_runs(job.id)
            return 0
        now = self.clock.time()
        self._record(
            job,
            Run(
                job_id=job.id,
                fire=fire,
                attempt=0,
                outcome=Outcome.SKIPPED_OVERLAP,
                reason="the previous run was still running (overlap=skip)",
                started=now,
                ended=now,
            ),
        )
        self._reschedule(job, nxt)
        return 0

    def _reschedule(self, job: Job, nxt: float | None) -> Job:
        """Set a recurring job's next instant. A rule that has ended (``nxt`` None) finishes
        the job once no run of it is in flight: ``completed``, or ``failed`` when its last run
        failed (a run in flight settles it when it ends)."""
        if nxt is None and job.id not in self.running and job.status is JobStatus.PENDING:
            return self._finish_ended(job, self.clock.time())
        return self._put(replace(job, scheduled=nxt))

    def _finish_ended(self, job: Job, now: float) -> Job:
        status = JobStatus.FAILED if job.error is not None else JobStatus.COMPLETED
        done = self._put(replace(job, status=status, scheduled=None, fire=None, completed=now))
        self._note_finished(done)
        event = "job-failed" if status is JobStatus.FAILED else "job-completed"
        if self.hub.wants(event):
            self.hub.publish(
                event,
                encode(job.id),
                {"outcome": "ended", "attempt": job.attempt, "error": job.error, "final": True},
            )
        return done

    def _record_missed(
        self, job: Job, first: float, last: float, count: int, now: float, *, exact: bool = True
    ) -> None:
        """One record for a group of missed occurrences; an inexact count (too many to count
        within the budget, see :mod:`scheduler.engine.misfire`) is stated as "at least"."""
        what = f"{'' if exact else 'at least '}{count} run{'s' if count > 1 else ''} missed"
        span = "" if first == last else f" from {self._iso(job, first)} to {self._iso(job, last)}"
        self._record(
            job,
            Run(
                job_id=job.id,
                fire=first,
                attempt=0,
                outcome=Outcome.MISSED,
                reason=f"{what}{span} (coalesce={job.policy.misfire.coalesce})",
                started=now,
                ended=now,
                lateness=now - first,
                count=count,
            ),
        )

    # --- the ready queue and workers -----------------------------------------------------

    def _wake_workers(self) -> None:
        idle = self._idle
        for _ in range(min(len(idle), len(self.queue.heap) or 1)):
            fut = idle.popleft()
            if not fut.done():
                fut.set_result(None)

    def _take(self) -> tuple[QueuedRun, Job, Place] | None:
        if self.stopping or self.store.paused:
            return None
        return self.queue.take(self.store.jobs)

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        done = 0
        while True:
            if len(self._workers) > self.max_concurrency:
                me = asyncio.current_task()
                if me in self._workers:
                    self._workers.remove(me)
                    return
            taken = self._take()
            if taken is None:
                fut: asyncio.Future[None] = loop.create_future()
                self._idle.append(fut)
                await fut
                continue
            await self._start(*taken)
            done += 1
            if done % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let timers and HTTP in between long bursts

    # --- running -------------------------------------------------------------------------

    def busy(self, job_id: int) -> bool:
        """Whether a run of the job is in flight, starting, or waiting in the queue: what the
        overlap policy and run-now count as "still running"."""
        return job_id in self.running or self.queue.queued(job_id) > 0

    def _plan_start(
        self, queued: QueuedRun, job: Job, now: float
    ) -> tuple[float, int, float | None] | None:
        """``(fire, attempt, next scheduled instant)`` for a run about to start, or None when
        the job changed while it waited for a slot (modified, cancelled, paused)."""
        kind = queued.kind
        live = job.status is JobStatus.PENDING or job.status is JobStatus.RUNNING
        recurring = job.schedule.type is JobType.RECURRING
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
        if not recurring:
            nxt = None
        elif queued.nxt == FROM_FIRE:
            nxt = self._next_after(job, queued.fire)
        else:
            nxt = queued.nxt
        return queued.fire, job.attempt + 1 if kind == RETRY else 1, nxt

    async def _start(self, queued: QueuedRun, job: Job, place: Place) -> None:
        now = self.clock.time()
        plan = self._plan_start(queued, job, now)
        if plan is None:
            self.queue.release(place, started=False)
            self._dropped(queued, self.store.jobs.get(job.id))
            self._after_runs(job.id)
            return
        fire, attempt, nxt = plan
        # Registered before the first await: from here on a cancel, a delete or the overlap
        # policy sees this run, even while its start is being made durable.
        run = ActiveRun(job.id, fire, attempt, now, queued.kind == MANUAL, waiter=queued.waiter)
        self.running.setdefault(job.id, []).append(run)
        started = replace(
            job,
            status=JobStatus.RUNNING,
            fire=fire,
            attempt=attempt,
            executed=now,
            scheduled=nxt,
            progress=None,
            pid=None,
        )
        try:
            job = self._put(started)
            await self.store.commit()  # the start is durable before the side effect
        except StorageFull:
            self._unregister(run)
            self.queue.release(place, started=False)
            self._start_refused(queued, job, run, now)
            return
        if self.hub.wants("job-started"):
            self.hub.publish("job-started", encode(job.id), {"attempt": attempt, "fire": fire})
        try:
            if run.cancel_reason is not None:  # cancelled while its start was journalled
                result = _cancelled(run.cancel_reason)
            else:
                result = await self._execute(job, run)
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
            self._tell_not_started(queued.waiter, queued.job_id, job)

    @staticmethod
    def _tell_not_started(waiter: asyncio.Future[Run], job_id: int, job: Job | None) -> None:
        if waiter.done():
            return
        sid = encode(job_id)
        if job is None:
            waiter.set_exception(JobNotFound(sid))
        else:
            waiter.set_exception(
                InvalidState(f"job {sid} is {job.status}: its run did not start", field="status")
            )

    def _after_runs(self, job_id: int) -> None:
        """Once a job has no run in flight or queued: start the occurrence its overlap policy
        held back (buffer_one, cancel_other), or look at it again (coalesce=all, a one-off
        whose time came while a run-now of it ran)."""
        if self.stopping or self.busy(job_id):
            return
        buffered = self._buffered.pop(job_id, None)
        job = self.store.jobs.get(job_id)
        if job is None:
            self._held.discard(job_id)
            return
        after = self._after.pop(job_id, None)
        if after is not None and not after.done():
            if job.status is JobStatus.PENDING or job.status is JobStatus.RUNNING:
                self.queue.push(job, self.clock.time(), MANUAL, waiter=after)
                self._wake_workers()
            else:
                self._tell_not_started(after, job_id, job)
        if buffered is not None:
            self.queue.push(job, buffered, BUFFERED)
            self._wake_workers()
        elif job_id in self._held:
            self._held.discard(job_id)
            self.store.requeue(job)

    async def _execute(self, job: Job, run: ActiveRun) -> RunResult:
        runtime = self.tasks.get(job.task)
        if runtime is None:
            return RunResult(
                outcome=Outcome.ERROR,
                retryable=False,
                error=f"unknown task {job.task!r}: not in config or registered",
            )
        timeout = job.policy.timeout or runtime.timeout or self.default_timeout
        ctx = self._context(job, run)
        # The deadline is armed on the injected clock (tests control it); expiry moves the
        # scope's deadline to now, which cancels the executor the same way a cancel does.
        timer = None
        if timeout is not None:
            timer = self.clock.call_at(run.started + timeout, lambda: self._cancel_run(run, None))
        try:
            async with asyncio.timeout(None) as scope:
                run.scope = scope
                if run.cancel_reason is not None:
                    scope.reschedule(-1)
                return await runtime.executor.run(ctx)
        except TimeoutError:
            if run.cancel_reason is not None:
                return _cancelled(run.cancel_reason)
            return RunResult(outcome=Outcome.TIMEOUT, error=f"timed out after {timeout:g} s")
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.exception("job %s: executor %s failed", encode(job.id), job.task)
            return RunResult(outcome=Outcome.ERROR, error=f"{type(exc).__name__}: {exc}")
        finally:
            if timer is not None:
                timer.cancel()

    def _context(self, job: Job, run: ActiveRun) -> RunContext:
        sid = encode(job.id)
        return RunContext(
            job_id=sid,
            fire_id=fire_id(sid, run.fire),
            workflow_id=job.workflow_id,
            workflow_name=job.display_name,
            task=job.task,
            payload=job.payload,
            attempt=run.attempt,
            fire=run.fire,
            timezone=job.timezone,
            report_progress=lambda pct, msg: self._progress(job.id, pct, msg),
            report_pid=lambda pid: self._pid(job.id, pid),
        )

    def _progress(self, job_id: int, percent: float, message: str | None) -> None:
        job = self.store.jobs.get(job_id)
        if job is None or job.status is not JobStatus.RUNNING:
            return
        progress = Progress(max(0.0, min(100.0, float(percent))), message)
        self.store.jobs[job_id] = replace(job, progress=progress)  # not journalled: transient
        if self.hub.wants("job-progress"):
            self.hub.publish(
                "job-progress", encode(job_id), {"percent": progress.percent, "message": message}
            )

    def _pid(self, job_id: int, pid: int | None) -> None:
        job = self.store.jobs.get(job_id)
        if job is None:
            return
        from scheduler.executors.command import process_start_ticks

        ticks = process_start_ticks(pid) if pid is not None else None
        try:
            self._put(replace(job, pid=pid, pid_started=ticks))
        except StorageFull:
            log.warning("job %s: could not journal its process id (disk full)", encode(job_id))

    async def _finish(self, job_id: int, run: ActiveRun, result: RunResult) -> None:
        """Record a run's end and the job's new state; once that is durable (the same group
        commit as everything else), tell whoever waits or listens."""
        now = self.clock.time()
        self._unregister(run)
        outcome = result.outcome
        if run.cancel_reason == SHUTDOWN:
            outcome = Outcome.INTERRUPTED
        record = Run(
            job_id=job_id,
            fire=run.fire,
            attempt=run.attempt,
            outcome=outcome,
            started=run.started,
            ended=now,
            lateness=None if run.manual else run.started - run.fire,
            error=result.error if outcome is not Outcome.SUCCESS else None,
            result=storable_result(result.result),
        )
        job = self.store.jobs.get(job_id)
        event = None
        if job is not None:
            self._record(job, record, notify=False)
            job, event = self._settle(job, run, result, record, now)
        await self.store.commit()
        if job is not None:
            self._notify(job, record)
            if event is not None and self.hub.wants(event):
                self.hub.publish(
                    event,
                    encode(job_id),
                    {
                        "outcome": record.outcome,
                        "attempt": record.attempt,
                        "error": record.error,
                        "final": event != "job-retry",
                    },
                )
        for fut in (run.done, run.waiter, *self._watchers.pop(job_id, ())):
            if fut is not None and not fut.done():
                fut.set_result(record)
        self._after_runs(job_id)

    def _settle(
        self, job: Job, run: ActiveRun, result: RunResult, record: Run, now: float
    ) -> tuple[Job, str]:
        """Store the job's state after a run (see :mod:`scheduler.engine.outcomes`); returns it and
        the event to publish once it is durable."""
        new, event = settle(
            job,
            record,
            result=result,
            cancel_reason=run.cancel_reason,
            busy=job.id in self.running,  # in flight (overlap=allow); queued runs start anew
            now=now,
            rng=self.rng,
        )
        if job.status is JobStatus.PAUSED and new.status is not JobStatus.CANCELLED:
            # Paused during the run: it stays paused. What the run left to do (a retry, the
            # next occurrence) waits for the resume; a job the run finished finishes then.
            new = replace(new, status=JobStatus.PAUSED)
        try:
            self._put(new)
        except StorageFull:
            log.error(  # noqa: TRY400 - a full disk needs no traceback
                "job %s: could not journal the end of its run (disk full); after a restart "
                "the run counts as interrupted and follows onCrash",
                encode(job.id),
            )
            self.store.apply(PutJob(new))  # memory stays truthful; only durability lags
        if new.status in FINISHED:
            self._note_finished(new)
        return new, event

    async def recover_interrupted(self) -> int:
        """After a crash: every job still marked running had a run in flight. Stop a command
        it left behind, record the run as ``interrupted`` and follow ``onCrash``."""
        from scheduler.executors.command import stop_stale_process

        now = self.clock.time()
        count = 0
        if not self.store.counts[JobStatus.RUNNING]:
            return 0  # the usual restart: nothing was in flight, no need to look at every job
        for job in [j for j in self.store if j.status is JobStatus.RUNNING]:
            if job.pid is not None:
                stopped = await stop_stale_process(job.pid, job.pid_started, 5.0)
                if stopped:
                    log.warning(
                        "job %s: stopped process %d left from before the restart",
                        encode(job.id),
                        job.pid,
                    )
            fire = job.fire if job.fire is not None else (job.executed or now)
            run = ActiveRun(job.id, fire, max(job.attempt, 1), job.executed or now, False)
            self._record(
                job,
                Run(
                    job_id=job.id,
                    fire=fire,
                    attempt=run.attempt,
                    outcome=Outcome.INTERRUPTED,
                    started=job.executed,
                    reason="the process stopped while this run was in flight",
                ),
            )
            self._put(
                interrupted(
                    replace(job, pid=None),
                    fire=fire,
                    attempt=run.attempt,
                    now=now,
                    cause="a crash or restart",
                )
            )
            count += 1
        await self.store.commit()
        return count

    # --- operations used by the service layer --------------------------------------------

    def run_now(self, job: Job) -> asyncio.Future[Run]:
        """Queue a run outside the schedule; the future resolves with the finished run."""
        fut: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self.queue.push(job, self.clock.time(), MANUAL, waiter=fut)
        self._wake_workers()
        return fut

    def drop_queued(self, job: Job, *, keep_manual: bool) -> None:
        """The job changed (paused, rescheduled): runs it queued before no longer apply."""
        self.queue.drop_job(job.id, job, keep_manual=keep_manual)

    def can_run_after(self, job_id: int) -> bool:
        """Whether :meth:`run_after` takes another run of the job (one waits at a time)."""
        return job_id not in self._after

    def run_after(self, job: Job) -> asyncio.Future[Run]:
        """Queue a run-now for when the job's runs in flight and queued have ended
        (``overlap = buffer_one``); at once if there are none."""
        if not self.busy(job.id):
            return self.run_now(job)
        fut: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self._after[job.id] = fut
        return fut

    def next_record(self, job_id: int) -> asyncio.Future[Run]:
        """A future that resolves with the next run recorded for the job: one that finished,
        or one recorded as not run (missed, skipped). Cancelling it forgets it."""
        fut: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self._record_waiters.setdefault(job_id, []).append(fut)
        fut.add_done_callback(lambda done: self._unwatch(job_id, done))
        return fut

    def _unwatch(self, job_id: int, fut: asyncio.Future[Run]) -> None:
        waiters = self._record_waiters.get(job_id)
        if waiters is not None and fut in waiters:
            waiters.remove(fut)
            if not waiters:
                del self._record_waiters[job_id]

    def release_waiters(self, job_id: int, job: Job | None) -> None:
        """The job will not run again (cancelled, deleted): whoever waits for its next run is
        told so now."""
        waiting = [*self._record_waiters.pop(job_id, ()), *self._watchers.pop(job_id, ())]
        after = self._after.pop(job_id, None)
        for fut in [*waiting, *([after] if after is not None else [])]:
            self._tell_not_started(fut, job_id, job)

    def next_run_end(self, job_id: int) -> asyncio.Future[Run]:
        """A future that resolves with the next run of the job to finish."""
        fut: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self._watchers.setdefault(job_id, []).append(fut)
        return fut

    def cancel_runs(
        self, job_id: int, reason: str, *, deleting: bool = False
    ) -> list[asyncio.Future[Run]]:
        """Stop the job's runs in flight, including one whose start is being journalled, and
        drop its queued runs; returns futures that resolve when the runs in flight have ended
        (a run not yet started then never starts). ``deleting``: the job is about to go, so a
        waiter is told it is not found."""
        out = []
        for run in self.running.get(job_id, ()):
            self._cancel_run(run, reason)
            out.append(run.ended())
        self._buffered.pop(job_id, None)
        job = None if deleting else self.store.jobs.get(job_id)
        self.queue.drop_job(job_id, job)
        after = self._after.pop(job_id, None)
        if after is not None:
            self._tell_not_started(after, job_id, job)
        return out

    def resume_job(self, job: Job, *, catch_up: bool) -> Job:
        """Resume a paused job. Without ``catch_up`` missed occurrences are skipped silently
        (the pause was deliberate); with it, one catch-up run follows the misfire policy.

        A job whose run is still in flight is ``running`` again. A job with nothing left to
        run (a one-off whose run ended while it was paused, a rule that has ended) finishes:
        ``completed``, or ``failed`` when its last run failed."""
        now = self.clock.time()
        scheduled = job.scheduled
        recurring = job.type is JobType.RECURRING
        if recurring and scheduled is not None and scheduled < now and not catch_up:
            scheduled = self._next_after(job, now - 1e-6)
        in_flight = job.id in self.running
        resumed = replace(
            job,
            status=JobStatus.RUNNING if in_flight else JobStatus.PENDING,
            scheduled=scheduled,
            paused_until=None,
            pause_reason=None,
        )
        if scheduled is None and not in_flight and job.fire is None:
            return self._finish_ended(resumed, now)
        return self._put(resumed)

    def forget(self, job_id: int) -> None:
        """The job was deleted: drop what the engine kept for it."""
        self._triggers.pop(job_id, None)
        self._buffered.pop(job_id, None)
        self._held.discard(job_id)
        self.release_waiters(job_id, None)

    def next_times(self, job: Job, n: int) -> list[float]:
        out: list[float] = []
        t = job.scheduled
        while t is not None and len(out) < n:
            out.append(t)
            t = self._next_after(job, t) if job.type is JobType.RECURRING else None
        return out

    def waiting(self) -> int:
        """Due jobs waiting for a slot (for alerts and metrics)."""
        return len(self.queue)

    def in_flight(self) -> int:
        return sum(len(r) for r in self.running.values())

    # --- helpers -------------------------------------------------------------------------

    def _cancel_run(self, run: ActiveRun, reason: str | None) -> None:
        """Stop a run in flight: ``reason`` None means its timeout expired."""
        if run.cancel_reason is None:
            run.cancel_reason = reason
        if run.scope is not None and not run.scope.expired():
            run.scope.reschedule(-1)

    def _put(self, job: Job) -> Job:
        return self.store.put(job)

    def _record(self, job: Job, run: Run, *, notify: bool = True) -> None:
        try:
            self.store.add_run(run)
        except StorageFull:
            log.error("job %s: run not recorded, the disk is full", encode(job.id))  # noqa: TRY400
        if notify:
            self._notify(job, run)

    def _notify(self, job: Job, run: Run) -> None:
        for listener in self.listeners:
            listener(job, run)
        for fut in self._record_waiters.pop(job.id, ()):
            if not fut.done():
                fut.set_result(run)

    def _note_finished(self, job: Job) -> None:
        if _expires(job):
            heapq.heappush(self._expiry, ((job.completed or job.created) + self.retention, job.id))

    def _expire(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, job_id = heapq.heappop(expiry)
            job = self.store.jobs.get(job_id)
            if job is None or job.status not in (
                JobStatus.COMPLETED,
                JobStatus.FAILED,
                JobStatus.CANCELLED,
            ):
                continue
            if (job.completed or job.created) + self.retention > now:
                heapq.heappush(expiry, ((job.completed or job.created) + self.retention, job_id))
                continue
            try:
                self.store.delete(job_id)
            except StorageFull:
                heapq.heappush(expiry, (now + self.scan_interval, job_id))
                return
            self.forget(job_id)

    def trigger(self, job: Job) -> Trigger:
        cached = self._triggers.get(job.id)
        if (
            cached is not None
            and cached[0].schedule is job.schedule
            and (cached[0].timezone == job.timezone)
        ):
            return cached[1]
        tz = load_zone(job.timezone)
        created = datetime.fromtimestamp(job.created, tz)
        trig, refused = compile_stored(job.schedule, tz, created=created)
        if refused is not None:  # stored by an older version; it is not run again
            log.error(
                "job %s: schedule no longer valid, no further runs: %s", encode(job.id), refused
            )
        self._triggers[job.id] = (job, trig)
        return trig

    def _next_after(self, job: Job, instant: float) -> float | None:
        return Timeline(self.trigger(job)).next_after(instant)

    def _next_fn(self, job: Job) -> Timeline:
        """The job's occurrences in epoch seconds, for misfire planning (catch-up asks for
        the last due occurrence and their count, never walks them one by one)."""
        return Timeline(self.trigger(job))

    def _iso(self, job: Job, instant: float) -> str:
        return datetime.fromtimestamp(instant, load_zone(job.timezone)).isoformat()


def storable_result(result: Any) -> Any:
    """A run's result as it can be journalled: long text is cut, and a value the journal
    cannot hold (nested too deep, too large, not encodable) becomes a short note. Executors
    bound what remote systems send; this is the last guard, so a reply can never crash the
    daemon when the run's end is recorded."""
    if result is None or isinstance(result, bool | int | float):
        return result
    if isinstance(result, str):
        return result if len(result) <= _RESULT_CAP else result[:_RESULT_CAP] + "…[truncated]"
    if _too_deep(result, _RESULT_DEPTH):
        return f"[result not stored: nested deeper than {_RESULT_DEPTH} levels]"
    try:
        size = len(_ENCODER.encode(result))
    except (RecursionError, TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        return f"[result not stored: {type(exc).__name__}]"
    if size > _RESULT_CAP:
        return f"[result not stored: {size} bytes encoded, over the {_RESULT_CAP} byte limit]"
    return result


def _too_deep(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        seen += 1
        if seen > _RESULT_CAP:
            return True  # a huge structure: the size check would refuse it anyway
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)
    return False


def _cancelled(reason: str) -> RunResult:
    return RunResult(outcome=Outcome.CANCELLED, error=reason, retryable=False)


def _expires(job: Job) -> bool:
    """Retention removes finished jobs, except static ones (``[[jobs]]`` and scheduled library
    tasks), which the config defines: removing one would bring it back at the next start."""
    if job.status not in FINISHED:
        return False
    return job.name is None or job.source is Source.API
