"""Issue 14: the status card's fast path (``scheduler.api.app.edge_middleware``) skips the
middlewares that do not apply to it and keeps every guarantee they give it.

The reference is the app as it was: the same routes behind the four middlewares run one by one
(``MIDDLEWARES``). Both apps serve one scheduler; every request is sent to both and the answers
must be the same (status, body, headers but ``Date``): Host check, token (the card is open),
CORS for listed origins, ``If-None-Match``, HEAD, a query string (ignored), the error document,
before and after the state is loaded, and the other methods on the card's path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.api import app as app_module
from scheduler.api.app import MIDDLEWARES, create_app
from scheduler.api.errors import Handler, error_middleware
from scheduler.api.keys import DaemonState, Phase
from scheduler.api.security import check_host
from scheduler.config import Config, SchedulerConfig, ServerConfig
from scheduler.runtime.library import Scheduler
from tests.api.harness import T0, TOKEN
from tests.fakes import FakeClock

ALLOWED = "http://widgets.example"

Client = TestClient[web.Request, web.Application]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
Answer = tuple[int, bytes, list[tuple[str, str]]]

#: One request: method, query string, and headers (a None value: header not sent).
REQUESTS = st.tuples(
    st.sampled_from(["GET", "HEAD", "GET", "POST", "OPTIONS", "DELETE"]),
    st.sampled_from(["", "?x=1", "?cache=123&cache=4", "?status=failed"]),
    st.fixed_dictionaries(
        {
            "Host": st.sampled_from(
                [
                    None,
                    "127.0.0.1:8080",
                    "localhost",
                    "[::1]:80",
                    "evil.example",
                    "127.0.0.1.nip.io",
                ]
            ),
            "Origin": st.sampled_from([None, ALLOWED, "http://other.example", "null"]),
            "Authorization": st.sampled_from([None, f"Bearer {TOKEN}", "Bearer wrong", "Basic x"]),
            "If-None-Match": st.sampled_from([None, "*", '"0000000000000000"', "CURRENT"]),
            "Sec-Fetch-Site": st.sampled_from([None, "cross-site", "same-origin"]),
            "Content-Type": st.sampled_from([None, "text/plain", "application/json"]),
            "Access-Control-Request-Method": st.sampled_from([None, "GET", "POST"]),
        }
    ),
)

Request = tuple[str, str, dict[str, str | None]]


def reference_app(sched: Scheduler, state: DaemonState, token: str | None) -> web.Application:
    """The app with the four middlewares run one by one, as before the fast path."""
    app = create_app(sched, state, token=token)
    app.middlewares[:] = list(MIDDLEWARES)
    return app


async def answer(client: Client, request: Request, etag: str) -> Answer:
    method, query, headers = request
    sent = {
        key: (etag if value == "CURRENT" else value)
        for key, value in headers.items()
        if value is not None
    }
    async with client.request(method, "/api/scheduler" + query, headers=sent) as resp:
        body = await resp.read()
        kept = sorted((k, v) for k, v in resp.headers.items() if k not in ("Date", "Server"))
        return resp.status, body, kept


async def both_ways(
    requests: list[Request],
    *,
    token: str | None,
    phase: Phase,
    loaded: bool,
    before: Callable[[Scheduler], Awaitable[Any]] | None = None,
) -> None:
    clock = FakeClock(T0)
    config = Config(
        server=ServerConfig(host="127.0.0.1", cors_origins=(ALLOWED,)),
        scheduler=SchedulerConfig(timezone="Asia/Seoul"),
    )
    sched = Scheduler(config, clock=clock, persistence=False, environ={})
    sched.register_task("work", lambda payload: None)
    await sched.start()
    state = DaemonState()
    state.phase, state.loaded = phase, loaded
    fast: Client = TestClient(TestServer(create_app(sched, state, token=token)))
    slow: Client = TestClient(TestServer(reference_app(sched, state, token)))
    await fast.start_server()
    await slow.start_server()
    try:
        if before is not None:
            await before(sched)
        async with fast.get("/api/scheduler") as resp:
            etag = resp.headers.get("ETag", "")
        for request in requests:
            assert await answer(fast, request, etag) == await answer(slow, request, etag), request
    finally:
        await fast.close()
        await slow.close()
        await sched.stop(grace=0)


@settings(max_examples=20, deadline=None)
@given(
    requests=st.lists(REQUESTS, min_size=1, max_size=12),
    token=st.sampled_from([None, TOKEN]),
    phase=st.sampled_from(list(Phase)),
    loaded=st.booleans(),
)
def test_the_card_answers_every_request_as_the_full_middleware_chain_does(
    requests: list[Request], token: str | None, phase: Phase, loaded: bool
) -> None:
    asyncio.run(both_ways(requests, token=token, phase=phase, loaded=loaded))


def test_the_card_answers_a_job_and_a_failure_as_the_chain_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a job to show, and when rendering fails outright (a bug): the same 200, or the
    same JSON 500 (never a traceback to the client)."""

    async def with_a_job(sched: Scheduler) -> None:
        await sched.create_task("work", schedule={"delay": "1h"})

    plain: Request = ("GET", "", {"Host": "localhost"})
    asyncio.run(
        both_ways([plain], token=TOKEN, phase=Phase.RUNNING, loaded=True, before=with_a_job)
    )

    def broken(*_: Any) -> tuple[bytes, str, Any]:
        raise RuntimeError("rendering failed")

    monkeypatch.setattr("scheduler.api.status._card", broken)
    asyncio.run(both_ways([plain], token=TOKEN, phase=Phase.RUNNING, loaded=True))


async def test_the_card_skips_the_middlewares_that_do_not_apply_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path itself: the card runs the Host check only (and the error middleware
    when it fails); every other route still runs all four middlewares."""
    ran: list[str] = []

    def counting(middleware: Middleware) -> Middleware:
        @web.middleware
        async def wrapper(request: web.Request, handler: Handler) -> web.StreamResponse:
            ran.append(middleware.__name__)
            return await middleware(request, handler)

        wrapper.__name__ = middleware.__name__
        return wrapper

    monkeypatch.setattr(app_module, "MIDDLEWARES", tuple(counting(m) for m in MIDDLEWARES))
    monkeypatch.setattr(app_module, "error_middleware", counting(error_middleware))
    app_module._chained.cache_clear()
    checked: list[str | None] = []

    def counting_host(request: web.Request, settings: Any) -> None:
        checked.append(request.headers.get("Host"))
        check_host(request, settings)

    monkeypatch.setattr(app_module, "check_host", counting_host)
    sched = Scheduler(Config(), clock=FakeClock(T0), persistence=False, environ={})
    await sched.start()
    state = DaemonState()
    state.phase, state.loaded = Phase.RUNNING, True
    client: Client = TestClient(TestServer(create_app(sched, state, token=TOKEN)))
    await client.start_server()
    try:
        async with client.get("/api/scheduler") as resp:
            assert resp.status == 200
        assert ran == []
        assert checked == [f"127.0.0.1:{client.port}"]
        async with client.get("/api/scheduler", headers={"Host": "rebound.example"}) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"]["code"] == "forbidden"
        assert ran == ["error_middleware"]  # the card's error goes through it
        ran.clear()
        async with client.get("/healthz") as resp:
            assert resp.status == 200
        assert ran == [m.__name__ for m in MIDDLEWARES]
        ran.clear()
        async with client.post("/api/scheduler") as resp:  # not the card: the token is checked
            assert resp.status == 401
        assert ran == ["error_middleware", "security_middleware"]
    finally:
        await client.close()
        await sched.stop(grace=0)
        app_module._chained.cache_clear()
