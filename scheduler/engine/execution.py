"""A run's execution: what the executor is told, and the call under the run's timeout.

Shared by the single box's runner and a cluster node. A run is an :class:`ActiveRun` from the
moment it is taken until its end is recorded; cancelling it (cancel, delete, ``cancel_other``,
a timeout, shutdown, a lost lease) moves the deadline of its ``asyncio.timeout`` scope to now,
with a reason, and the executor sees ``CancelledError`` and cleans up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from scheduler.clock import Clock
from scheduler.engine.outcomes import SHUTDOWN
from scheduler.engine.queue import TaskRuntime
from scheduler.engine.results import storable_result
from scheduler.executors.base import RunContext
from scheduler.ids import encode
from scheduler.model import Job, Outcome, Run, RunResult, fire_id

log = logging.getLogger("scheduler.engine")


@dataclass(slots=True)
class ActiveRun:
    """A run from the moment a worker took it (before its start is journalled, so cancel,
    delete and the overlap policy see it at once) until its end is recorded."""

    job_id: int
    fire: float
    attempt: int
    started: float
    manual: bool
    scope: asyncio.Timeout | None = None
    cancel_reason: str | None = None
    done: asyncio.Future[Run] | None = None  # made on demand: most runs have no waiter
    waiter: asyncio.Future[Run] | None = None  # the ``?wait=true`` of a run-now

    def ended(self) -> asyncio.Future[Run]:
        """A future that resolves with this run's record when it ends."""
        if self.done is None:
            self.done = asyncio.get_running_loop().create_future()
        return self.done


def cancel_run(run: ActiveRun, reason: str | None) -> None:
    """Stop a run in flight: ``reason`` None means its timeout expired."""
    if run.cancel_reason is None:
        run.cancel_reason = reason
    if run.scope is not None and not run.scope.expired():
        run.scope.reschedule(-1)


def cancelled(reason: str) -> RunResult:
    return RunResult(outcome=Outcome.CANCELLED, error=reason, retryable=False)


def run_context(
    job: Job,
    run: ActiveRun,
    *,
    report_progress: Callable[[float, str | None], None],
    report_pid: Callable[[int | None], None],
) -> RunContext:
    """What the executor is told of a run."""
    sid = encode(job.id)
    return RunContext(
        job_id=sid,
        fire_id=fire_id(sid, run.fire),
        workflow_id=job.workflow_id,
        workflow_name=job.display_name,
        task=job.task,
        payload=job.payload,
        attempt=run.attempt,
        fire=run.fire,
        timezone=job.timezone,
        report_progress=report_progress,
        report_pid=report_pid,
    )


async def execute(
    runtime: TaskRuntime | None,
    job: Job,
    run: ActiveRun,
    ctx: RunContext,
    clock: Clock,
    *,
    default: float | None,
) -> RunResult:
    """Call the task's executor for ``run`` under its timeout (the job's, else the task's,
    else ``default``); a cancel or the timeout moves the deadline of the run's scope to now."""
    if runtime is None:
        return RunResult(
            outcome=Outcome.ERROR,
            retryable=False,
            error=f"unknown task {job.task!r}: not in config or registered",
        )
    timeout = job.policy.timeout or runtime.timeout or default
    # The deadline is armed on the injected clock (tests control it); expiry moves the
    # scope's deadline to now, which cancels the executor the same way a cancel does.
    timer = None
    if timeout is not None:
        timer = clock.call_at(run.started + timeout, lambda: cancel_run(run, None))
    try:
        async with asyncio.timeout(None) as scope:
            run.scope = scope
            if run.cancel_reason is not None:
                scope.reschedule(-1)
            return await runtime.executor.run(ctx)
    except TimeoutError:
        if run.cancel_reason is not None:
            return cancelled(run.cancel_reason)
        return RunResult(outcome=Outcome.TIMEOUT, error=f"timed out after {timeout:g} s")
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        log.exception("job %s: executor %s failed", encode(job.id), job.task)
        return RunResult(outcome=Outcome.ERROR, error=f"{type(exc).__name__}: {exc}")
    finally:
        run.scope = None  # ended: a cancel from now on (its end is being recorded) is a no-op
        if timer is not None:
            timer.cancel()


def run_record(job_id: int, run: ActiveRun, result: RunResult, now: float) -> Run:
    """The history record of a run that ended at ``now`` with ``result`` (a run stopped by
    a shutdown is ``interrupted``: it follows ``onCrash`` like one cut short by a crash)."""
    outcome = result.outcome
    if run.cancel_reason == SHUTDOWN:
        outcome = Outcome.INTERRUPTED
    return Run(
        job_id=job_id,
        fire=run.fire,
        attempt=run.attempt,
        outcome=outcome,
        started=run.started,
        ended=now,
        lateness=None if run.manual else run.started - run.fire,
        error=result.error if outcome is not Outcome.SUCCESS else None,
        result=storable_result(result.result),
    )
