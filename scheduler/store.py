"""Jobs in memory: a dict by id, a due-time heap, counters by status, a unique-key index, and
the query indexes of :mod:`scheduler.index` (list filters and workflows).

Every mutation first hands a typed change record to the journal port (write-ahead): if the
journal refuses it (disk full), nothing changes in memory. ``commit()`` waits until what was
appended is durable. Counts by status are kept incrementally, so the status card is O(1). Every
index is kept exactly in step with ``jobs`` by the three places that change it: ``_apply_put``,
``_apply_delete`` and ``load`` (a property test compares them with a scan).

The due heap holds ``(instant, job id)`` entries and is cleaned lazily: an entry is live while
the job still has that instant as its ``scheduled`` (or ``paused_until``) time.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from scheduler.errors import DuplicateJob
from scheduler.ids import encode
from scheduler.index import JobIndex, Key, SortedIds, WorkflowIndex, page_of
from scheduler.model import (
    FINISHED,
    AddRun,
    Change,
    DeleteJob,
    Job,
    JobStatus,
    JobType,
    PutJob,
    Run,
    SetMeta,
)

#: Statuses of the jobs :meth:`Store.soonest` lists.
_LIVE = (JobStatus.PENDING, JobStatus.RUNNING)


class JournalPort(Protocol):
    def append(self, change: Change) -> int:
        """Make ``change`` part of the log (raise StorageFull to refuse it)."""

    def append_group(self, changes: Sequence[Change]) -> int:
        """Make ``changes`` part of the log with one write, all or nothing."""

    async def commit(self) -> None:
        """Return once everything appended so far is durable."""


class NullJournal:
    """Persistence off (tests, benchmarks, a library user who wants none)."""

    def append(self, change: Change) -> int:  # noqa: ARG002 - the port's signature
        return 0

    def append_group(self, changes: Sequence[Change]) -> int:  # noqa: ARG002 - the port's
        return 0

    async def commit(self) -> None:
        return None


def wake_time(job: Job) -> float | None:
    """The instant at which the engine must look at this job again, if any."""
    if job.status is JobStatus.PAUSED:
        return job.paused_until
    if job.status is JobStatus.PENDING or job.status is JobStatus.RUNNING:
        return job.scheduled
    return None


class Store:
    def __init__(self, *, history: int = 20, journal: JournalPort | None = None) -> None:
        self.jobs: dict[int, Job] = {}
        self.history = history
        self.journal: JournalPort = journal or NullJournal()
        self.paused = False
        #: Bumped by every change applied here (jobs, runs, what is due, the pause flag), so a
        #: reader can cache what it derives from the store until this moves (the status card).
        #: A job's transient ``progress``, written by the runner straight into ``jobs``, does
        #: not move it.
        self.version = 0
        self.counts: dict[JobStatus, int] = dict.fromkeys(JobStatus, 0)
        #: Jobs by type, so a list filtered by type knows its total without a scan.
        self.type_counts: dict[JobType, int] = dict.fromkeys(JobType, 0)
        self._due: list[tuple[float, int]] = []  # runs: pending and running jobs
        self._resume: list[tuple[float, int]] = []  # paused jobs with a resume time
        # One live job per key: ``uniqueKey`` when given (this index), else the workflow id
        # (found through the workflow index: a workflow holds one job or a few).
        self._by_key: dict[str, int] = {}
        self._workflows = WorkflowIndex()
        self._index = JobIndex()
        #: Pending one-off jobs that ``pop_due`` handed to the engine (their time has come)
        #: and that have not started yet: the status card's ``delayedJobs`` leaves them out.
        self._found_due: set[int] = set()
        # Tuples, replaced on each new run: a snapshot captures them with one dict copy.
        self._runs: dict[int, tuple[Run, ...]] = {}
        #: Called with the new wake time whenever a job gains one (the engine re-arms its timer).
        self.on_wake: Callable[[float], None] = _ignore

    # --- reads ---------------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        return self.jobs.get(job_id)

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self) -> Iterator[Job]:
        return iter(self.jobs.values())

    def runs(self, job_id: int) -> list[Run]:
        return list(self._runs.get(job_id, ()))

    def all_runs(self) -> dict[int, tuple[Run, ...]]:
        return dict(self._runs)

    def workflow_holder(self, workflow_id: str) -> int | None:
        """The live job registered for ``workflow_id`` (without a uniqueKey of its own)."""
        for job_id in self._workflows.jobs(workflow_id):
            job = self.jobs[job_id]
            if job.unique_key is None and job.status not in FINISHED:
                return job_id
        return None

    def workflow_jobs(self, workflow_id: str) -> list[Job]:
        """Every job of a workflow, live or finished, oldest first."""
        return [self.jobs[job_id] for job_id in self._workflows.jobs(workflow_id)]

    def count(
        self,
        status: JobStatus | None = None,
        type_: JobType | None = None,
        task: str | None = None,
    ) -> int:
        """How many jobs match the filters (None: any), from bucket sizes: O(buckets)."""
        return self._index.count(status, type_, task)

    def page(
        self,
        status: JobStatus | None = None,
        type_: JobType | None = None,
        task: str | None = None,
        *,
        start: int = 0,
        limit: int = 20,
    ) -> list[Job]:
        """Jobs ``start`` .. ``start + limit`` of those matching, in creation order, without
        visiting the ones before: O(buckets * log n + limit)."""
        buckets: list[SortedIds] = self._index.matching(status, type_, task)
        return [self.jobs[job_id] for job_id in page_of(buckets, start, limit)]

    def next_wake(self) -> float | None:
        """The earliest live instant: a due run or a paused job's resume time."""
        due = _top(self._due, self.jobs)
        resume = _top(self._resume, self.jobs)
        if due is None:
            return resume
        return due if resume is None else min(due, resume)

    def soonest(self, until: float, limit: int) -> tuple[list[Job], bool]:
        """The pending or running jobs due by ``until``, soonest first, at most ``limit`` of
        them, and whether more are due (or the walk was cut short).

        The due heap is walked in order with a second heap of the nodes to look at:
        O(limit log limit) whatever the number of jobs, where sorting them all would hold the
        loop for a second with a million. Stale entries (a job changed since) are skipped;
        past ``100 * limit`` visits the answer is cut short."""
        heap = self._due
        frontier = [(heap[0], 0)] if heap else []
        found: dict[int, Job] = {}
        for _ in range(100 * limit):
            if not frontier:
                return list(found.values()), False
            (when, job_id), index = heapq.heappop(frontier)
            if when > until:
                return list(found.values()), False
            job = self.jobs.get(job_id)
            if job is not None and job.status in _LIVE and job.scheduled == when:
                if job_id not in found and len(found) == limit:
                    return list(found.values()), True
                found[job_id] = job
            for child in (2 * index + 1, 2 * index + 2):
                if child < len(heap):
                    heapq.heappush(frontier, (heap[child], child))
        return list(found.values()), True

    def next_job(self) -> Job | None:
        """The job that runs next (for the status card): amortised O(1)."""
        when = _top(self._due, self.jobs)
        return None if when is None else self.jobs[self._due[0][1]]

    def pop_due(self, now: float, limit: int | None = None) -> list[Job]:
        """Remove and return the jobs whose wake time is at or before ``now`` (at most about
        ``limit``: the rest stay in the heaps, due, for the next call)."""
        out: list[Job] = []
        seen: set[int] = set()  # a requeued job may have two equal entries: take it once
        for heap in (self._resume, self._due):
            jobs = self.jobs
            while heap and heap[0][0] <= now and (limit is None or len(out) < limit):
                when, job_id = heapq.heappop(heap)
                job = jobs.get(job_id)
                if job is not None and wake_time(job) == when and job_id not in seen:
                    seen.add(job_id)
                    out.append(job)
                    if job.status is JobStatus.PENDING and job.schedule.type in _ONE_OFF:
                        self._found_due.add(job_id)
        if out:
            self.version += 1  # the next job and the delayed count moved
        return out

    def delayed(self) -> int:
        """Pending one-off jobs with a delay or a date (retries included) whose time has not
        come: not yet handed to the engine as due (O(1): two pair counts and a set's size).
        While dispatching is paused nothing is handed out, so overdue ones stay counted until
        it resumes."""
        waiting = sum(self._index.count(JobStatus.PENDING, kind, None) for kind in _ONE_OFF)
        return waiting - len(self._found_due)

    # --- writes --------------------------------------------------------------------------

    def check_unique(self, job: Job) -> None:
        if job.status in FINISHED:
            return
        if job.unique_key is not None:
            key, holder = job.unique_key, self._by_key.get(job.unique_key)
        elif job.workflow_id is not None:
            key, holder = job.workflow_id, self.workflow_holder(job.workflow_id)
        else:
            return
        if holder is not None and holder != job.id:
            raise DuplicateJob(key, encode(holder))

    def put(self, job: Job) -> Job:
        """Insert or replace ``job`` (journal first). Raises DuplicateJob, StorageFull."""
        self.check_unique(job)
        self.journal.append(PutJob(job))
        self._apply_put(job)
        return job

    def delete(self, job_id: int) -> None:
        if job_id not in self.jobs:
            return
        self.journal.append(DeleteJob(job_id))
        self._apply_delete(job_id)

    def add_run(self, run: Run) -> None:
        self.journal.append(AddRun(run))
        self._apply_run(run)

    def end_run(self, run: Run, job: Job) -> None:
        """Record a run's end and its job's new state with one journal write (every run ends
        here: one write, not two). Raises StorageFull, and then neither is applied."""
        self.check_unique(job)
        self.journal.append_group((AddRun(run), PutJob(job)))
        self._apply_run(run)
        self._apply_put(job)

    def set_paused(self, paused: bool) -> None:
        self.journal.append(SetMeta(paused))
        self.paused = paused
        self.version += 1

    async def commit(self) -> None:
        await self.journal.commit()

    def requeue(self, job: Job) -> None:
        """Put a job's wake time back in the heap after the engine popped it but did not run it."""
        self._found_due.discard(job.id)  # due again when popped again
        self._push(job)
        self.version += 1

    def _push(self, job: Job) -> None:
        when = wake_time(job)
        if when is not None:
            self._push_at(job, when)

    def _push_at(self, job: Job, when: float) -> None:
        heap = self._resume if job.status is JobStatus.PAUSED else self._due
        heapq.heappush(heap, (when, job.id))
        self.on_wake(when)

    def apply(self, change: Change) -> None:
        """Apply a change without journalling it (recovery replays through here)."""
        if isinstance(change, PutJob):
            self._apply_put(change.job)
        elif isinstance(change, DeleteJob):
            self._apply_delete(change.job_id)
        elif isinstance(change, AddRun):
            self._apply_run(change.run)
        else:
            self.paused = change.paused
            self.version += 1

    def load(
        self,
        jobs: dict[int, Job],
        runs: Mapping[int, Iterable[Run]],
        *,
        paused: bool,
        groups: dict[Key, list[int]] | None = None,
    ) -> None:
        """Fill an empty store from recovered state in bulk: one pass that collects workflows,
        keys and wake times (written out inline: this loop runs a million times at a restart),
        then one heapify per heap. ``groups``, when given, are the ids of ``jobs`` by index key
        (:meth:`JobIndex.key`), each job in exactly one: the snapshot stores its jobs grouped
        so, which saves computing a million keys here (0.4 s); without them a second pass
        groups the jobs. The counts come from the groups' sizes.
        The cycle collector is off meanwhile: everything built here lives as long as the store,
        and collections triggered by a million allocations would only walk it (about 0.2 s)."""
        assert not self.jobs, "load() fills an empty store"
        collecting = gc.isenabled()
        gc.disable()
        try:
            if groups is None or sum(map(len, groups.values())) != len(jobs):
                groups = _group_by_key(jobs)  # not given, or not a partition of ``jobs``
            self._load(jobs, runs, paused=paused, groups=groups)
        finally:
            if collecting:
                gc.enable()

    def _load(
        self,
        jobs: dict[int, Job],
        runs: Mapping[int, Iterable[Run]],
        *,
        paused: bool,
        groups: dict[Key, list[int]],
    ) -> None:
        self.jobs = jobs
        workflows: dict[str, int | list[int]] = {}
        clashes: list[tuple[str, int]] = []  # second and later jobs of a workflow
        by_key = self._by_key
        due, resume = self._due, self._resume
        pending, running, paused_ = JobStatus.PENDING, JobStatus.RUNNING, JobStatus.PAUSED
        for job in jobs.values():
            job_id = job.id  # the job's own int: the indexes add no object per job
            status = job.status
            workflow = job.workflow_id
            if workflow is not None and workflows.setdefault(workflow, job_id) is not job_id:
                clashes.append((workflow, job_id))
            if status is pending or status is running:
                if job.scheduled is not None:
                    due.append((job.scheduled, job_id))
            elif status is paused_:
                if job.paused_until is not None:
                    resume.append((job.paused_until, job_id))
            else:
                continue  # finished: holds no key and has no wake time
            if job.unique_key is not None:
                by_key[job.unique_key] = job_id
        for (status, kind, _task), group in groups.items():
            self.counts[status] += len(group)
            self.type_counts[kind] += len(group)
        self._index.load(groups)
        self._workflows.load(workflows, clashes)
        heapq.heapify(due)
        heapq.heapify(resume)
        history = self.history
        self._runs = {
            job_id: tuple(job_runs)[-history:]
            for job_id, job_runs in runs.items()
            if job_id in jobs
        }
        self.paused = paused
        self.version += 1
        first = self.next_wake()
        if first is not None:
            self.on_wake(first)

    def _apply_put(self, job: Job) -> None:
        # On every run's path twice (start, end): the common case (same schedule, task, key
        # and workflow; a new wake time or none) costs a few comparisons.
        self.version += 1
        job_id = job.id
        old = self.jobs.get(job_id)
        self.jobs[job_id] = job
        counts = self.counts
        status = job.status
        counts[status] += 1
        when = wake_time(job)
        if old is None:
            self.type_counts[job.schedule.type] += 1
            self._index_key(job)
            self._index.add(job)
            if job.workflow_id is not None:
                self._workflows.add(job.workflow_id, job_id)
            if when is not None:
                self._push_at(job, when)
            return
        old_status = old.status
        counts[old_status] -= 1
        if old.schedule is not job.schedule:
            self.type_counts[old.schedule.type] -= 1
            self.type_counts[job.schedule.type] += 1
        self._index.update(old, job)
        if job_id in self._found_due and (
            status is not JobStatus.PENDING
            or job.scheduled != old.scheduled
            or job.schedule.type not in _ONE_OFF
        ):
            self._found_due.discard(job_id)  # started, rescheduled or changed kind
        if old.workflow_id != job.workflow_id:
            if old.workflow_id is not None:
                self._workflows.remove(old.workflow_id, old.id)
            if job.workflow_id is not None:
                self._workflows.add(job.workflow_id, job_id)
        if (old.unique_key is not None or job.unique_key is not None) and (
            old.unique_key is not job.unique_key or (old_status in FINISHED) != (status in FINISHED)
        ):
            self._unindex(old)
            self._index_key(job)
        if when is not None:
            paused = JobStatus.PAUSED
            if (old_status is paused) != (status is paused) or when != wake_time(old):
                self._push_at(job, when)

    def _index_key(self, job: Job) -> None:
        if job.status not in FINISHED and job.unique_key is not None:
            self._by_key[job.unique_key] = job.id

    def _unindex(self, job: Job) -> None:
        if job.unique_key is not None and self._by_key.get(job.unique_key) == job.id:
            del self._by_key[job.unique_key]

    def _apply_delete(self, job_id: int) -> None:
        old = self.jobs.pop(job_id, None)
        if old is None:
            return
        self.version += 1
        self.counts[old.status] -= 1
        self.type_counts[old.schedule.type] -= 1
        self._unindex(old)
        self._index.remove(old)
        if old.workflow_id is not None:
            self._workflows.remove(old.workflow_id, old.id)
        self._found_due.discard(job_id)
        self._runs.pop(job_id, None)

    def _apply_run(self, run: Run) -> None:
        if run.job_id not in self.jobs:
            return
        self.version += 1
        runs = self._runs.get(run.job_id, ())
        if len(runs) >= self.history:
            runs = runs[len(runs) - self.history + 1 :]
        self._runs[run.job_id] = (*runs, run)


_ONE_OFF = (JobType.DELAYED, JobType.SCHEDULED)


def _group_by_key(jobs: Mapping[int, Job]) -> dict[Key, list[int]]:
    """Ids by index key (``JobIndex.key``, written out inline: a million jobs at a restart)."""
    grouped: dict[Key, list[int]] = {}
    for job in jobs.values():
        key = (job.status, job.schedule.type, job.task)
        group = grouped.get(key)
        if group is None:
            grouped[key] = [job.id]
        else:
            group.append(job.id)
    return grouped


def _ignore(_when: float) -> None:
    return None


def _top(heap: list[tuple[float, int]], jobs: dict[int, Job]) -> float | None:
    """The heap's earliest live instant; stale entries on top are dropped on the way."""
    while heap:
        when, job_id = heap[0]
        job = jobs.get(job_id)
        if job is not None and wake_time(job) == when:
            return when
        heapq.heappop(heap)
    return None
