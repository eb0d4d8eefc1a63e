"""The run itself (scheduler.engine.execution), shared by the single box and cluster nodes."""

from __future__ import annotations

import asyncio

import pytest

from scheduler.engine.execution import ActiveRun, cancel_run, execute, run_context
from scheduler.engine.queue import TaskRuntime
from scheduler.executors.base import RunContext
from scheduler.model import Job, Outcome, RunResult
from tests.fakes import FakeClock


class Quick:
    async def run(self, ctx: RunContext) -> RunResult:
        return RunResult(outcome=Outcome.SUCCESS, result=ctx.attempt)


async def test_a_cancel_after_the_run_ended_is_a_no_op() -> None:
    """A cluster node records a run's end after the run (a database round trip); a fence or a
    cancel arriving meanwhile must not reach the task (its finished timeout scope once raised
    "Cannot change state of finished Timeout" and stopped the node's engine)."""
    job = Job(id=1, task="quick", timezone="UTC")
    run = ActiveRun(job.id, fire=0.0, attempt=1, started=0.0, manual=False)
    ctx = run_context(job, run, report_progress=lambda *_: None, report_pid=lambda _: None)
    result = await execute(
        TaskRuntime(Quick(), timeout=5.0), job, run, ctx, FakeClock(0.0), default=None
    )
    assert result.outcome is Outcome.SUCCESS
    cancel_run(run, "lease lost")  # after the end: nothing to stop, nothing raised
    assert run.task is None
    assert not run.cancel_sent
    assert run.cancel_reason == "lease lost"


class SelfCancelling:
    """Asks for its own run to be cancelled, then returns without awaiting anything."""

    def __init__(self) -> None:
        self.active: ActiveRun | None = None

    async def run(self, ctx: RunContext) -> RunResult:
        assert self.active is not None
        cancel_run(self.active, "cancelled on request")
        return RunResult(outcome=Outcome.SUCCESS)


async def test_a_cancel_asked_as_the_run_returns_never_reaches_the_worker() -> None:
    """The cancel is delivered from a callback, which runs only once the executor is suspended:
    a run that returns first keeps its result, and the worker's next await is not cancelled
    (a direct ``task.cancel()`` would land there on Python 3.11 and stop the worker)."""
    job = Job(id=1, task="self", timezone="UTC")
    run = ActiveRun(job.id, fire=0.0, attempt=1, started=0.0, manual=False)
    executor = SelfCancelling()
    executor.active = run
    ctx = run_context(job, run, report_progress=lambda *_: None, report_pid=lambda _: None)
    result = await execute(TaskRuntime(executor), job, run, ctx, FakeClock(0.0), default=None)
    assert result.outcome is Outcome.SUCCESS
    for _ in range(3):
        await asyncio.sleep(0)  # would raise CancelledError if the cancel had leaked
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    assert not run.cancel_sent


class Waiting:
    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def run(self, ctx: RunContext) -> RunResult:
        self.entered.set()
        await asyncio.Event().wait()
        raise AssertionError("not reached")


async def waiting_run() -> tuple[ActiveRun, asyncio.Task[RunResult]]:
    """A run executing in a task of its own, suspended inside its executor."""
    job = Job(id=1, task="wait", timezone="UTC")
    run = ActiveRun(job.id, fire=0.0, attempt=1, started=0.0, manual=False)
    executor = Waiting()
    ctx = run_context(job, run, report_progress=lambda *_: None, report_pid=lambda _: None)
    running = asyncio.create_task(
        execute(TaskRuntime(executor), job, run, ctx, FakeClock(0.0), default=None)
    )
    await executor.entered.wait()
    return run, running


async def test_a_cancel_lands_inside_the_run_and_is_taken_back() -> None:
    run, running = await waiting_run()
    cancel_run(run, "deleted")
    result = await running
    assert (result.outcome, result.error) == (Outcome.CANCELLED, "deleted")
    assert running.cancelling() == 0  # taken back: the task carries on as if never cancelled


async def test_a_cancel_from_elsewhere_still_stops_the_task() -> None:
    """The worker itself being cancelled (shutdown) is not a run's cancel: it propagates,
    even when the run's own cancel came at the same moment."""
    run, running = await waiting_run()
    cancel_run(run, "deleted")
    await asyncio.sleep(0)  # the run's cancel is delivered
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
