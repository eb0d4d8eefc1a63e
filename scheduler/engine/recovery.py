"""After a crash: runs that were in flight when the process stopped.

Every job still marked ``running`` in the recovered state had a run in flight. A command it
left behind is found by its journalled pid (checked against its start time, so a reused pid is
never touched) and stopped; the run is recorded as ``interrupted`` and the job follows its
``onCrash`` policy (:func:`~.outcomes.interrupted`): rerun with the same fire id, or abandon.
"""

from __future__ import annotations

import logging

from msgspec.structs import replace

from scheduler.clock import Clock
from scheduler.engine.outcomes import interrupted
from scheduler.engine.runner import Runner
from scheduler.ids import encode
from scheduler.model import JobStatus, Outcome, Run
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
        fire = job.fire if job.fire is not None else (job.executed or now)
        attempt = max(job.attempt, 1)
        runner.record(
            job,
            Run(
                job_id=job.id,
                fire=fire,
                attempt=attempt,
                outcome=Outcome.INTERRUPTED,
                started=job.executed,
                reason="the process stopped while this run was in flight",
            ),
        )
        store.put(
            interrupted(
                replace(job, pid=None),
                fire=fire,
                attempt=attempt,
                now=now,
                cause="a crash or restart",
            )
        )
        count += 1
    await store.commit()
    return count
