"""Who waits for a job's next run: ``?wait=true`` callers, cancels waiting for a run to end,
and a run-now held back by ``overlap = buffer_one``. Every wait ends: with the run, or, when
the run will not happen (the job was deleted, cancelled, paused), with an error saying so."""

from __future__ import annotations

import asyncio

from scheduler.errors import InvalidState, JobNotFound
from scheduler.ids import encode
from scheduler.model import Job, Run


class Waiters:
    def __init__(self) -> None:
        self._records: dict[int, list[asyncio.Future[Run]]] = {}  # the next run recorded
        self._ends: dict[int, list[asyncio.Future[Run]]] = {}  # the next run to finish
        #: A run-now to queue once the job's runs have ended (one at a time per job).
        self.after: dict[int, asyncio.Future[Run]] = {}

    def next_record(self, job_id: int) -> asyncio.Future[Run]:
        """The next run recorded for the job: one that finished, or one recorded as not run
        (missed, skipped). Cancelling the future forgets it."""
        fut: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self._records.setdefault(job_id, []).append(fut)
        fut.add_done_callback(lambda done: self._forget(job_id, done))
        return fut

    def next_end(self, job_id: int) -> asyncio.Future[Run]:
        """The next run of the job to finish."""
        fut: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self._ends.setdefault(job_id, []).append(fut)
        return fut

    @property
    def pending(self) -> int:
        """Waits not yet answered (for tests and leak checks)."""
        return sum(map(len, self._records.values())) + sum(map(len, self._ends.values()))

    def recorded(self, job_id: int, run: Run) -> None:
        for fut in self._records.pop(job_id, ()):
            if not fut.done():
                fut.set_result(run)

    def ended(self, job_id: int, run: Run) -> None:
        for fut in self._ends.pop(job_id, ()):
            if not fut.done():
                fut.set_result(run)

    def release(self, job_id: int, job: Job | None) -> None:
        """The job will not run again (cancelled, deleted): every wait for it ends now."""
        waiting = [*self._records.pop(job_id, ()), *self._ends.pop(job_id, ())]
        after = self.after.pop(job_id, None)
        for fut in [*waiting, *([after] if after is not None else [])]:
            not_started(fut, job_id, job)

    def _forget(self, job_id: int, fut: asyncio.Future[Run]) -> None:
        waiters = self._records.get(job_id)
        if waiters is not None and fut in waiters:
            waiters.remove(fut)
            if not waiters:
                del self._records[job_id]


def not_started(waiter: asyncio.Future[Run], job_id: int, job: Job | None) -> None:
    """Tell a waiter that the run it waits for will not start: the job is gone (404), or in a
    state that does not run it (409)."""
    if waiter.done():
        return
    sid = encode(job_id)
    if job is None:
        waiter.set_exception(JobNotFound(sid))
    else:
        waiter.set_exception(
            InvalidState(f"job {sid} is {job.status}: its run did not start", field="status")
        )
