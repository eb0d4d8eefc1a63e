"""The run itself (scheduler.engine.execution), shared by the single box and cluster nodes."""

from __future__ import annotations

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
    cancel arriving meanwhile must not touch the run's finished timeout scope (it raised
    "Cannot change state of finished Timeout" and stopped the node's engine)."""
    job = Job(id=1, task="quick", timezone="UTC")
    run = ActiveRun(job.id, fire=0.0, attempt=1, started=0.0, manual=False)
    ctx = run_context(job, run, report_progress=lambda *_: None, report_pid=lambda _: None)
    result = await execute(
        TaskRuntime(Quick(), timeout=5.0), job, run, ctx, FakeClock(0.0), default=None
    )
    assert result.outcome is Outcome.SUCCESS
    cancel_run(run, "lease lost")  # after the end: nothing to stop, nothing raised
    assert run.scope is None
    assert run.cancel_reason == "lease lost"
