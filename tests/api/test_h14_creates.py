"""Issue 14: durable creates over HTTP, faster and exactly as durable and as strict as before.

- Concurrent creates share fsync passes (group commit) and none is answered before its
  record is on disk: with fsync held, 32 creates wait; released, one or two passes answer all
  32, and the state directory recovers every one of them.
- A create compiles its schedule once (the compilation that validated it is the job's), also
  through the HTTP edge and the engine's seeding.
- A delay is still checked exactly: any valid one gives ``scheduledTime`` = now + delay, any
  invalid one a 400 naming ``schedule.delay``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scheduler.ids
import scheduler.jobspec
import scheduler.schedules
import scheduler.triggers
from scheduler.durations import MAX_DURATION
from scheduler.model import FsyncMode
from scheduler.persistence.recovery import load_state
from tests.api.harness import Api, journalled_api, running_api, seoul

CREATES = 32


async def test_concurrent_creates_wait_for_their_fsync_and_share_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dir = tmp_path / "state"
    async with journalled_api(state_dir, FsyncMode.ALWAYS) as (sched, client):
        gate = threading.Event()
        synced: list[int] = []
        real_fsync = os.fsync

        def held_fsync(fd: int) -> None:
            assert gate.wait(10)
            synced.append(fd)
            real_fsync(fd)

        async def create(i: int) -> tuple[int, Any]:
            body = {"task": "t", "schedule": {"delay": "1h"}, "payload": {"i": i}}
            async with client.post("/api/jobs", json=body) as resp:
                return resp.status, await resp.json()

        journal = sched.persistence.journal
        assert journal is not None
        start = journal.last_seq
        try:
            monkeypatch.setattr(os, "fsync", held_fsync)
            creates = [asyncio.ensure_future(create(i)) for i in range(CREATES)]
            for _ in range(500):  # until every record is written (fsync is held)
                if journal.last_seq - start == CREATES:
                    break
                await asyncio.sleep(0.002)
            assert journal.last_seq - start == CREATES
            assert not any(task.done() for task in creates)  # nothing acknowledged before fsync
            gate.set()
            answers = await asyncio.wait_for(asyncio.gather(*creates), 10)
            monkeypatch.undo()
            assert [status for status, _ in answers] == [201] * CREATES
            segment_syncs = [fd for fd in synced if fd != journal._dir_fd]
            assert len(segment_syncs) <= 2  # the pass held first, then one for all the rest
            recovered = load_state(state_dir)
            ids = {job["id"] for _, job in answers}
            assert len(ids) == CREATES
            assert ids <= {scheduler.ids.encode(job_id) for job_id in recovered.jobs}
        finally:
            gate.set()
            monkeypatch.undo()


class Compilations:
    """Counts schedule compilations wherever they happen (spec, engine, config checks)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = scheduler.triggers.compile_schedule

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        for module in (scheduler.triggers, scheduler.jobspec, scheduler.schedules):
            monkeypatch.setattr(module, "compile_schedule", counted)


@pytest.mark.parametrize(
    ("schedule", "compiled"),
    [
        ({"delay": "1h"}, 0),  # certain to compile, and a one-off needs no trigger: none
        ({"delay": 0}, 0),
        (None, 0),
        ({"cron": "0 9 * * 1-5"}, 1),
        ({"every": "6h"}, 1),
        ({"at": "2031-01-01T09:00"}, 1),
        ({"repeat": {"freq": "weekly", "weekdays": ["mon"], "time": "09:00"}}, 1),
    ],
    ids=["delay", "zero-delay", "immediate", "cron", "every", "at", "repeat"],
)
async def test_a_create_over_http_compiles_its_schedule_at_most_once(
    monkeypatch: pytest.MonkeyPatch, schedule: dict[str, Any] | None, compiled: int
) -> None:
    async with running_api() as api:
        counter = Compilations(monkeypatch)
        job = {"task": "gated"} if schedule is None else {"task": "work", "schedule": schedule}
        status, body = await api.call("POST", "/api/jobs", json=job)
        assert status == 201, body
        assert counter.count == compiled


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    delay=st.one_of(
        st.integers(0, int(MAX_DURATION)),
        st.floats(0, MAX_DURATION, allow_nan=False),
        st.integers(0, 36500).map(lambda d: f"{d}d"),
        st.integers(0, 10**6).map(lambda s: f"{s}s"),
    )
)
def test_any_valid_delay_runs_that_long_after_now(delay: Any) -> None:
    async def check() -> None:
        async with running_api() as api:
            created = await api.create(schedule={"delay": delay})
            seconds = _seconds(delay)
            assert created["scheduledTime"] == seoul(api.clock.time() + seconds)

    asyncio.run(check())


@pytest.mark.parametrize(
    "delay", [-1, "-5s", True, "soon", "36501d", 10**40, [], {"h": 1}, "1h" * 40]
)
async def test_an_invalid_delay_is_a_400_naming_it(api: Api, delay: Any) -> None:
    before = api.state()
    status, body = await api.call(
        "POST", "/api/jobs", json={"task": "work", "schedule": {"delay": delay}}
    )
    assert status == 400, body
    assert body["error"]["field"] == "schedule.delay"
    assert "schedule.delay" in body["error"]["message"]
    assert api.state() == before


async def test_a_delay_in_an_unknown_zone_is_a_400_naming_the_zone(api: Api) -> None:
    status, body = await api.call(
        "POST",
        "/api/jobs",
        json={"task": "work", "schedule": {"delay": "1h"}, "timezone": "Mars/Olympus"},
    )
    assert status == 400, body
    assert body["error"]["field"] == "timezone"


def _seconds(delay: Any) -> float:
    if isinstance(delay, str):
        return float(delay[:-1]) * (86400 if delay.endswith("d") else 1)
    return float(delay)
