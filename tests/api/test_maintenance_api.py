"""``GET /api/maintenance`` and the 409 of a run-now inside a window, through the in-process
HTTP API on the fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator, FormatChecker

from scheduler.api.app import create_app
from scheduler.api.openapi import document
from scheduler.config import Config, SchedulerConfig
from scheduler.maintenance import WindowSpec
from scheduler.runtime.library import Scheduler
from tests.api.harness import T0, TOKEN, Api, daemon_state
from tests.fakes import FakeClock

BACKUP = WindowSpec(
    name="backup", cron="30 9 * * *", duration=3600.0, timezone="Asia/Seoul", tasks=("work",)
)
WEEKLY = WindowSpec(
    name="weekly",
    rrule="FREQ=WEEKLY;BYDAY=SU;BYHOUR=3;BYMINUTE=0",
    duration=7200.0,
    timezone="America/New_York",
)


def backup(day: int) -> dict[str, Any]:
    return {
        "name": "backup",
        "start": f"2030-01-{day:02d}T09:30:00.000+09:00",
        "end": f"2030-01-{day:02d}T10:30:00.000+09:00",
        "timezone": "Asia/Seoul",
        "tasks": ["work"],
    }


NEXT_WEEKLY = {
    "name": "weekly",
    "start": "2030-01-13T03:00:00.000-05:00",
    "end": "2030-01-13T05:00:00.000-05:00",
    "timezone": "America/New_York",
    "tasks": None,
}


@asynccontextmanager
async def api_with_windows(
    *windows: WindowSpec, token: str | None = None, gate: asyncio.Event | None = None
) -> AsyncIterator[Api]:
    """The API on the fake clock with ``windows``; task ``work`` waits for ``gate`` if given."""
    clock = FakeClock(T0)  # 2030-01-07 09:00 in Seoul, a Monday
    config = Config(scheduler=SchedulerConfig(timezone="Asia/Seoul"), maintenance=windows)
    sched = Scheduler(config, clock=clock, persistence=False, environ={})

    async def work(payload: Any) -> Any:
        if gate is not None:
            await gate.wait()
        return {"ok": True}

    sched.register_task("work", work)
    sched.register_task("other", work)
    await sched.start()
    state = daemon_state()
    app = create_app(sched, state, token=token)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield Api(client, sched, clock, state, token)
    finally:
        await client.close()
        await sched.stop(grace=0)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with api_with_windows(BACKUP, WEEKLY) as made:
        yield made


async def test_it_lists_the_next_windows_and_those_of_the_next_24_hours(api: Api) -> None:
    status, body = await api.call("GET", "/api/maintenance")
    assert status == 200, body
    assert body == {"current": [], "next": [backup(7), NEXT_WEEKLY], "upcoming": [backup(7)]}


async def test_hours_reaches_further_and_openings_are_by_start(api: Api) -> None:
    status, body = await api.call("GET", "/api/maintenance?hours=168")
    assert status == 200, body
    doc = document()
    schema = {"components": doc["components"], "$ref": "#/components/schemas/Maintenance"}
    Draft202012Validator(schema, format_checker=FormatChecker()).validate(body)
    assert body["upcoming"] == [*(backup(day) for day in range(7, 14)), NEXT_WEEKLY]


async def test_an_open_window_is_current_and_the_next_one_follows_it(api: Api) -> None:
    await api.clock.advance(45 * 60)  # 09:45
    status, body = await api.call("GET", "/api/maintenance?hours=1")
    assert status == 200, body
    assert body == {
        "current": [backup(7)],
        "next": [backup(8), NEXT_WEEKLY],
        "upcoming": [backup(7)],
    }


@pytest.mark.parametrize("hours", ["0", "169", "-1", "1.5", "day"])
async def test_hours_out_of_bounds_is_a_400_naming_it(api: Api, hours: str) -> None:
    status, body = await api.call("GET", f"/api/maintenance?hours={hours}")
    assert status == 400, body
    assert body["error"]["field"] == "hours"
    assert body["error"]["message"].startswith("hours: expected an integer from 1 to 168")


async def test_an_unknown_query_parameter_is_a_400(api: Api) -> None:
    status, body = await api.call("GET", "/api/maintenance?days=2")
    assert status == 400, body
    assert body["error"]["field"] == "days"


async def test_without_windows_every_list_is_empty() -> None:
    async with api_with_windows() as bare:
        status, body = await bare.call("GET", "/api/maintenance")
    assert (status, body) == (200, {"current": [], "next": [], "upcoming": []})


async def test_it_needs_the_token_like_the_job_list() -> None:
    async with api_with_windows(BACKUP, token=TOKEN) as guarded:
        status, body = await guarded.call("GET", "/api/maintenance", auth=False)
        assert status == 401, body
        status, _ = await guarded.call("GET", "/api/maintenance")
        assert status == 200


async def test_run_now_of_a_held_task_is_a_409_naming_the_window_and_its_end(api: Api) -> None:
    job = await api.create(task="work", schedule={"at": "2030-01-08T09:00"})
    other = await api.create(task="other", schedule={"at": "2030-01-08T09:00"})
    await api.clock.advance(45 * 60)
    before = api.state()
    status, body = await api.call("POST", f"/api/jobs/{job['id']}/run")
    assert status == 409, body
    assert body["error"]["code"] == "maintenance"
    assert body["error"]["message"] == (
        "task work is inside maintenance window backup until 2030-01-07T10:30:00+09:00: "
        "its runs start when the window closes"
    )
    assert api.state() == before
    status, body = await api.call("POST", f"/api/jobs/{other['id']}/run")
    assert status == 202, body
    await api.clock.advance(45 * 60)  # 10:30: the window has closed
    status, body = await api.call("POST", f"/api/jobs/{job['id']}/run")
    assert status == 202, body


async def test_a_refused_run_now_stops_no_run_in_flight_even_with_cancel_other() -> None:
    gate = asyncio.Event()
    async with api_with_windows(BACKUP, gate=gate) as api:
        job = await api.create(task="work", schedule={}, overlap="cancel_other")  # runs at 09:00
        await api.run_until_running(job["id"])
        await api.clock.advance(45 * 60)  # 09:45, inside the window, the run still going
        status, body = await api.call("POST", f"/api/jobs/{job['id']}/run")
        assert (status, body["error"]["code"]) == (409, "maintenance")
        gate.set()
        for _ in range(50):
            await api.clock.advance(0)
            if (await api.get(job["id"]))["status"] == "completed":
                break
        status, runs = await api.call("GET", f"/api/jobs/{job['id']}/runs")
        outcomes = [run["outcome"] for run in runs["items"]]
        assert outcomes == ["success"]  # the run in flight was not cancelled by the refusal
