"""Job operations shared by the HTTP API and the library API.

Each operation validates first (a bad request changes nothing), then changes the store (which
journals first), waits until the change is durable, and only then returns: a caller that gets
an answer can rely on the change surviving a crash.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from msgspec.structs import replace

from scheduler import ids
from scheduler.clock import Clock
from scheduler.engine.loop import Engine
from scheduler.engine.outcomes import SUPERSEDED
from scheduler.errors import (
    InvalidInput,
    InvalidSchedule,
    InvalidState,
    JobNotFound,
    SchedulerError,
    UnknownTask,
)
from scheduler.events import Hub, JobCancelled, JobCreated, SchedulerStatus
from scheduler.jobspec import JobSpec
from scheduler.model import FINISHED, Job, JobStatus, JobType, Overlap, Run, Source
from scheduler.schedules import load_zone
from scheduler.store import Store


class WorkflowNotFound(JobNotFound):
    """No job belongs to this workflow."""

    def __init__(self, workflow_id: str) -> None:
        SchedulerError.__init__(self, f"no job for workflow {workflow_id!r}", field="workflowId")
        self.job_id = workflow_id


class JobService:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        clock: Clock,
        *,
        hub: Hub,
        known_task: Callable[[str], bool],
    ) -> None:
        self.store = store
        self.engine = engine
        self.clock = clock
        self.hub = hub
        self.known_task = known_task
        self.ids = ids.IdGenerator()
        for job_id in store.jobs:
            self.ids.observe(job_id)

    # --- reads ---------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        job = self.store.get(ids.decode(job_id))
        if job is None:
            raise JobNotFound(job_id)
        return job

    def find(self, job_id: str) -> Job | None:
        try:
            return self.get(job_id)
        except JobNotFound:
            return None

    def runs(self, job: Job) -> list[Run]:
        return self.store.runs(job.id)

    def list(
        self,
        *,
        status: JobStatus | None = None,
        type_: JobType | None = None,
        workflow_id: str | None = None,
        task: str | None = None,
        page: int = 1,
        limit: int = 20,
    ) -> tuple[list[Job], int]:
        """One page of jobs in creation order, and how many match in all.

        Any combination of filters is answered from the store's indexes without visiting the
        jobs before the page: status, type and task from the ``(status, type, task)`` buckets
        (O(buckets * log n + limit)), a workflow from its own short list of jobs.
        """
        start = (page - 1) * limit
        if workflow_id is not None:
            matches = [
                job
                for job in self.store.workflow_jobs(workflow_id)
                if (status is None or job.status is status)
                and (type_ is None or job.type is type_)
                and (task is None or job.task == task)
            ]
            return matches[start : start + limit], len(matches)
        total = self.store.count(status, type_, task)
        return self.store.page(status, type_, task, start=start, limit=limit), total

    def next_times(self, job: Job, n: int) -> builtins.list[float]:
        """The next ``n`` run instants (fewer when the rule ends; none for a finished job)."""
        if job.status in FINISHED:
            return []
        return self.engine.next_times(job, n)

    def next_record(self, job_id: int) -> asyncio.Future[Run]:
        """The next run recorded for the job: one that finished, or one recorded as not run
        (missed, skipped), so that a waiter never hangs on a run that will not happen."""
        return self.engine.next_record(job_id)

    def find_workflow(self, workflow_id: str) -> Job | None:
        """The job of a workflow: the live one, else the newest finished one (from the store's
        workflow index: a workflow holds one job or a few, so this never scans the store)."""
        holder = self.store.workflow_holder(workflow_id)
        if holder is not None:  # the live job that holds the workflow id as its unique key
            return self.store.jobs[holder]
        jobs = self.store.workflow_jobs(workflow_id)
        live = [job for job in jobs if job.status not in FINISHED]
        if live:
            return live[-1]
        return jobs[-1] if jobs else None

    # --- creating and changing jobs ------------------------------------------------------

    def build(self, spec: JobSpec, *, source: Source, now: float | None = None) -> Job:
        """A new job from a validated spec, with its first run time; nothing is stored yet.

        A spec parsed a moment ago carries the schedule compiled for that moment: the job is
        created at that instant (its id's millisecond), so that compilation is the job's and
        the schedule is compiled once per create."""
        task = self._known(spec.task)
        if now is None:
            now = self.clock.time()
            compiled = spec.compiled_for
            if compiled is not None and 0.0 <= now - compiled < _FRESH:
                now = compiled
        job_id = self.ids.next(now)
        first = self.first_run(spec, created=ids.created_at(job_id), now=now)
        if first is None:
            raise InvalidSchedule("schedule: never fires after now", field="schedule")
        return Job(id=job_id, source=source, scheduled=first, **definition(spec, task))

    def first_run(self, spec: JobSpec, *, created: float, now: float) -> float | None:
        """The first run after ``now``. One-off kinds count from now (a delay starts now);
        recurring kinds are anchored at the job's creation, as the engine does for every later
        occurrence, so a changed schedule does not drift from the engine's grid."""
        if spec.schedule.delay is not None:  # the common case needs no trigger
            return now + spec.schedule.delay
        kind = spec.schedule.type
        if kind is JobType.IMMEDIATE:
            return now
        trigger = spec.trigger(created)  # compiled once for the job's creation, and kept
        moment = datetime.fromtimestamp(now, load_zone(spec.timezone))
        # A new job's own first run: an RRULE without DTSTART starts at the minute of its
        # creation, so its first occurrence may be that minute (up to 59 s ago).
        new = abs(now - created) < _MILLISECOND
        nxt = trigger.first_run(moment) if new else trigger.next_after(moment)
        return None if nxt is None else nxt.timestamp()

    def _seed(self, job: Job, spec: JobSpec) -> None:
        """Hand the engine the schedule the spec compiled for this job (no second compile)."""
        kind = job.schedule.type
        if kind is JobType.RECURRING or kind is JobType.SCHEDULED:
            self.engine.triggers.seed(job, spec.trigger(job.created))

    def rebuilt(self, job: Job, spec: JobSpec, *, revive: bool = False) -> Job:
        """``job`` with the definition in ``spec``; id, creation, source and history are kept.

        Policy: when the schedule or zone changes, the next run is computed from now (see
        :meth:`first_run`) and a pending retry of the old schedule is dropped; otherwise
        ``scheduledTime`` stays. A paused job stays paused, a running recurring job keeps its run
        in flight (which finishes with its old input). A running one-off job cannot be
        rescheduled (its run is the one the schedule was for). A finished job stays finished
        unless ``revive`` (a workflow saved again), which re-arms it with a fresh attempt count.
        """
        task = self._known(spec.task)
        new = replace(job, **definition(spec, task))
        finished = job.status in FINISHED
        if finished and not revive:
            return new
        moved = spec.schedule != job.schedule or spec.timezone != job.timezone
        if not moved and not finished:
            return new
        if job.status is JobStatus.RUNNING and spec.schedule.type is not JobType.RECURRING:
            raise InvalidState(
                f"job {ids.encode(job.id)} is running; change its schedule once the run has ended",
                field="schedule",
            )
        first = self.first_run(spec, created=job.created, now=self.clock.time())
        if first is None:
            raise InvalidSchedule("schedule: never fires after now", field="schedule")
        new = replace(new, scheduled=first)
        if job.status is not JobStatus.RUNNING:
            new = replace(new, fire=None, attempt=0)
        if finished:
            new = replace(new, status=JobStatus.PENDING, error=None, interrupted=0)
        return new

    async def create(self, spec: JobSpec, *, source: Source = Source.API) -> Job:
        job = await self.add(self.build(spec, source=source))
        self._seed(job, spec)
        return job

    async def add(self, job: Job) -> Job:
        """Store a job made by :meth:`build`; returns once it is durable."""
        job = self.store.put(job)
        await self.store.commit()
        if self.hub.wants(JobCreated):
            self.hub.publish(JobCreated(job_id=job.id, job=job))
        return job

    async def modify(self, job_id: str, spec: JobSpec) -> Job:
        """Replace a job's definition (PATCH); validated whole before anything changes."""
        job = self.get(job_id)
        _check_editable(job)
        new = self.rebuilt(job, spec)
        if new != job:
            self._replace(job, new, spec)
            await self.store.commit()
        return new

    async def upsert_workflow(self, workflow_id: str, spec: JobSpec) -> tuple[Job, bool]:
        """Register a workflow's schedule: update its job in place, or create one. Returns the
        job and whether it was created. Never makes a second job for the same workflow."""
        spec = replace(spec, workflow_id=workflow_id)
        old = self.find_workflow(workflow_id)
        if old is None:
            return await self.create(spec), True
        _check_editable(old)
        new = self.rebuilt(old, spec, revive=True)
        if new != old:
            self._replace(old, new, spec)
            await self.store.commit()
        return new, False

    def _replace(self, old: Job, new: Job, spec: JobSpec) -> None:
        self.store.put(new)
        if new.schedule is not old.schedule or new.timezone != old.timezone:
            self._seed(new, spec)
        if new.scheduled != old.scheduled:
            self.engine.drop_queued(new, keep_manual=True)  # queued for the old schedule

    async def delete_workflow(self, workflow_id: str) -> int:
        """Remove every job of a workflow (stopping runs in flight); how many were removed."""
        jobs = self.store.workflow_jobs(workflow_id)
        if not jobs:
            raise WorkflowNotFound(workflow_id)
        for job in jobs:
            _check_editable(job)
        doomed = [ids.encode(job.id) for job in jobs]
        for job_id in doomed:
            if self.find(job_id) is not None:
                await self.delete(job_id)
        return len(doomed)

    # --- actions -------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> Job:
        """Cancel a pending job or stop a running one; answers once the run has ended."""
        job = self.get(job_id)
        if job.status in FINISHED:
            raise InvalidState(f"job {job_id} is already {job.status}", field="status")
        ended = self.engine.cancel_runs(job.id, "cancelled on request")
        if ended:
            await asyncio.wait(ended)
        job = self.get(job_id)
        if job.status is not JobStatus.CANCELLED:
            job = self.store.put(
                replace(
                    job,
                    status=JobStatus.CANCELLED,
                    scheduled=None,
                    fire=None,
                    completed=self.clock.time(),
                )
            )
            if self.hub.wants(JobCancelled):
                self.hub.publish(
                    JobCancelled(job_id=job.id, outcome="cancelled", attempt=job.attempt)
                )
        await self.store.commit()
        self.engine.release_waiters(job.id, job)
        return job

    async def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        _check_editable(job)
        ended = self.engine.cancel_runs(job.id, "deleted", deleting=True)
        if ended:
            await asyncio.wait(ended)
        self.store.delete(job.id)
        self.engine.forget(job.id)
        await self.store.commit()

    async def run_now(self, job_id: str, *, force: bool = False) -> asyncio.Future[Run]:
        """Queue a run now, outside the schedule (which stays as it was); the future resolves
        with the finished run.

        While a run of the job is in flight, starting or queued, its overlap policy decides,
        unless ``force``: ``allow`` runs alongside, ``cancel_other`` stops the other run first,
        ``buffer_one`` runs once it has ended (one such run at a time), ``skip`` refuses (409).
        """
        job = self.get(job_id)
        if job.status in FINISHED or job.status is JobStatus.PAUSED:
            raise InvalidState(f"job {job_id} is {job.status}; it cannot run now", field="status")
        overlap = job.policy.overlap
        if force or not self.engine.busy(job.id) or overlap is Overlap.ALLOW:
            return self.engine.run_now(job)
        if overlap is Overlap.CANCEL_OTHER:
            ended = self.engine.cancel_runs(job.id, SUPERSEDED)
            if ended:
                await asyncio.wait(ended)
            return self.engine.run_now(self.get(job_id))
        if overlap is Overlap.BUFFER_ONE and self.engine.can_run_after(job.id):
            return self.engine.run_after(job)
        raise InvalidState(
            f"job {job_id} is running and its overlap policy is {overlap}; "
            "add ?force=true to run it anyway",
            field="overlap",
        )

    async def pause(
        self, job_id: str, *, until: float | None = None, reason: str | None = None
    ) -> Job:
        """Pause a pending, running or already paused job, until ``until`` when given.

        A run in flight is not stopped: it finishes, and the job then stays paused (cancel the
        job to stop the run)."""
        job = self.get(job_id)
        if job.status in FINISHED:
            raise InvalidState(
                f"job {job_id} is {job.status}; only a live job can be paused", field="status"
            )
        if until is not None and until <= self.clock.time():
            raise InvalidInput("until: expected an instant in the future", field="until")
        job = self.store.put(
            replace(job, status=JobStatus.PAUSED, paused_until=until, pause_reason=reason)
        )
        self.engine.drop_queued(job, keep_manual=False)  # a paused job runs nothing
        await self.store.commit()
        return job

    async def resume(self, job_id: str, *, catch_up: bool = False) -> Job:
        """Resume a paused job: missed occurrences are skipped unless ``catch_up``."""
        job = self.get(job_id)
        if job.status is not JobStatus.PAUSED:
            raise InvalidState(f"job {job_id} is {job.status}, not paused", field="status")
        job = self.engine.resume_job(job, catch_up=catch_up)
        await self.store.commit()
        return job

    async def retry(self, job_id: str) -> Job:
        """Re-queue a failed job now, with its attempt count reset."""
        job = self.get(job_id)
        if job.status is not JobStatus.FAILED:
            raise InvalidState(
                f"job {job_id} is {job.status}; only a failed job can be retried", field="status"
            )
        job = self.store.put(
            replace(
                job,
                status=JobStatus.PENDING,
                attempt=0,
                fire=None,
                interrupted=0,
                error=None,
                scheduled=self.clock.time(),
            )
        )
        await self.store.commit()
        return job

    # --- the whole scheduler -------------------------------------------------------------

    async def set_paused(self, paused: bool) -> None:
        """Stop or restart dispatching (jobs are still accepted); durable, then announced."""
        if self.store.paused != paused:
            self.engine.set_paused(paused)
        await self.store.commit()
        if self.hub.wants(SchedulerStatus):
            self.hub.publish(SchedulerStatus(paused=paused))

    async def clean(self, statuses: Collection[JobStatus], older_than: float) -> int:
        """Remove finished jobs in ``statuses`` that finished at least ``older_than`` seconds
        ago; returns how many."""
        unfinished = set(statuses) - FINISHED
        if unfinished:
            raise InvalidInput(
                f"status: expected a finished status, got {sorted(unfinished)[0]!r}",
                field="status",
            )
        cutoff = self.clock.time() - older_than
        doomed = [
            job.id
            for job in self.store
            if job.status in statuses and (job.completed or job.created) <= cutoff
        ]
        for job_id in doomed:
            self.store.delete(job_id)
            self.engine.forget(job_id)
        await self.store.commit()
        return len(doomed)

    # --- helpers -------------------------------------------------------------------------

    def _known(self, task: str | None) -> str:
        if task is None or not self.known_task(task):
            raise UnknownTask(
                f"task: unknown task {task!r}: name a task from config or one registered in code",
                field="task",
            )
        return task


def _check_editable(job: Job) -> None:
    """A job from config.toml is defined by the file: a change over the API would be undone by
    the next reload or restart, so it is refused (run, pause, cancel... are still allowed)."""
    if job.source is Source.CONFIG:
        raise InvalidState(
            f"job {ids.encode(job.id)} is defined in config.toml ({job.name!r}); "
            "edit the file and reload to change or remove it",
            field="source",
        )


#: A spec compiled this recently (seconds) is compiled for the job being created from it.
_FRESH = 1.0
_MILLISECOND = 0.001


def definition(spec: JobSpec, task: str) -> dict[str, Any]:
    """The job fields a spec defines (the rest - id, status, times, counters - the server
    keeps), for building a new job and for changing one in place."""
    return {
        "task": task,
        "payload": spec.payload,
        "schedule": spec.schedule,
        "timezone": spec.timezone,
        "workflow_id": spec.workflow_id,
        "workflow_name": spec.workflow_name,
        "name": spec.name,
        "priority": spec.priority,
        "policy": spec.policy,
        "unique_key": spec.unique_key,
    }
