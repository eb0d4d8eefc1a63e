"""Issue 11, siblings the audit did not try: other places where a client's absurd value could
reach a parser or a renderer, each answered with a 4xx naming what was wrong, never a 500 or a
traceback.

- integers too large for ``int()`` (more than 4,300 digits) or for the range, in every query
  parameter that takes a number and in ``Last-Event-ID``;
- job ids that are too long, negative or not hex, in every route that takes one;
- nesting past 64 levels through every route that reads a body (not only ``POST /api/jobs``);
- an over-long request line and too many header lines, at the guarded HTTP edge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from aiohttp import web

from scheduler.api.errors import MAX_MESSAGE_CHARS
from scheduler.api.server import GuardedRunner, ServerLimits
from scheduler.config import Config, SchedulerConfig
from scheduler.runtime.library import Scheduler
from tests.api.harness import T0, Api, app_for
from tests.fakes import FakeClock

JSON = {"Content-Type": "application/json"}
HUGE_INT = "9" * 5000  # int() refuses more than 4,300 digits
BIG_INT = str(10**40)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/api/jobs?page={HUGE_INT}", "page"),
        (f"/api/jobs?page={BIG_INT}", "page"),
        (f"/api/jobs?limit={HUGE_INT}", "limit"),
        ("/api/jobs?limit=1e309", "limit"),
        ("/api/jobs?page=-1", "page"),
        ("/api/jobs?page=%00", "page"),
    ],
)
async def test_an_absurd_number_in_a_list_query_is_a_400_naming_it(
    api: Api, path: str, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    status, body = await api.call("GET", path)
    assert status == 400, body
    assert body["error"]["field"] == field
    assert len(body["error"]["message"]) < 400
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("n", [HUGE_INT, BIG_INT, "0", "1e3", "-5"])
async def test_an_absurd_count_of_next_runs_is_a_400_naming_n(api: Api, n: str) -> None:
    job = await api.create(schedule={"every": "1h"})
    status, body = await api.call("GET", f"/api/jobs/{job['id']}/next?n={n}")
    assert status == 400, body
    assert body["error"]["field"] == "n"
    assert len(body["error"]["message"]) < 400


@pytest.mark.parametrize("value", [HUGE_INT, "-1", "x"])
async def test_an_absurd_last_event_id_is_a_400(api: Api, value: str) -> None:
    status, body = await api.call("GET", "/api/events", headers={"Last-Event-ID": value})
    assert status == 400, body
    assert body["error"]["field"] == "Last-Event-ID"


async def test_a_last_event_id_from_far_in_the_future_still_streams(api: Api) -> None:
    async with api.client.get("/api/events", headers={"Last-Event-ID": BIG_INT}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
    api.sched.hub.close_all()


_ID_ROUTES = [
    ("GET", "/api/jobs/{}"),
    ("GET", "/api/jobs/{}/runs"),
    ("GET", "/api/jobs/{}/next"),
    ("PATCH", "/api/jobs/{}"),
    ("DELETE", "/api/jobs/{}"),
    ("POST", "/api/jobs/{}/run"),
    ("POST", "/api/jobs/{}/cancel"),
    ("POST", "/api/jobs/{}/pause"),
    ("POST", "/api/jobs/{}/resume"),
    ("POST", "/api/jobs/{}/retry"),
]


@pytest.mark.parametrize(("method", "route"), _ID_ROUTES)
@pytest.mark.parametrize("job_id", ["f" * 5000, "-1", "zz", "0" * 16, "ffffffffffffffff"])
async def test_an_absurd_job_id_is_a_404_on_every_route(
    api: Api, method: str, route: str, job_id: str
) -> None:
    body: dict[str, Any] | None = {} if method in ("PATCH", "POST") else None
    status, answer = await api.call(method, route.format(job_id), json=body)
    assert status == 404, answer
    assert len(answer["error"]["message"]) <= MAX_MESSAGE_CHARS  # never the whole id back


def nested(depth: int) -> Any:
    """JSON nested ``depth`` levels, as bytes a client can send (too deep to encode)."""
    return msgspec.Raw(b"[" * depth + b"1" + b"]" * depth)


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("PATCH", "/api/jobs/{}", {"payload": nested(65)}),
        ("PUT", "/api/workflows/wf/schedule", {"task": "work", "payload": nested(65)}),
        ("POST", "/api/jobs/{}/pause", {"reason": nested(65)}),
        ("POST", "/api/jobs/{}/resume", {"catchUp": nested(65)}),
        ("POST", "/api/scheduler/clean", {"status": nested(65)}),
        ("PATCH", "/api/jobs/{}", {"retry": {"delay": nested(5000)}}),
    ],
)
async def test_nesting_past_the_limit_is_a_400_on_every_route_that_reads_a_body(
    api: Api, method: str, route: str, body: Any, caplog: pytest.LogCaptureFixture
) -> None:
    job = await api.create(schedule={"every": "1h"})
    before = api.state()
    status, answer = await api.call(
        method, route.format(job["id"]), data=msgspec.json.encode(body), headers=JSON
    )
    assert status == 400, answer
    assert answer["error"]["field"] == "body"
    assert api.state() == before
    assert "Traceback" not in caplog.text


@asynccontextmanager
async def guarded_port() -> AsyncIterator[int]:
    """The app behind the daemon's guarded HTTP edge, on a loopback port."""
    sched = Scheduler(Config(scheduler=SchedulerConfig()), clock=FakeClock(T0), persistence=False)
    await sched.start()
    runner = GuardedRunner(app_for(sched), limits=ServerLimits(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site.port
    finally:
        await runner.cleanup()
        await sched.stop(grace=0)


async def exchange(data: bytes) -> tuple[int, Any]:
    """Send ``data`` on a new connection; the status and JSON body of the answer."""
    async with guarded_port() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), msgspec.json.decode(body)


async def test_an_over_long_request_line_is_refused_without_echo_or_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    status, body = await exchange(
        b"GET /api/jobs?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    assert status == 431  # past aiohttp's 8,190 bytes for the request line
    assert body["error"] == {
        "code": "header_too_large",
        "message": "request line or header too large",
        "field": None,
    }
    assert "Traceback" not in caplog.text


async def test_too_many_header_lines_are_refused_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(200))  # aiohttp takes 128
    status, body = await exchange(
        b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n"
    )
    assert status == 400
    assert body["error"]["code"] == "invalid"
    assert "Traceback" not in caplog.text


_JOB_CHANGES = [
    ("DELETE", "/api/jobs/{}"),
    ("PATCH", "/api/jobs/{}"),
    ("POST", "/api/jobs/{}/run"),
    ("POST", "/api/jobs/{}/cancel"),
    ("POST", "/api/jobs/{}/pause"),
    ("DELETE", "/api/workflows/wf/schedule"),
]


@pytest.mark.parametrize(("method", "route"), _JOB_CHANGES)
@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}],
    ids=["cross-site", "origin"],
)
async def test_a_change_to_one_job_from_another_site_is_refused(
    api: Api, method: str, route: str, headers: dict[str, str]
) -> None:
    """``test_http_csrf.py`` sends the scheduler-wide changes and creates; these are the routes
    that change one job (a DELETE needs no body, so no media type stops it)."""
    job = await api.create(schedule={"every": "1h"}, workflowId="wf")
    before = api.state()
    body: dict[str, Any] | None = {} if method == "PATCH" else None
    status, answer = await api.call(method, route.format(job["id"]), json=body, headers=headers)
    assert status == 403, answer
    assert api.state() == before
