"""A run's execution: what the executor is told, and the call under the run's timeout.

Shared by the single box's runner and a cluster node. A run is an :class:`ActiveRun` from the
moment it is taken until its end is recorded; cancelling it (cancel, delete, ``cancel_other``,
a timeout, shutdown, a lost lease) records a reason and cancels the task running the executor,
which sees ``CancelledError`` at its await and cleans up.

The cancel works as ``asyncio.timeout`` does, without a scope object per run (this is every
run's path): the task's ``cancel()`` is delivered from a callback of its own, so it can only
land while the executor is suspended inside the run (never after the run returned, where it
would hit the worker's next await), and the executor's end takes it back with ``uncancel()``,
so a cancel from elsewhere (the worker being stopped) still propagates.
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
    #: The task running the executor, while it runs (set by :func:`execute`).
    task: asyncio.Task[object] | None = None
    #: A cancel on its way to :attr:`task` (see the module docstring), or delivered.
    delivery: asyncio.Handle | None = None
    cancel_sent: bool = False
    cancel_reason: str | None = None
    done: asyncio.Future[Run] | None = None  # made on demand: most runs have no waiter
    waiter: asyncio.Future[Run] | None = None  # the ``?wait=true`` of a run-now

    def ended(self) -> asyncio.Future[Run]:
        """A future that resolves with this run's record when it ends."""
        if self.done is None:
            self.done = asyncio.get_running_loop().create_future()
        return self.done


def cancel_run(run: ActiveRun, reason: str | None) -> None:
    """Stop a run in flight: ``reason`` None means its timeout expired. A run that is not in
    its executor (starting, or ended and being recorded) keeps the reason only."""
    if run.cancel_reason is None:
        run.cancel_reason = reason
    task = run.task
    if task is not None and run.delivery is None:
        run.delivery = task.get_loop().call_soon(_deliver, run)


def _deliver(run: ActiveRun) -> None:
    task = run.task
    if task is not None:  # still inside the executor: it is suspended there, so it lands there
        run.cancel_sent = True
        task.cancel()


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
    # The deadline is armed on the injected clock (tests control it); expiry cancels the
    # executor the same way a cancel does, with no reason.
    timer = None
    if timeout is not None:
        timer = clock.call_at(run.started + timeout, lambda: cancel_run(run, None))
    task = asyncio.current_task()
    assert task is not None, "a run executes in a task"
    base = task.cancelling()
    run.task = task
    if run.cancel_reason is not None:
        cancel_run(run, run.cancel_reason)
    ours = False
    try:
        try:
            return await runtime.executor.run(ctx)
        finally:
            # Ended: a cancel from now on (its end is being recorded) is a no-op, one still on
            # its way is dropped, and one delivered is taken back.
            run.task = None
            if run.delivery is not None:
                run.delivery.cancel()
            if run.cancel_sent:
                ours = task.uncancel() <= base
            if timer is not None:
                timer.cancel()
    except asyncio.CancelledError:
        if not ours:
            raise
        if run.cancel_reason is not None:
            return cancelled(run.cancel_reason)
        return RunResult(outcome=Outcome.TIMEOUT, error=f"timed out after {timeout:g} s")
    except BaseException as exc:  # an executor must never take the engine down
        log.exception("job %s: executor %s failed", encode(job.id), job.task)
        return RunResult(outcome=Outcome.ERROR, error=f"{type(exc).__name__}: {exc}")


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
