"""Issue 10, items 1 and 2, exactly as filed: the library scripts that broke the limits.

The properties over random inputs are in ``test_engine_limits.py`` (fake clock) and the real
daemon's checks in ``test_engine_limits_daemon.py``; these replay the two reproductions the
issue gives, number for number, with the real journal (fsync on) where the issue had it on.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from scheduler.config import Config, FsyncMode, PersistenceConfig
from scheduler.engine.queue import TaskRuntime
from scheduler.model import JobStatus
from scheduler.runtime.library import Scheduler
from tests.engine.harness import T0, Meter
from tests.fakes import FakeClock

#: Timers one fake instant may fire before the clock calls it a spin (a correct run of these
#: cases fires a handful per instant).
SPIN = 200


class SpinGuardClock(FakeClock):
    """A fake clock that fails at once when timers keep firing without time moving on: a
    timer re-armed for "now" forever would otherwise hang the test until pytest's timeout."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self._fired: tuple[float, int] = (self.mono, 0)

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        def guarded() -> None:
            at, fired = self._fired
            fired = fired + 1 if at == self.mono else 1
            self._fired = (self.mono, fired)
            if fired > SPIN:
                raise TimerSpin(f"{fired} timers fired at one instant: a timer spins")
            callback()

        return super().call_at(when, guarded)


class TimerSpin(AssertionError):
    """Timers fired again and again at one instant."""


async def advance_until(
    clock: FakeClock, finished: Callable[[], bool], meter: Meter, seconds: float
) -> None:
    """Move the fake clock in small steps, at least ``seconds`` and until ``finished()``: the
    real journal fsyncs in a thread, which the fake clock does not wait for, so give it real
    time too (bounded). On a loaded machine an fsync may take many steps: a run then starts
    later by the fake clock, and the loop goes on until it has ended too."""
    deadline = time.monotonic() + 20
    moved = 0.0
    while moved < seconds or not finished():
        assert time.monotonic() < deadline, meter.starts
        await clock.advance(0.05)
        moved += 0.05
        await asyncio.sleep(0.001)  # real time for the fsync thread to answer the loop


async def test_six_jobs_at_one_instant_run_one_at_a_time_with_the_journal_on(
    tmp_path: Path,
) -> None:
    """Item 1: ``concurrency = 1``, six jobs with the same ``at`` 2 s ahead, each running
    0.6 s, persistence on (the library script of the issue peaked at 4)."""
    clock = FakeClock(T0)
    persistence = PersistenceConfig(dir=str(tmp_path), fsync=FsyncMode.ALWAYS)
    sched = Scheduler(Config(persistence=persistence), clock=clock)
    meter = Meter(clock)
    sched.runtimes["limited"] = TaskRuntime(
        meter.executor("limited", {}, set(), default=0.6), concurrency=1
    )
    await sched.start()
    try:
        at = datetime.fromtimestamp(T0 + 2, UTC).isoformat()
        ids = [(await sched.create_task("limited", schedule={"at": at})).id for _ in range(6)]
        completed = JobStatus.COMPLETED
        await advance_until(
            clock,
            lambda: all(sched.service.get(i).status is completed for i in ids),
            meter,
            2 + 6 * 0.6 + 1,
        )
        assert meter.peak["limited"] == 1
        assert len(meter.starts) == 6
        starts = sorted(mono for mono, _, _ in meter.starts)
        gaps = [later - first for first, later in itertools.pairwise(starts)]
        assert min(gaps) >= 0.6 - 1e-6, starts  # the fake clock rounds through wall time
        assert all(sched.service.get(i).status is JobStatus.COMPLETED for i in ids)
    finally:
        await sched.stop(grace=0)


async def rated_starts(offsets: list[float], count: int, per: float) -> list[float]:
    """Start instants (seconds after the first creation) of immediate jobs of a task limited
    to ``count`` starts per ``per`` seconds, created at ``offsets`` (sorted, seconds)."""
    clock = SpinGuardClock(T0)
    sched = Scheduler(Config(), clock=clock, persistence=False)
    meter = Meter(clock)
    sched.runtimes["rated"] = TaskRuntime(
        meter.executor("rated", {}, set()), rate_limit=(count, per)
    )
    await sched.start()
    try:
        mono0, ids = clock.monotonic(), []
        for offset in offsets:
            await clock.advance(offset - (clock.monotonic() - mono0))
            ids.append((await sched.create_task("rated")).id)
        await clock.advance(per * len(offsets) + 1)
        assert all(sched.service.get(i).status is JobStatus.COMPLETED for i in ids)
        return sorted(mono - mono0 for mono, _, _ in meter.starts)
    finally:
        await sched.stop(grace=0)


def assert_sliding_windows(starts: list[float], count: int, per: float) -> None:
    for first, later in zip(starts, starts[count:], strict=False):
        assert later - first >= per - 1e-9, starts  # never count + 1 starts in one window


async def test_the_burst_of_the_issue_gets_two_starts_per_sliding_window() -> None:
    """Item 2: ``rate_limit = "2/3s"``, immediate jobs created at 0.00, 0.01, then four at
    3.00 s. A bucket that resets at 3.00 let four starts into one 3 s window."""
    starts = await rated_starts([0.0, 0.01, 3.0, 3.0, 3.0, 3.0], 2, 3.0)
    assert len(starts) == 6
    assert starts[:2] == pytest.approx([0.0, 0.01])
    assert_sliding_windows(starts, 2, 3.0)


@settings(max_examples=40, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    offsets=st.lists(st.integers(0, 5000), min_size=1, max_size=8).map(
        lambda ms: sorted(m / 1000 for m in ms)  # creations anywhere, to the millisecond
    ),
    count=st.integers(1, 3),
    per=st.sampled_from([0.5, 1.0, 3.0]),
)
def test_creations_off_the_grid_keep_every_sliding_window(
    offsets: list[float], count: int, per: float
) -> None:
    starts = asyncio.run(rated_starts(offsets, count, per))
    assert len(starts) == len(offsets)
    assert_sliding_windows(starts, count, per)
