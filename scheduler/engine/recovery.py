"""After a crash: runs that were in flight when the process stopped.

Every job still marked ``running`` in the recovered state had a run in flight. A command it
left behind is found by its journalled pid (checked against its start time, so a reused pid is
never touched) and stopped; the run is recorded as ``interrupted`` and the job follows its
``onCrash`` policy (:func:`~.outcomes.interrupted`): rerun with the same fire id, or abandon.
"""

from __future__ import annotations

import logging

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
