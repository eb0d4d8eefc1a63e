"""Retention: finished jobs are removed ``retention`` seconds after they finished.

Static jobs (``[[jobs]]``, and library tasks registered with a schedule) are kept: the config
defines them, and removing a finished one would bring it back, and run it again, at the next
start. The jobs due to go wait in a heap by expiry instant; the periodic scan removes them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from scheduler.errors import StorageFull
from scheduler.model import FINISHED, Job, Source
from scheduler.store import Store


def expires(job: Job) -> bool:
    """Whether retention removes ``job`` once it has finished."""
    if job.status not in FINISHED:
        return False
    return job.name is None or job.source is Source.API


class Retention:
    def __init__(self, store: Store, seconds: float) -> None:
        self.store = store
        self.seconds = seconds
        self._heap: list[tuple[float, int]] = []

    def load(self, jobs: Iterable[Job]) -> None:
        """Start from the stored jobs (at each start of the engine)."""
        self._heap = [(self._due(job), job.id) for job in jobs if expires(job)]
        heapq.heapify(self._heap)

    def note(self, job: Job) -> None:
        """``job`` has just finished."""
        if expires(job):
            heapq.heappush(self._heap, (self._due(job), job.id))

    def expire(self, now: float, *, retry_in: float) -> list[int]:
        """Remove the jobs whose time has come; returns their ids. A full disk stops the
        pass (the job is tried again ``retry_in`` seconds later)."""
        heap, jobs, removed = self._heap, self.store.jobs, []
        while heap and heap[0][0] <= now:
            _, job_id = heapq.heappop(heap)
            job = jobs.get(job_id)
            if job is None or job.status not in FINISHED:
                continue
            if self._due(job) > now:  # finished again later (revived, then finished)
                heapq.heappush(heap, (self._due(job), job_id))
                continue
            try:
                self.store.delete(job_id)
            except StorageFull:
                heapq.heappush(heap, (now + retry_in, job_id))
                break
            removed.append(job_id)
        return removed

    def _due(self, job: Job) -> float:
        return (job.completed or job.created) + self.seconds
