"""The single box's writes: the store (journalled first, durable before the answer) and the
engine in this process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping

from msgspec.structs import replace

from scheduler import ids
from scheduler.clock import Clock
from scheduler.engine.loop import Engine
from scheduler.engine.outcomes import SUPERSEDED
from scheduler.engine.queue import Standing
from scheduler.errors import (
    InvalidInput,
    InvalidState,
)
from scheduler.events import Hub, JobCancelled, JobCreated, SchedulerStatus
from scheduler.jobspec import JobSpec
from scheduler.model import FINISHED, Job, JobStatus, Overlap, Run, Source
from scheduler.service.base import BaseService, WorkflowNotFound, check_editable
from scheduler.store import Store


class JobService(BaseService):
    """The single box's writes: the store (journalled) and the engine in this process."""

    def __init__(
        self,
        store: Store,
        engine: Engine,
        clock: Clock,
        *,
        hub: Hub,
        known_task: Callable[[str], bool],
    ) -> None:
        super().__init__(store, engine, clock, hub=hub, known_task=known_task)
        self.engine: Engine = engine

    tracks_downtime = True

    def standing(self, job: Job) -> Standing | None:
        """Where the job's queued run waits in this process's ready queue."""
        return self.engine.queue.standing(job.id, job.task)

    async def sync_static(self, wanted: Mapping[str, tuple[JobSpec, Source]]) -> None:
        """Make the stored static jobs match ``wanted`` (see :meth:`static_plan`)."""
        writes, removed = self.static_plan(wanted, self.static_jobs())
        for job in writes:
            self.store.put(job)
        for old in removed:
            self.engine.cancel_runs(old.id, "removed from config", deleting=True)
            self.store.delete(old.id)
        await self.store.commit()

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

    async def modify(self, job_id: str, spec: JobSpec | Callable[[Job], JobSpec]) -> Job:
        """Replace a job's definition (PATCH); validated whole before anything changes.
        ``spec`` may be a function of the job as it is (a merge patch applied to it)."""
        job = self.get(job_id)
        check_editable(job)
        if callable(spec):
            spec = spec(job)
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
        check_editable(old)
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
            check_editable(job)
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
        check_editable(job)
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
        self.engine.refuse_in_maintenance(job)  # before cancel_other stops anything
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
        self,
        job_id: str,
        *,
        until: float | None = None,
        reason: str | None = None,
        by: str | None = None,
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
            replace(
                job,
                status=JobStatus.PAUSED,
                paused_until=until,
                pause_reason=reason,
                paused_by=by,
            )
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
