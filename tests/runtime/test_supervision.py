"""Every long-lived task of a scheduler runs in one task group it owns: the engine, the
periodic snapshots and the added services (the daemon's alert sender). If one fails, the
scheduler stops and says so, so that the daemon exits non-zero rather than serve an API in
front of half a scheduler."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from scheduler.config import Config, FsyncMode, PersistenceConfig
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Seoul")).timestamp()


class Recorder:
    """A service that records what happened to it; ``fail`` makes it crash once serving."""

    def __init__(self, name: str, log: list[str], *, fail: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail = fail
        self._closed = asyncio.Event()

    async def serve(self) -> None:
        self.log.append(f"{self.name} serves")
        if self.fail:
            raise RuntimeError(f"{self.name} broke")
        await self._closed.wait()
        self.log.append(f"{self.name} ends")

    async def close(self) -> None:
        self.log.append(f"{self.name} closed")
        self._closed.set()


def snapshots(directory: Path) -> list[Path]:
    return list(directory.glob("snapshot-*.snap"))


def off() -> Config:
    return Config(persistence=PersistenceConfig(enabled=False))


async def test_services_run_from_the_start_and_close_after_the_engine_in_reverse_order() -> None:
    log: list[str] = []
    sched = Scheduler(off(), clock=FakeClock(T0))
    sched.add_service(Recorder("first", log))
    sched.add_service(Recorder("second", log))
    await sched.start()
    await asyncio.sleep(0)
    assert sorted(log) == ["first serves", "second serves"]
    await sched.stop(grace=0)
    closed = [entry for entry in log if entry.endswith("closed")]
    assert closed == ["second closed", "first closed"]  # the reverse of the order of adding
    assert {"first ends", "second ends"} <= set(log)
    assert not sched.running


async def test_a_service_that_fails_stops_the_scheduler_and_is_reported() -> None:
    log: list[str] = []
    reported: list[BaseException | None] = []
    sched = Scheduler(off(), clock=FakeClock(T0))
    sched.on_engine_exit = reported.append
    sched.add_service(Recorder("alerts", log, fail=True))
    await sched.start()
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(reported) == 1
    assert "alerts broke" in repr(reported[0])
    await sched.stop(grace=0)  # still stops cleanly after the failure


async def test_the_periodic_snapshot_runs_in_the_group_and_stops_with_it(tmp_path: Path) -> None:
    config = Config(
        persistence=PersistenceConfig(
            dir=str(tmp_path), fsync=FsyncMode.NEVER, snapshot_interval=0.02
        )
    )
    sched = Scheduler(config, clock=FakeClock(T0))
    await sched.start()
    for _ in range(100):  # bounded: a snapshot within about a second of real time
        if snapshots(tmp_path):
            break
        await asyncio.sleep(0.02)
    assert snapshots(tmp_path)
    await sched.stop(grace=0)
    tasks = {task.get_name() for task in asyncio.all_tasks()}
    assert "snapshots" not in tasks
    assert "scheduler" not in tasks
