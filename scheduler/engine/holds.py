"""The jobs a maintenance window holds back in the single box's engine.

A job due inside its task's window (:mod:`scheduler.maintenance`) is not run: the engine keeps
it here by the end of the window that holds it and decides it again then (its ``scheduled`` is
unchanged, so the misfire policy sees every occurrence the window covered). Nothing is
journalled: after a restart inside a window the job is due, and held, again. A job held anew
(another window, a reload) gets a new end; the old heap entry is then stale and skipped.

The ready queue asks :meth:`WindowHolds.gate` before it starts a run: a scheduled run still
waiting for a slot when its task's window opens goes back to its job, which is then held.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from msgspec.structs import replace

from scheduler.clock import Clock
from scheduler.engine.queue import BUFFERED, DUE, MANUAL, QueuedRun
from scheduler.errors import StorageFull
from scheduler.maintenance import Maintenance, Window
from scheduler.model import Job
from scheduler.store import Store


class WindowHolds:
    """The windows in force (None: none configured, and the run path pays one test) and the
    jobs they hold: id -> the end of its window, the ends in a heap. ``buffered`` is the
    engine's own map of occurrences kept by overlap (shared, not copied); ``arm`` sets its
    timer, ``after_runs`` starts a kept occurrence once no run of its job is in flight."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        buffered: dict[int, float],
        *,
        arm: Callable[[float], None],
        after_runs: Callable[[int], None],
    ) -> None:
        self.maintenance: Maintenance | None = None
        self._store = store
        self._clock = clock
        self._buffered = buffered
        self._arm = arm
        self._after_runs = after_runs
        self._until: dict[int, float] = {}
        self._ends: list[tuple[float, int]] = []

    def open_for(self, task: str, now: float) -> Window | None:
        """The window holding ``task`` at ``now``, if any."""
        return None if self.maintenance is None else self.maintenance.open_for(task, now)

    def defer(self, job_id: int, end: float) -> None:
        """Hold a job until ``end``, its task's window's end; it is decided again then."""
        if self._until.get(job_id) == end:
            return
        self._until[job_id] = end
        heapq.heappush(self._ends, (end, job_id))
        self._arm(end)

    def release(self, now: float) -> None:
        """The jobs whose window has ended by ``now`` are decided again (a job inside another
        window is held anew); an occurrence kept by overlap starts once no run of its job is
        in flight."""
        ends, due = self._ends, []
        while ends and ends[0][0] <= now:
            end, job_id = heapq.heappop(ends)
            if self._until.get(job_id) == end:
                del self._until[job_id]
                due.append(job_id)
        for job_id in due:  # all taken first: a job held anew is not seen again
            job = self._store.jobs.get(job_id)
            if job_id in self._buffered:
                self._after_runs(job_id)
            elif job is not None:
                self._store.requeue(job)

    def next_end(self) -> float | None:
        """When the next held job's window ends (a stale entry only wakes the engine early)."""
        return self._ends[0][0] if self._ends else None

    def forget(self, job_id: int) -> None:
        self._until.pop(job_id, None)

    def gate(self, run: QueuedRun, job: Job) -> bool:
        """The queue's gate (windows configured): whether ``run`` must not start. A scheduled
        run taken inside its task's window goes back to its job, due at the run's occurrence
        (the older ones were recorded as missed when it was planned), and so is held; an
        occurrence kept by overlap waits for the window's end. Run-nows pass."""
        if run.kind == MANUAL:
            return False
        window = self.open_for(job.task, self._clock.time())
        if window is None:
            return False
        if run.kind == BUFFERED:
            self._buffered[job.id] = run.fire
            self.defer(job.id, window.end)
            return True
        if job.scheduled != run.expect:
            return False  # the job changed: the run is dropped as it starts, as always
        if run.kind == DUE and job.scheduled != run.fire:
            try:
                self._store.put(replace(job, scheduled=run.fire))
            except StorageFull:
                self._store.requeue(job)  # planned again from its older instant
        else:
            self._store.requeue(job)
        return True
