"""Whatever a task returns, the end of its run is journalled and the daemon stays up."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scheduler.config import Config, FsyncMode, PersistenceConfig
from scheduler.engine.results import storable_result
from scheduler.model import JobStatus
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Seoul")).timestamp()


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"a": [value]}
    return value


class Unencodable:
    pass


HOSTILE = [
    pytest.param(nested(2000), "nested deeper than", id="deep"),
    pytest.param({"blob": "x" * 200_000}, "byte limit", id="large"),
    pytest.param({"object": Unencodable()}, "TypeError", id="unencodable"),
]


@pytest.mark.parametrize(("result", "note"), HOSTILE)
def test_a_result_the_journal_cannot_hold_becomes_a_note(result: Any, note: str) -> None:
    kept = storable_result(result)
    assert isinstance(kept, str)
    assert note in kept


@pytest.mark.parametrize(("result", "note"), HOSTILE)
async def test_a_hostile_result_is_journalled_without_a_crash_and_survives_a_restart(
    tmp_path: Path, result: Any, note: str
) -> None:
    clock = FakeClock(T0)
    config = Config(persistence=PersistenceConfig(dir=str(tmp_path), fsync=FsyncMode.NEVER))
    sched = Scheduler(config, clock=clock)

    async def reply(payload: Any) -> Any:
        return result

    sched.register_task("reply", reply)
    await sched.start()
    ref = await sched.create_task("reply", None)
    await clock.advance(1)
    job = sched.service.get(ref.id)
    assert job.status is JobStatus.COMPLETED
    assert isinstance(job.result, str)  # a note or a cut text, not the value
    assert len(job.result) <= 65_600, note  # bounded
    await sched.stop(grace=0)
    # and it survives a restart: the journal holds what was stored
    again = Scheduler(config, clock=clock)
    again.register_task("reply", reply)
    await again.start()
    assert again.service.get(ref.id).result == job.result
    await again.stop(grace=0)


def test_ordinary_results_are_kept_as_they_are() -> None:
    value = {"rows": [1, 2, 3], "nested": nested(10)}
    assert storable_result(value) is value
    assert storable_result("short") == "short"
    assert storable_result(None) is None
    assert storable_result("y" * 70_000).endswith("…[truncated]")
