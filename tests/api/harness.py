"""The in-process HTTP API that tests talk to (no tests of its own).

``running_api()`` builds a Scheduler on a FakeClock with a few python tasks, starts it, wraps it
in ``create_app`` and an in-process aiohttp test client bound to 127.0.0.1. The ``api`` fixture
(tests/conftest.py) is that, with the options of the ``api_options`` fixture, which a module
overrides to change them. ``Api.state()`` captures everything a request could change, so tests
can assert that a bad request changed nothing. ``app_for`` is the app alone, for a test that
brings its own Scheduler; ``Stream`` reads ``GET /api/events``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from scheduler.api.app import create_app
from scheduler.api.keys import DaemonState, Phase
from scheduler.config import Config, PersistenceConfig, SchedulerConfig, ServerConfig, StaticJob
from scheduler.model import FsyncMode
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock

SEOUL = ZoneInfo("Asia/Seoul")
T0 = datetime(2030, 1, 7, 9, 0, tzinfo=SEOUL).timestamp()  # a Monday, 09:00 in Seoul
TOKEN = "canary-7f3a9c-token-value"


def seoul(instant: float) -> str:
    return datetime.fromtimestamp(instant, SEOUL).isoformat(timespec="milliseconds")


class ApiOptions(TypedDict, total=False):
    """What ``running_api`` takes; the ``api_options`` fixture returns one."""

    token: str | None
    host: str
    cors_origins: tuple[str, ...]
    heartbeat: float
    phase: Phase
    queue_size: int | None
    static_jobs: tuple[StaticJob, ...]


def daemon_state(phase: Phase = Phase.RUNNING) -> DaemonState:
    """The daemon's state as the app sees it once the scheduler has loaded its jobs."""
    state = DaemonState()
    state.phase = phase
    state.loaded = True
    return state


def app_for(sched: Scheduler, **options: Any) -> web.Application:
    """``create_app`` for a running daemon, with ``options`` (token, heartbeat...)."""
    return create_app(sched, daemon_state(), **options)


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


class Stream:
    """Reads an event stream block by block (a block ends at a blank line)."""

    def __init__(self, resp: ClientResponse) -> None:
        self.resp = resp

    async def block(self) -> dict[str, Any] | None:
        fields: dict[str, Any] = {}
        comments: list[str] = []
        while True:
            line = await asyncio.wait_for(self.resp.content.readline(), 2.0)
            if not line:
                return None  # the server ended the stream
            text = line.decode().rstrip("\r\n")
            if not text:
                if fields or comments:
                    return {**fields, "comments": comments}
                continue
            if text.startswith(":"):
                comments.append(text[1:].strip())
                continue
            key, _, value = text.partition(": ")
            fields[key] = value

    async def next(self) -> dict[str, Any] | None:
        """The next event, skipping heartbeats, ``data`` decoded; None at the end."""
        while (block := await self.block()) is not None:
            if "event" in block:
                block["data"] = msgspec.json.decode(block["data"])
                return block
        return None

    async def event(self) -> dict[str, Any]:
        event = await self.next()
        assert event is not None, "the stream ended"
        return event


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
    state = daemon_state(phase)
    app = create_app(sched, state, token=token, heartbeat=heartbeat)
    async with serving(sched, app=app, state=state, token=token) as api:
        yield api


@asynccontextmanager
async def serving(
    sched: Scheduler,
    *,
    app: web.Application | None = None,
    state: DaemonState | None = None,
    token: str | None = None,
    before_start: Callable[[Api], None] | None = None,
) -> AsyncIterator[Api]:
    """``sched`` (on a FakeClock) with the test tasks ``work`` (records its payload), ``gated``
    (waits for ``api.gate``) and ``broken`` (raises), started, with a client of ``app`` (by
    default its plain API); ``before_start`` registers more. Everything stops after, as a
    daemon stops: no grace, a run in flight is interrupted."""
    assert isinstance(sched.clock, FakeClock)
    state = state or daemon_state()
    app = app or app_for(sched)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app, host="127.0.0.1"))
    api = Api(client, sched, sched.clock, state, token)

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
    if before_start is not None:
        before_start(api)
    await sched.start()
    await client.start_server()
    try:
        yield api
    finally:
        sched.hub.close_all()
        await client.close()
        await sched.stop(grace=0)
        api.gate.set()  # after the stop: a gated run in flight is interrupted, not finished


@asynccontextmanager
async def journalled_api(
    state_dir: Path, fsync: FsyncMode
) -> AsyncIterator[tuple[Scheduler, TestClient[web.Request, web.Application]]]:
    """A scheduler on the real clock journalling to ``state_dir`` (its task ``t`` does
    nothing), and a client of its API without a token."""
    config = Config(persistence=PersistenceConfig(dir=str(state_dir), fsync=fsync))
    sched = Scheduler(config, environ={})
    sched.register_task("t", lambda payload: None)
    await sched.start()
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(app_for(sched, token=None), host="127.0.0.1")
    )
    await client.start_server()
    try:
        yield sched, client
    finally:
        await client.close()
        await sched.stop(grace=0)
