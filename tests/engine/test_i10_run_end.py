"""Issue 10, item 7: the end of a run is durable before anyone hears of it, and "cancelled by
a newer run" is one constant.

A run's end used to be journalled but left unsynced until some other change committed: a
client answered "completed" (``?wait=true``, a run-now future, a ``job-completed`` event) could
lose that end in a crash. Checked twice: on a journal port that records what each commit
covered, at the very moment each party is told; and through the real daemon, killed with
``SIGKILL`` right after it answered.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from scheduler.config import Config
from scheduler.engine.outcomes import SUPERSEDED
from scheduler.engine.queue import TaskRuntime
from scheduler.events import JobCompleted
from scheduler.model import AddRun, Change, Outcome, Run
from scheduler.runtime.library import Scheduler
from tests import ROOT
from tests.daemon_proc import DaemonProcess, Daemons
from tests.fakes import FakeClock, RecordingExecutor
from tests.persistence.harness import NOOP_TASK

T0 = 1_795_000_000.0


class CommitLog:
    """A journal port: ``durable`` is how many appended changes a finished commit covers.
    Each commit gives the loop away first, as the real one does while it fsyncs."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.durable = 0

    def append(self, change: Change) -> int:
        self.changes.append(change)
        return len(self.changes)

    def append_group(self, changes: Sequence[Change]) -> int:
        for change in changes:
            seq = self.append(change)
        return seq

    async def commit(self) -> None:
        covers = len(self.changes)
        for _ in range(3):
            await asyncio.sleep(0)
        self.durable = max(self.durable, covers)

    def run_end_is_durable(self, record: Run) -> bool:
        for index, change in enumerate(self.changes):
            if isinstance(change, AddRun) and change.run == record:
                return index < self.durable
        raise AssertionError(f"the run's end was never journalled: {record}")


async def test_a_runs_end_is_committed_before_its_waiter_and_listeners_are_told() -> None:
    clock = FakeClock(T0)
    sched = Scheduler(Config(), clock=clock, persistence=False)
    journal = CommitLog()
    sched.store.journal = journal
    sched.runtimes["work"] = TaskRuntime(RecordingExecutor(clock))
    told: list[tuple[str, bool]] = []
    await sched.start()
    try:
        ref = await sched.create_task("work", schedule={"delay": "1h"})

        def on_completed(event: JobCompleted) -> None:
            [record] = sched.service.runs(sched.service.get(ref.id))
            told.append(("event", journal.run_end_is_durable(record)))

        sched.hub.subscribe([JobCompleted], on_completed)
        future = await sched.service.run_now(ref.id)
        future.add_done_callback(
            lambda done: told.append(("waiter", journal.run_end_is_durable(done.result())))
        )
        await clock.advance(1)
        assert future.result().outcome is Outcome.SUCCESS
        assert sorted(told) == [("event", True), ("waiter", True)]
    finally:
        await sched.stop(grace=0)


@pytest.mark.integration
async def test_a_run_answered_completed_survives_kill_9(tmp_path: Path, daemons: Daemons) -> None:
    daemon = await daemons.start(DaemonProcess(tmp_path, NOOP_TASK, fsync="always"))
    status, job, _ = await daemon.request("POST", "/api/jobs?wait=true", json={"task": "noop"})
    assert status == 201, job
    assert job["status"] == "completed", job
    await daemon.kill()  # no graceful stop: only what was fsynced is there
    await daemon.start()
    status, after, _ = await daemon.request("GET", f"/api/jobs/{job['id']}")
    assert status == 200, after
    assert after["status"] == "completed"
    status, runs, _ = await daemon.request("GET", f"/api/jobs/{job['id']}/runs")
    assert [run["outcome"] for run in runs["items"]] == ["success"]


def test_cancelled_by_a_newer_run_is_one_constant() -> None:
    """Item 7: the reason was copied into the service and compared with ``==``; a change of
    wording in one copy would have turned a superseded run into a cancelled job."""
    copies = []
    for path in sorted((ROOT / "scheduler").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value == SUPERSEDED:
                copies.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert copies == ["scheduler/engine/outcomes.py:30"]
