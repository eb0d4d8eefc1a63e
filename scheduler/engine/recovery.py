"""After a crash: runs that were in flight when the process stopped.

Every job still marked ``running`` in the recovered state had a run in flight. A command it
left behind is found by its journalled pid (checked against its start time, so a reused pid is
never touched) and stopped; the run is recorded as ``interrupted`` and the job follows its
``onCrash`` policy (:func:`~.outcomes.interrupted`): rerun with the same fire id, or abandon.

And the span no scheduler ran on this state (:class:`Downtime`): from the last sign of life of
the previous process to this start. Occurrences in it were missed because the daemon was down,
which is what ``GET /api/jobs/{id}/explain`` tells an operator.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from scheduler.clock import Clock
from scheduler.engine.outcomes import cut_short
from scheduler.engine.runner import Runner
from scheduler.ids import encode
from scheduler.model import JobStatus
from scheduler.store import Store

log = logging.getLogger("scheduler.engine")


async def recover_interrupted(store: Store, clock: Clock, runner: Runner) -> int:
    """Handle the runs in flight at the crash; how many there were."""
    from scheduler.executors.command import stop_stale_process

    if not store.counts[JobStatus.RUNNING]:
        return 0  # the usual restart: nothing was in flight, no need to look at every job
    now = clock.time()
    count = 0
    for job in [j for j in store if j.status is JobStatus.RUNNING]:
        if job.pid is not None and await stop_stale_process(job.pid, job.pid_started, 5.0):
            log.warning(
                "job %s: stopped process %d left from before the restart", encode(job.id), job.pid
            )
        record, after = cut_short(job, now, cause="a crash or restart")
        runner.record(job, record)
        store.put(after)
        count += 1
    await store.commit()
    return count


class Downtime(NamedTuple):
    """From the last instant the previous process is known to have been alive to the start of
    this one (epoch seconds)."""

    since: float
    until: float

    def covers(self, first: float, last: float) -> bool:
        """Whether occurrences from ``first`` to ``last`` fall (at least partly) in the span."""
        return first < self.until and last > self.since


def downtime(
    last_recorded: float | None, last_written: float | None, started: float
) -> Downtime | None:
    """The span before ``started`` in which no process ran on the state, or None (a new state).

    The previous process was alive at the newest instant its records hold and when it last
    wrote a file (its final snapshot, at a clean stop: the closer mark on a real clock). A mark
    later than ``started`` is not one this clock can compare (a file written by a clock far
    ahead, or an injected clock behind the real one) and is left out."""
    marks = [mark for mark in (last_recorded, last_written) if mark is not None and mark <= started]
    if not marks:
        return None
    return Downtime(max(marks), started)
