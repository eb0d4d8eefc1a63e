"""Shared harness for the HTTP API tests (no tests of its own).

``running_api()`` builds a Scheduler on a FakeClock with a few python tasks, starts it, wraps it
in ``create_app`` and an in-process aiohttp test client bound to 127.0.0.1. Each test module
turns it into a fixture. ``Api.state()`` captures everything a request could change, so tests
can assert that a bad request changed nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from scheduler.api.app import create_app
from scheduler.api.keys import DaemonState, Phase
from scheduler.config.load import Config, SchedulerConfig, ServerConfig, StaticJob
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock

SEOUL = ZoneInfo("Asia/Seoul")
T0 = datetime(2030, 1, 7, 9, 0, tzinfo=SEOUL).timestamp()  # a Monday, 09:00 in Seoul
TOKEN = "canary-7f3a9c-token-value"


def seoul(instant: float) -> str:
    return datetime.fromtimestamp(instant, SEOUL).isoformat(timespec="milliseconds")


class Api:
    """The app under test and handles on what it runs."""

    def __init__(
        self,
        client: TestClient[web.Request, web.Application],
        sched: Scheduler,
        clock: FakeClock,
        state: DaemonState,
        token: str | None,
    ) -> None:
        self.client = client
        self.sched = sched
        self.clock = clock
        self.daemon_state = state
        self.token = token
        self.gate = asyncio.Event()  # the "gated" task runs until this is set
        self.calls: list[Any] = []

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**auth, **(extra or {})}

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, Any]:
        sent = self.headers(headers) if auth else dict(headers or {})
        if method in ("POST", "PUT", "PATCH") and json is None and data is None:
            # What the dashboard and any JSON client send with an empty body; tests of the
            # media-type rule pass their own Content-Type (or data).
            sent.setdefault("Content-Type", "application/json")
        kwargs: dict[str, Any] = {"headers": sent}
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        async with self.client.request(method, path, **kwargs) as resp:
            text = await resp.text()
            try:
                body = msgspec.json.decode(text) if text else None
            except msgspec.DecodeError:
                body = text
            return resp.status, body

    async def create(self, **job: Any) -> dict[str, Any]:
        job.setdefault("task", "work")
        status, body = await self.call("POST", "/api/jobs", json=job)
        assert status == 201, body
        return dict(body)

    async def get(self, job_id: str) -> dict[str, Any]:
        status, body = await self.call("GET", f"/api/jobs/{job_id}")
        assert status == 200, body
        return dict(body)

    async def run_until_running(self, job_id: str) -> None:
        for _ in range(50):
            await self.clock.advance(0)
            if (await self.get(job_id))["status"] == "running":
                return
        raise AssertionError(f"job {job_id} did not start")

    def state(self) -> bytes:
        """Every job, every run and the paused flag, as bytes to compare."""
        store = self.sched.store
        return msgspec.json.encode(
            {
                "jobs": sorted(store.jobs.items()),
                "runs": sorted(store.all_runs().items()),
                "paused": store.paused,
            }
        )


@asynccontextmanager
async def running_api(
    *,
    token: str | None = None,
    host: str = "127.0.0.1",
    cors_origins: tuple[str, ...] = (),
    heartbeat: float = 15.0,
    phase: Phase = Phase.RUNNING,
    queue_size: int | None = None,
    static_jobs: tuple[StaticJob, ...] = (),
) -> AsyncIterator[Api]:
    clock = FakeClock(T0)
    config = Config(
        server=ServerConfig(host=host, cors_origins=cors_origins),
        scheduler=SchedulerConfig(timezone="Asia/Seoul"),
        jobs=static_jobs,
    )
    sched = Scheduler(config, clock=clock, persistence=False, environ={})
    if queue_size is not None:
        sched.hub._queue_size = queue_size  # a tiny queue to provoke an overflow
    state = DaemonState()
    state.phase = phase
    state.loaded = True
    app = create_app(sched, state, token=token, heartbeat=heartbeat)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app, host="127.0.0.1"))
    api = Api(client, sched, clock, state, token)

    async def work(payload: Any) -> Any:
        api.calls.append(payload)
        return {"ok": True}

    async def gated(payload: Any) -> Any:
        await api.gate.wait()
        return {"gated": True}

    async def broken(payload: Any) -> Any:
        raise RuntimeError("broken on purpose")

    sched.register_task("work", work)
    sched.register_task("gated", gated)
    sched.register_task("broken", broken)
    await sched.start()
    await client.start_server()
    try:
        yield api
    finally:
        api.gate.set()
        sched.hub.close_all()
        await client.close()
        await sched.stop(grace=0)
