"""Issue 14: group commit under any interleaving of appends, commits, cancellations and fsync
passes finishing (each waiting commit now has a future of its own instead of a ``shield``).

The worker thread is replaced by passes the test finishes one at a time (the fsync itself
runs for real when the pass starts), so hypothesis can try orders a real disk rarely shows.
Properties: a commit returns only once a pass that started after its record was written has
been applied; one pass at a time; a pass covers every record appended before it started; a
cancelled commit strands no other; every commit ends once the passes run out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.model import SetMeta
from scheduler.persistence.journal import FsyncMode, Journal

Op = tuple[str, int]
OPS = st.lists(
    st.tuples(st.sampled_from(["append", "commit", "cancel", "finish", "turn"]), st.integers(0, 7)),
    max_size=40,
)


class Passes:
    """Stands in for ``loop.run_in_executor``: runs the fsync pass at once and reports it done
    when the test says so, recording what each pass covered."""

    def __init__(self, loop: asyncio.AbstractEventLoop, journal: Journal) -> None:
        self.loop = loop
        self.journal = journal
        self.open: list[asyncio.Future[None]] = []
        self.covered: list[int] = []  # last_seq when each pass started
        self.finished: list[int] = []  # what the passes finished so far covered

    def __call__(self, _executor: object, func: Callable[..., None], *args: Any) -> Any:
        assert not self.open, "a second fsync pass started while one was in flight"
        func(*args)
        self.covered.append(self.journal.last_seq)
        future = self.loop.create_future()
        self.open.append(future)
        return future

    def finish(self) -> None:
        if self.open:
            self.finished.append(self.covered[len(self.finished)])
            self.open.pop(0).set_result(None)


async def interleave(directory: Path, ops: list[Op], monkeypatch: pytest.MonkeyPatch) -> None:
    journal = await Journal.open(directory, fsync=FsyncMode.ALWAYS, start_seq=0, on_fatal=print)
    loop = asyncio.get_running_loop()
    passes = Passes(loop, journal)
    monkeypatch.setattr(loop, "run_in_executor", passes)
    commits: list[tuple[int, asyncio.Task[None]]] = []
    acked: dict[int, int] = {}  # commit index -> passes finished when it returned

    def done_at(index: int) -> Callable[[asyncio.Task[None]], None]:
        def record(task: asyncio.Task[None]) -> None:
            if not task.cancelled():
                acked[index] = len(passes.finished)

        return record

    for op, n in ops:
        if op == "append":
            journal.append(SetMeta(paused=bool(n % 2)))
        elif op == "commit":
            task = asyncio.ensure_future(journal.commit())
            task.add_done_callback(done_at(len(commits)))
            commits.append((journal.last_seq, task))
        elif op == "cancel" and commits:
            commits[n % len(commits)][1].cancel()
        elif op == "finish":
            passes.finish()
        for _ in range(n % 3 + 1):
            await asyncio.sleep(0)
        check(commits, acked, passes)
    for _ in range(4 * len(commits) + 4):  # run the passes out: every commit ends
        passes.finish()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    check(commits, acked, passes)
    assert all(task.done() for _, task in commits)
    assert not passes.open
    monkeypatch.undo()
    await journal.close()


def check(
    commits: list[tuple[int, asyncio.Task[None]]], acked: dict[int, int], passes: Passes
) -> None:
    for index, (target, task) in enumerate(commits):
        if index not in acked:
            continue
        assert task.done()
        assert task.exception() is None
        # The passes applied before it returned: one of them covered its record.
        assert max(passes.finished[: acked[index]], default=0) >= target, (index, target)
    assert passes.covered == sorted(passes.covered)  # a pass covers all before it


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_every_commit_returns_only_after_a_pass_covering_its_record(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Op]
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        asyncio.run(interleave(tmp_path_factory.mktemp("j"), ops, monkeypatch))


async def test_commits_that_arrive_during_a_pass_share_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group commit: 31 commits whose records came after the pass in flight started all
    wait for the NEXT pass, and that one pass acknowledges them all."""
    journal = await Journal.open(tmp_path, fsync=FsyncMode.ALWAYS, start_seq=0, on_fatal=print)
    passes = Passes(asyncio.get_running_loop(), journal)
    monkeypatch.setattr(asyncio.get_running_loop(), "run_in_executor", passes)
    journal.append(SetMeta(paused=True))
    first = asyncio.ensure_future(journal.commit())
    await asyncio.sleep(0)
    later = []
    for _ in range(31):
        journal.append(SetMeta(paused=False))
        later.append(asyncio.ensure_future(journal.commit()))
    await asyncio.sleep(0)
    passes.finish()  # the first pass covered record 1 only
    for _ in range(3):
        await asyncio.sleep(0)
    assert first.done()
    assert not any(task.done() for task in later)
    assert len(passes.covered) == 2
    assert passes.covered[1] == 32
    passes.finish()
    await asyncio.wait_for(asyncio.gather(*later), 2)
    assert journal.synced_seq == 32
    monkeypatch.undo()
    await journal.close()
