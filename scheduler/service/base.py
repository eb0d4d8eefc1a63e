"""Reads, and how a job is built, rebuilt and changed: pure functions of the job and the
request, shared by the single box's service (:mod:`.local`) and a cluster node's
(``scheduler.cluster.service``)."""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from msgspec.structs import replace

from scheduler import ids
from scheduler.clock import Clock
from scheduler.engine.cache import TriggerCache
from scheduler.engine.explain import Explanation, explain
from scheduler.engine.explain_facts import gather
from scheduler.engine.queue import Standing
from scheduler.engine.recovery import Downtime
from scheduler.errors import (
    InvalidSchedule,
    InvalidState,
    JobNotFound,
    SchedulerError,
    UnknownTask,
    describe,
)
from scheduler.events import Hub
from scheduler.jobspec import JobSpec
from scheduler.maintenance import Maintenance
from scheduler.model import FINISHED, Job, JobStatus, JobType, Run, Source
from scheduler.schedules import load_zone
from scheduler.store import Store

log = logging.getLogger("scheduler")

#: Trigger queries :meth:`BaseService.next_times` makes between two turns of the event loop.
NEXT_TIMES_PER_TURN = 100


class WorkflowNotFound(JobNotFound):
    """No job belongs to this workflow."""

    def __init__(self, workflow_id: str) -> None:
        SchedulerError.__init__(
            self, f"no job for workflow {describe(workflow_id)}", field="workflowId"
        )
        self.job_id = workflow_id


class EngineView(Protocol):
    """What reads and building ask of an engine: its compiled triggers and waiters."""

    @property
    def triggers(self) -> TriggerCache: ...

    def next_times(self, job: Job, n: int) -> list[float]: ...

    def next_record(self, job_id: int) -> asyncio.Future[Run]: ...


class BaseService:
    def __init__(
        self,
        store: Store,
        engine: EngineView,
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
        #: The span before this start in which no process ran on the state (set by the
        #: start's recovery; None for a new state). Explain says "the daemon was down" when
        #: missed runs fall in it.
        self.downtime: Downtime | None = None

    # --- reads ---------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        job = self.store.get(ids.decode(job_id))
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def fetch(self, job_id: str) -> Job:
        """The job as it is now, for a request about it. The single box's store is the truth,
        so this is :meth:`get`; a cluster node also asks the database when its replica has not
        seen the job yet (created on another node a moment ago)."""
        return self.get(job_id)

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

    async def next_times(self, job: Job, n: int) -> builtins.list[float]:
        """The next ``n`` run instants (fewer when the rule ends; none for a finished job).

        Each is a trigger query (up to ~50 us for a rule that matches once in four years), so
        the loop gets a turn every :data:`NEXT_TIMES_PER_TURN` of them: 1,000 in a row held it
        ~50 ms. The trigger is taken once, so a job changed or deleted meanwhile is answered
        as it was asked about (and not compiled back into the engine's cache)."""
        if job.status in FINISHED:
            return []
        timeline = self.engine.triggers.timeline(job)
        out: builtins.list[float] = []
        t = job.scheduled
        while t is not None:
            out.append(t)
            if len(out) >= n or job.type is not JobType.RECURRING:
                break
            if len(out) % NEXT_TIMES_PER_TURN == 0:
                await asyncio.sleep(0)
            t = timeline.next_after(t)
        return out

    async def explain(self, job_id: str, *, windows: Maintenance | None = None) -> Explanation:
        """Why the job has not run, or will run late (``GET /api/jobs/{id}/explain``): the
        facts the store, the engine and ``windows`` (the maintenance windows) hold, turned into
        reasons by :func:`scheduler.engine.explain.explain`."""
        job = await self.fetch(job_id)
        facts = gather(
            job,
            self.clock.time(),
            runs=self.runs(job),
            scheduler_paused=self.store.paused,
            windows=windows,
            standing=self.standing(job),
            downtime=self.downtime,
            tracks_downtime=self.tracks_downtime,
        )
        return explain(facts)

    #: Whether :attr:`downtime` is kept (a single box's recovery keeps it; a cluster has no
    #: one process whose downtime would say that a run was missed).
    tracks_downtime = False

    def standing(self, job: Job) -> Standing | None:  # noqa: ARG002 - the single box's is used
        """Where the job's queued run waits, when this process queues runs (the single box);
        a cluster node claims runs from the database, where no queue order is kept."""
        return None

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
        if job.schedule.delay is not None:
            return  # a one-off after a delay: nothing compiled, none needed (the common case)
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

    # --- static jobs ---------------------------------------------------------------------

    def is_current(self, job: Job, spec: JobSpec) -> bool:
        """Whether the stored static job already is what ``spec`` defines (then a start or
        reload leaves it, and its schedule, alone)."""
        wanted = definition(spec, spec.task or job.task)
        return all(getattr(job, key) == value for key, value in wanted.items())

    def revives(self, job: Job, spec: JobSpec) -> bool:
        """An unchanged recurring static job that finished comes back at a start or reload
        (cancelled or quarantined: the file still defines it), unless its rule has no run left.
        A one-off static job that finished stays finished: it never runs twice."""
        if job.status not in FINISHED or spec.schedule.type is not JobType.RECURRING:
            return False
        return self.first_run(spec, created=job.created, now=self.clock.time()) is not None

    def static_plan(
        self, wanted: Mapping[str, tuple[JobSpec, Source]], existing: Mapping[str, Job]
    ) -> tuple[builtins.list[Job], builtins.list[Job]]:
        """What makes the stored static jobs ``existing`` (by name) match ``wanted``: the jobs
        to write (new or changed: a changed schedule counts from now, never retroactively)
        and the jobs to remove. A job whose schedule has no run left is logged and left out:
        ``scheduler check`` shows it as "no upcoming runs"; it must not stop a start."""
        writes: builtins.list[Job] = []
        for name, (spec, source) in wanted.items():
            old = existing.get(name)
            if old is not None and self.is_current(old, spec) and not self.revives(old, spec):
                continue
            try:
                fresh = self.build(spec, source=source)
            except InvalidSchedule as exc:
                log.warning("static job %r is not scheduled: %s", name, exc.message)
                continue
            if old is not None:
                if old.status is JobStatus.RUNNING:
                    fresh = replace(fresh, status=JobStatus.RUNNING)
                fresh = replace(fresh, id=old.id, runs=old.runs)
            writes.append(fresh)
        removed = [job for name, job in existing.items() if name not in wanted]
        return writes, removed

    def static_jobs(self) -> dict[str, Job]:
        """The stored static jobs (``[[jobs]]`` and library-scheduled tasks), by name."""
        return {
            job.name: job
            for job in self.store
            if job.name is not None and job.source in (Source.CONFIG, Source.LIBRARY)
        }

    # --- helpers -------------------------------------------------------------------------

    def _known(self, task: str | None) -> str:
        if task is None or not self.known_task(task):
            raise UnknownTask(
                f"task: unknown task {task!r}: name a task from config or one registered in code",
                field="task",
            )
        return task


def check_editable(job: Job) -> None:
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
