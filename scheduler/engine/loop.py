"""The engine: sleeps until the earliest due time or until woken, and plans what is due.

How a job gets run:

1. The store's due heap holds every pending job's next instant. One timer is armed (through the
   injected clock) for the earliest; adding an earlier job re-arms it. A periodic scan
   (``scan_interval``) re-arms from the wall clock, so a clock step or a suspend is caught within
   one interval; it is never the only trigger.
2. When the timer fires, due jobs are popped (never before their instant: the clock is re-read)
   and planned: the misfire policy (:mod:`.misfire`) and, for a job whose run is still in flight
   or queued, the overlap policy decide what runs; what does not run is recorded as a run with
   an outcome.
3. What runs goes to the ready queue (:mod:`.queue`), and the workers (:mod:`.runner`) take it
   from there. Retention (:mod:`.retention`), compiled triggers (:mod:`.cache`), waiters
   (:mod:`.waiters`) and crash recovery (:mod:`.recovery`) each live in their own module.
4. Maintenance windows hold back the runs of their tasks (:mod:`.holds`); a run-now inside
   one is refused; runs in flight are never stopped.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from msgspec.structs import replace

from scheduler.clock import Clock, Timer
from scheduler.engine.cache import TriggerCache
from scheduler.engine.execution import ActiveRun, cancel_run
from scheduler.engine.holds import WindowHolds
from scheduler.engine.outcomes import SUPERSEDED
from scheduler.engine.planning import (
    Action,
    Decision,
    Missed,
    decide,
    ended,
    missed_record,
    resumed,
    skipped_record,
)
from scheduler.engine.queue import (
    BUFFERED,
    DUE,
    MANUAL,
    RETRY,
    ReadyQueue,
    TaskRuntime,
)
from scheduler.engine.recovery import recover_interrupted
from scheduler.engine.retention import Retention
from scheduler.engine.runner import Runner
from scheduler.engine.slices import plan_in_slices
from scheduler.engine.waiters import Waiters, not_started
from scheduler.events import Hub, JobCompleted, JobFailed
from scheduler.maintenance import Maintenance, refuse_run_now
from scheduler.model import FINISHED, Job, JobStatus, Run
from scheduler.store import Store
from scheduler.triggers import Trigger


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
        self.scan_interval = scan_interval
        self.triggers = TriggerCache()
        self.expiry = Retention(store, retention)
        self.waiters = Waiters()
        self.runs = Runner(
            store,
            clock,
            tasks=tasks,
            hub=self.hub,
            triggers=self.triggers,
            retention=self.expiry,
            waiters=self.waiters,
            max_concurrency=max_concurrency,
            default_timeout=default_timeout,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not cryptography
            on_idle=self._after_runs,
        )
        self._buffered: dict[int, float] = {}  # an occurrence held back by overlap
        self._held: set[int] = set()  # due again once their runs have ended
        #: The maintenance windows and the jobs they hold back (:mod:`.holds`).
        self.holds = WindowHolds(
            store, clock, self._buffered, arm=self._arm, after_runs=self._after_runs
        )
        self._timer: Timer | None = None
        self._timer_at: float | None = None
        self._stopped: asyncio.Event | None = None
        store.on_wake = self._arm

    # --- what the parts hold, by name ----------------------------------------------------

    @property
    def running(self) -> dict[int, list[ActiveRun]]:
        return self.runs.running

    @property
    def queue(self) -> ReadyQueue:
        return self.runs.queue

    @property
    def stopping(self) -> bool:
        return self.runs.stopping

    @property
    def max_concurrency(self) -> int:
        return self.runs.max_concurrency

    @property
    def retention(self) -> float:
        return self.expiry.seconds

    @retention.setter
    def retention(self, seconds: float) -> None:
        self.expiry.seconds = seconds

    @property
    def default_timeout(self) -> float | None:
        return self.runs.default_timeout

    @default_timeout.setter
    def default_timeout(self, seconds: float | None) -> None:
        self.runs.default_timeout = seconds

    # --- lifecycle -----------------------------------------------------------------------

    async def serve(self, started: asyncio.Event | None = None) -> None:
        """Run until :meth:`stop` finishes; every task lives in this TaskGroup."""
        self._stopped = asyncio.Event()
        self.expiry.load(self.store.jobs.values())
        ended = [
            job
            for job in self.store.jobs.values()
            if job.scheduled is None and job.status is JobStatus.PENDING and job.fire is None
        ]  # rules that ended before this version finished such jobs
        for job in ended:
            self._finish_ended(job, self.clock.time())
        async with asyncio.TaskGroup() as group:
            self.runs.start_workers(group)
            scan = group.create_task(self._scan_loop())
            self._rearm()
            if started is not None:
                started.set()
            await self._stopped.wait()
            scan.cancel()
            self.runs.stop_workers()

    async def stop(self, grace: float) -> None:
        """Stop admitting, let running runs finish for ``grace`` seconds, then cancel them."""
        self.runs.stopping = True
        self._disarm()
        await self.runs.stop_runs(grace)
        if self._stopped is not None:
            self._stopped.set()

    def set_paused(self, paused: bool) -> None:
        """Pause or resume dispatching for the whole daemon (jobs are still accepted)."""
        self.store.set_paused(paused)
        if paused:
            self._disarm()
        else:
            self._rearm()
            self.runs.wake()

    def set_concurrency(self, limit: int) -> None:
        """Change ``max_concurrency`` at run time (reload): add or retire workers."""
        self.runs.set_concurrency(limit)

    def set_maintenance(self, maintenance: Maintenance) -> None:
        """Use these windows from now on (start, reload). The jobs the old ones held are
        decided again at once: a window removed or shortened lets them run now, one still open
        defers them again, to its end."""
        self.holds.maintenance = maintenance or None
        self.queue.gate = self.holds.gate if maintenance else None
        self.holds.release(float("inf"))

    @property
    def maintenance(self) -> Maintenance | None:
        return self.holds.maintenance

    async def recover_interrupted(self) -> int:
        """After a crash: see :mod:`.recovery`."""
        return await recover_interrupted(self.store, self.clock, self.runs)

    # --- the timer -----------------------------------------------------------------------

    def _arm(self, when: float) -> None:
        if self.runs.stopping or self.store.paused or self._stopped is None:
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
        now = self.clock.time()
        self.holds.release(now)
        self._collect_due(now)
        nxt = self.store.next_wake()
        end = self.holds.next_end()
        if end is not None:
            nxt = end if nxt is None else min(nxt, end)
        if nxt is not None:
            self._arm(nxt)

    async def _scan_loop(self) -> None:
        while True:
            await self.clock.sleep(self.scan_interval)
            self.scan()

    def scan(self) -> None:
        """Re-check everything against the wall clock; expire finished jobs."""
        for job_id in self.expiry.expire(self.clock.time(), retry_in=self.scan_interval):
            self.forget(job_id)
        self._rearm()

    # --- planning due jobs ---------------------------------------------------------------

    def _collect_due(self, now: float) -> None:
        """Plan the jobs due at ``now`` within one turn's budget (:mod:`.slices`); the rest
        stay due in the store's heap and the re-armed timer continues on the next turn."""
        pushed = plan_in_slices(
            lambda size: self.store.pop_due(now, size), lambda job: self._apply(job, now)
        )
        if pushed:
            self.runs.wake()

    def _apply(self, job: Job, now: float) -> int:
        """Carry out the decision for a due job (see :mod:`.planning`); how many runs it
        queued."""
        decision = decide(
            job,
            now,
            lambda: self.triggers.timeline(job),
            busy=self.runs.busy(job.id),
            buffered=job.id in self._buffered,
            maintenance=self.maintenance,
        )
        action, fire, nxt = decision.action, decision.fire, decision.nxt
        if decision.missed is not None and action is not Action.MISSED:
            self._record_missed(job, decision.missed, now)
        if action is Action.RESUME:
            self.resume_job(job, catch_up=False)
        elif action is Action.RETRY:
            assert fire is not None
            self.queue.push(job, fire, RETRY, sort=job.scheduled)
            return 1
        elif action is Action.RUN:
            assert fire is not None
            self.queue.push(job, fire, DUE, nxt=nxt)
            return 1
        elif action is Action.RESCHEDULE:
            self._reschedule(job, nxt)
        elif action is Action.HOLD:
            self._held.add(job.id)
        elif action is Action.BUFFER or action is Action.CANCEL_OTHER:
            assert fire is not None
            self._buffer(job, fire, nxt, cancel=action is Action.CANCEL_OTHER)
        elif action is Action.SKIP:
            assert fire is not None
            self._skip(job, fire, nxt, now)
        elif action is Action.DEFER:
            assert nxt is not None
            self.holds.defer(job.id, nxt)
        else:
            self._missed_one_off(job, decision, now)
        return 0

    def refuse_in_maintenance(self, job: Job) -> None:
        """Raise :class:`~scheduler.maintenance.InMaintenance` (409) when the job's task is
        inside an open window: a run-now would start what the window is there to prevent."""
        refuse_run_now(self.holds.maintenance, job.task, self.clock.time())

    def _buffer(self, job: Job, fire: float, nxt: float | None, *, cancel: bool) -> None:
        # The new run starts when the one in flight has ended (at once, if cancelled).
        self._buffered[job.id] = fire
        job = self._reschedule(job, nxt)
        if cancel:
            for run in self.running.get(job.id, ()):
                cancel_run(run, SUPERSEDED)
            self.queue.drop_job(job.id, job)
            self._after_runs(job.id)

    def _skip(self, job: Job, fire: float, nxt: float | None, now: float) -> None:
        self.runs.record(job, skipped_record(job.id, fire, now))
        self._reschedule(job, nxt)

    def _missed_one_off(self, job: Job, decision: Decision, now: float) -> None:
        assert decision.missed is not None
        self._record_missed(job, decision.missed, now)
        error = "missed: later than its misfire grace"
        failed = replace(job, status=JobStatus.FAILED, scheduled=None, completed=now, error=error)
        self.expiry.note(self.store.put(failed))
        if self.hub.wants(JobFailed):
            self.hub.publish(JobFailed(job_id=job.id, outcome="missed", attempt=0, error=error))

    def _reschedule(self, job: Job, nxt: float | None) -> Job:
        """Set a recurring job's next instant. A rule that has ended (``nxt`` None) finishes
        the job once no run of it is in flight: ``completed``, or ``failed`` when its last run
        failed (a run in flight settles it when it ends)."""
        if nxt is None and job.id not in self.running and job.status is JobStatus.PENDING:
            return self._finish_ended(job, self.clock.time())
        return self.store.put(replace(job, scheduled=nxt))

    def _finish_ended(self, job: Job, now: float) -> Job:
        return self._finished(ended(job, now))

    def _finished(self, done: Job) -> Job:
        """Store a job that has nothing left to run, and say so."""
        self.store.put(done)
        self.expiry.note(done)
        kind = JobFailed if done.status is JobStatus.FAILED else JobCompleted
        if self.hub.wants(kind):
            self.hub.publish(
                kind(job_id=done.id, outcome="ended", attempt=done.attempt, error=done.error)
            )
        return done

    def _record_missed(self, job: Job, missed: Missed, now: float) -> None:
        """One record for a group of missed occurrences."""
        self.runs.record(job, missed_record(job, missed, now))

    def _after_runs(self, job_id: int) -> None:
        """Once a job has no run in flight or queued: start the occurrence its overlap policy
        held back (buffer_one, cancel_other), a run-now waiting for it (buffer_one), or look
        at it again (coalesce=all, a one-off whose time came while a run-now of it ran)."""
        if self.stopping or self.runs.busy(job_id):
            return
        buffered = self._buffered.pop(job_id, None)
        job = self.store.jobs.get(job_id)
        if job is None:
            self._held.discard(job_id)
            return
        after = self.waiters.after.pop(job_id, None)
        if after is not None and not after.done():
            if job.status is JobStatus.PENDING or job.status is JobStatus.RUNNING:
                self.queue.push(job, self.clock.time(), MANUAL, waiter=after)
                self.runs.wake()
            else:
                not_started(after, job_id, job)
        if buffered is not None and self.holds.maintenance is not None:
            window = self.holds.open_for(job.task, self.clock.time())
            if window is not None:  # the kept occurrence waits for the window's end
                self._buffered[job_id] = buffered
                self.holds.defer(job_id, window.end)
                return
        if buffered is not None:
            self.queue.push(job, buffered, BUFFERED)
            self.runs.wake()
        elif job_id in self._held:
            self._held.discard(job_id)
            self.store.requeue(job)

    # --- operations used by the service layer --------------------------------------------

    def busy(self, job_id: int) -> bool:
        """Whether a run of the job is in flight, starting, or waiting in the queue: what the
        overlap policy and run-now count as "still running"."""
        return self.runs.busy(job_id)

    def run_now(self, job: Job) -> asyncio.Future[Run]:
        """Queue a run outside the schedule; the future resolves with the finished run.
        Refused (:class:`~scheduler.maintenance.InMaintenance`) inside the task's window."""
        self.refuse_in_maintenance(job)
        fut: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self.queue.push(job, self.clock.time(), MANUAL, waiter=fut)
        self.runs.wake()
        return fut

    def can_run_after(self, job_id: int) -> bool:
        """Whether :meth:`run_after` takes another run of the job (one waits at a time)."""
        return job_id not in self.waiters.after

    def run_after(self, job: Job) -> asyncio.Future[Run]:
        """Queue a run-now for when the job's runs in flight and queued have ended
        (``overlap = buffer_one``); at once if there are none. Refused inside the task's
        maintenance window, like :meth:`run_now`."""
        self.refuse_in_maintenance(job)
        if not self.busy(job.id):
            return self.run_now(job)
        fut: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self.waiters.after[job.id] = fut
        return fut

    def drop_queued(self, job: Job, *, keep_manual: bool) -> None:
        """The job changed (paused, rescheduled): runs it queued before no longer apply."""
        self.queue.drop_job(job.id, job, keep_manual=keep_manual)

    def next_record(self, job_id: int) -> asyncio.Future[Run]:
        return self.waiters.next_record(job_id)

    def next_run_end(self, job_id: int) -> asyncio.Future[Run]:
        return self.waiters.next_end(job_id)

    def release_waiters(self, job_id: int, job: Job | None) -> None:
        self.waiters.release(job_id, job)

    def cancel_runs(
        self, job_id: int, reason: str, *, deleting: bool = False
    ) -> list[asyncio.Future[Run]]:
        """Stop the job's runs in flight, including one whose start is being journalled, and
        drop its queued runs; returns futures that resolve when the runs in flight have ended
        (a run not yet started then never starts). ``deleting``: the job is about to go, so a
        waiter is told it is not found."""
        ended = self.runs.cancel(job_id, reason)
        self._buffered.pop(job_id, None)
        job = None if deleting else self.store.jobs.get(job_id)
        self.queue.drop_job(job_id, job)
        after = self.waiters.after.pop(job_id, None)
        if after is not None:
            not_started(after, job_id, job)
        return ended

    def resume_job(self, job: Job, *, catch_up: bool) -> Job:
        """Resume a paused job (see :func:`.planning.resumed`)."""
        now = self.clock.time()
        back = resumed(
            job,
            now,
            lambda t: self.triggers.next_after(job, t),
            catch_up=catch_up,
            in_flight=job.id in self.running,
        )
        if back.status in FINISHED:
            return self._finished(back)
        return self.store.put(back)

    def forget(self, job_id: int) -> None:
        """The job was deleted: drop what the engine kept for it."""
        self.triggers.forget(job_id)
        self._buffered.pop(job_id, None)
        self._held.discard(job_id)
        self.holds.forget(job_id)
        self.waiters.release(job_id, None)

    def trigger(self, job: Job) -> Trigger:
        return self.triggers.trigger(job)

    def next_times(self, job: Job, n: int) -> list[float]:
        return self.triggers.next_times(job, n)

    def waiting(self) -> int:
        """Due jobs waiting for a slot (for alerts and metrics)."""
        return len(self.queue)

    def in_flight(self) -> int:
        return self.runs.in_flight()


def _iso(zone: ZoneInfo, instant: float) -> str:
    return datetime.fromtimestamp(instant, zone).isoformat()
