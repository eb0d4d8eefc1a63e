"""The http executor against a real local aiohttp server."""

from __future__ import annotations

import asyncio
import email.utils
import functools
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from scheduler.config import TaskConfig, TaskKind
from scheduler.executors import HttpExecutor, build_executor
from scheduler.executors.http import parse_retry_after
from scheduler.model import Outcome, RunResult
from tests.fakes import run_context

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServerFactory = Callable[..., Awaitable[TestServer]]
Serve = Callable[[Handler], Awaitable[TestServer]]

NOW = 1_800_000_000.0  # the fixed "now" of the fake clock


class FixedClock:
    def time(self) -> float:
        return NOW

    def monotonic(self) -> float:
        return 0.0

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError


make_ctx = functools.partial(
    run_context, task="hook", payload={"email": "a@b.c", "n": [1, 2]}, attempt=2
)


@pytest.fixture
def serve(aiohttp_server: ServerFactory) -> Serve:
    async def start(handler: Handler) -> TestServer:
        app = web.Application()
        app.router.add_route("*", "/hook", handler)
        return await aiohttp_server(app)

    return start


async def run_against(
    server: TestServer, session: aiohttp.ClientSession, **task_fields: Any
) -> RunResult:
    url = task_fields.pop("url", str(server.make_url("/hook")))
    task = TaskConfig(kind=TaskKind.HTTP, url=url, **task_fields)
    executor = HttpExecutor("hook", task, session, clock=FixedClock())
    return await executor.run(make_ctx())


def respond_json(data: Any) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(data)

    return handler


def respond(status: int, text: str = "", **kwargs: Any) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=text, **kwargs)

    return handler


async def test_it_posts_the_run_document_with_an_idempotency_key(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    seen: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        seen["method"] = request.method
        seen["headers"] = request.headers
        seen["body"] = await request.json()
        return web.json_response({"ok": True})

    server = await serve(handler)
    result = await run_against(server, session, headers={"X-Token": "t0k"})

    assert result.outcome is Outcome.SUCCESS
    assert seen["method"] == "POST"
    assert seen["headers"]["Idempotency-Key"] == "01JOB:1800000000000"
    assert seen["headers"]["X-Token"] == "t0k"
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["body"] == {
        "jobId": "01JOB",
        "workflowId": "wf-1",
        "workflowName": "Nightly",
        "payload": {"email": "a@b.c", "n": [1, 2]},
        "attempt": 2,
        "scheduledTime": "2027-01-15T09:00:00+09:00",
    }


async def test_configured_headers_replace_the_defaults_whatever_their_case(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    seen: list[list[str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.getall("Content-Type"))
        return web.Response()

    server = await serve(handler)
    await run_against(server, session, headers={"content-type": "application/vnd.hook+json"})
    assert seen == [["application/vnd.hook+json"]]


async def test_it_sends_the_configured_method(serve: Serve, session: aiohttp.ClientSession) -> None:
    methods: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        methods.append(request.method)
        return web.Response(status=204)

    server = await serve(handler)
    result = await run_against(server, session, method="put")

    assert methods == ["PUT"]
    assert result.outcome is Outcome.SUCCESS
    assert result.result is None


async def test_a_json_response_is_the_parsed_result(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(respond_json({"done": 3, "ids": ["a"]}))
    result = await run_against(server, session)
    assert result.result == {"done": 3, "ids": ["a"]}


async def test_a_text_response_is_the_text_result(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(respond(200, "accepted"))
    result = await run_against(server, session)
    assert result == RunResult(outcome=Outcome.SUCCESS, result="accepted")


async def test_a_huge_response_is_cut_at_the_cap_without_reading_it_all(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    finished = asyncio.Event()
    wrote_everything = False

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal wrote_everything
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        try:
            for _ in range(1024):  # 64 MiB, far more than any socket buffer holds
                await response.write(b"x" * 65536)
            wrote_everything = True
        except ConnectionError:
            pass
        finally:
            finished.set()
        return response

    server = await serve(handler)
    result = await run_against(server, session, max_response_bytes=1000)

    assert result.outcome is Outcome.SUCCESS
    assert result.result == "x" * 1000 + "… [truncated at 1000 bytes]"
    async with asyncio.timeout(5):
        await finished.wait()
    assert not wrote_everything


async def test_a_cut_json_response_is_kept_as_marked_text(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(respond_json({"items": list(range(1000))}))
    result = await run_against(server, session, max_response_bytes=20)
    assert result.result == '{"items": [0, 1, 2, … [truncated at 20 bytes]'


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_a_client_error_is_not_retried(
    serve: Serve, session: aiohttp.ClientSession, status: int
) -> None:
    server = await serve(respond(status, "bad field: email"))
    result = await run_against(server, session)

    assert result.outcome is Outcome.ERROR
    assert result.retryable is False
    assert f"HTTP {status}" in (result.error or "")
    assert "bad field: email" in (result.error or "")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
async def test_timeouts_throttling_and_server_errors_are_retried(
    serve: Serve, session: aiohttp.ClientSession, status: int
) -> None:
    server = await serve(respond(status, "try later"))
    result = await run_against(server, session)

    assert result.outcome is Outcome.ERROR
    assert result.retryable is True
    assert result.retry_after is None
    assert f"HTTP {status}" in (result.error or "")


async def test_the_error_quotes_a_short_excerpt_of_the_body(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(respond(500, "line one\n\n   line two " + "y" * 5000))
    result = await run_against(server, session)

    error = result.error or ""
    assert "HTTP 500 Internal Server Error: line one line two yyy" in error
    assert len(error) < 400


async def test_retry_after_in_seconds_is_reported(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(respond(429, headers={"Retry-After": "120"}))
    result = await run_against(server, session)
    assert result.retry_after == 120.0
    assert result.retryable is True


async def test_retry_after_as_an_http_date_is_reported_from_now(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    date = email.utils.formatdate(NOW + 90, usegmt=True)
    server = await serve(respond(503, headers={"Retry-After": date}))
    result = await run_against(server, session)
    assert result.retry_after == 90.0


async def test_retry_after_is_ignored_on_other_statuses(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(respond(500, headers={"Retry-After": "120"}))
    result = await run_against(server, session)
    assert result.retry_after is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 0.0),
        (" 30 ", 30.0),
        (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),  # a date in the past: now
        (email.utils.formatdate(NOW + 30), 30.0),  # "-0000": a naive date, read as GMT
        ("soon", None),
        ("-5", None),
        (None, None),
    ],
)
def test_retry_after_values(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


async def test_a_redirect_is_not_followed_nor_retried(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(respond(302, headers={"Location": "http://127.0.0.1:1/elsewhere"}))
    result = await run_against(server, session)

    assert result.outcome is Outcome.ERROR
    assert result.retryable is False
    assert "HTTP 302" in (result.error or "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_refused_connection_is_a_retryable_error_without_secrets(
    session: aiohttp.ClientSession,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook?token=s3cret"
    task = TaskConfig(kind=TaskKind.HTTP, url=url, headers={"Authorization": "Bearer hunter2"})
    result = await HttpExecutor("hook", task, session).run(make_ctx())

    assert result.outcome is Outcome.ERROR
    assert result.retryable is True
    error = result.error or ""
    assert "cannot connect to 127.0.0.1" in error
    assert "s3cret" not in error
    assert "hunter2" not in error


async def test_an_error_response_never_echoes_the_headers_or_query(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(respond(500, "boom"))
    url = str(server.make_url("/hook").with_query(token="s3cret"))
    result = await run_against(server, session, url=url, headers={"Authorization": "Bearer x9"})

    error = result.error or ""
    assert error.startswith(f"POST {server.make_url('/hook')}: HTTP 500")
    assert "s3cret" not in error
    assert "x9" not in error


async def test_no_response_within_the_task_timeout_is_a_retryable_error(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    never = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        await never.wait()
        return web.Response()

    server = await serve(handler)
    result = await run_against(server, session, timeout=0.2)

    assert result.outcome is Outcome.ERROR
    assert result.retryable is True
    assert "no complete response within 0.2s" in (result.error or "")


async def test_the_engines_timeout_cancels_the_request(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    never = asyncio.Event()
    arrived = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await never.wait()
        return web.Response()

    server = await serve(handler)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await run_against(server, session)
    assert arrived.is_set()


async def test_build_executor_creates_the_session_lazily_on_first_use(
    serve: Serve, session: aiohttp.ClientSession
) -> None:
    server = await serve(respond(200, "ok"))
    calls: list[int] = []

    def get_session() -> aiohttp.ClientSession:
        calls.append(1)
        return session

    task = TaskConfig(kind=TaskKind.HTTP, url=str(server.make_url("/hook")))
    executor = build_executor("hook", task, session=get_session, env_base={})
    assert calls == []
    result = await executor.run(make_ctx())
    assert result.outcome is Outcome.SUCCESS
    assert calls == [1]
