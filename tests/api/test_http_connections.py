"""The HTTP edge bounds its connections: idle and half-sent ones are closed, the connection cap
makes room by closing idle ones, oversized or malformed requests are answered without echo
or traceback, and what clients can cause at will is logged at most once per interval.

These run the real protocol (``GuardedRunner`` on a loopback port) with short timeouts;
``tests/api/test_http_stall.py`` runs the same against the daemon under load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from aiohttp import web

from scheduler.api.server import (
    FD_RESERVE,
    GuardedRunner,
    ServerLimits,
    connection_cap,
    throttle_accept_errors,
)
from scheduler.config import Config, SchedulerConfig
from scheduler.observability.logs import Throttled
from scheduler.runtime.library import Scheduler
from tests.api.harness import T0, TOKEN, app_for
from tests.fakes import FakeClock

QUICK = ServerLimits(idle_timeout=0.4, header_timeout=0.2, max_connections=50)


@dataclass
class Served:
    port: int
    runner: GuardedRunner
    sched: Scheduler

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def exchange(self, data: bytes) -> bytes:
        """Send ``data`` on a new connection and read until the server closes it."""
        reader, writer = await self.connect()
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return answer


@asynccontextmanager
async def serving(
    limits: ServerLimits = QUICK, *, token: str | None = None
) -> AsyncIterator[Served]:
    config = Config(scheduler=SchedulerConfig(timezone="Asia/Seoul"))
    sched = Scheduler(config, clock=FakeClock(T0), persistence=False, environ={})

    async def work(payload: Any) -> Any:
        return payload

    sched.register_task("work", work)
    await sched.start()
    app = app_for(sched, token=token, heartbeat=0.05, max_streams=limits.max_streams)
    runner = GuardedRunner(app, limits=limits, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Served(site.port, runner, sched)
    finally:
        sched.hub.close_all()
        await runner.cleanup()
        await sched.stop(grace=0)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> tuple[bytes, float]:
    """Read until the server closes; what it sent and how long that took."""
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), seconds)
    return data, time.monotonic() - started


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> Any:
    return msgspec.json.decode(answer.partition(b"\r\n\r\n")[2])


# --- timeouts --------------------------------------------------------------------------------


async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() -> None:
    async with serving() as served:
        reader, writer = await served.connect()
        data, took = await closed_within(reader, 3)
        assert data == b""
        assert 0.3 <= took < 1.5
        writer.close()


async def test_a_half_sent_request_trickling_bytes_is_closed_after_the_header_timeout() -> None:
    limits = ServerLimits(idle_timeout=30, header_timeout=0.2)
    async with serving(limits) as served:
        reader, writer = await served.connect()

        async def trickle() -> None:
            writer.write(b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            while True:
                await asyncio.sleep(0.05)  # a byte every 50 ms: never idle, never done
                writer.write(b"X")

        sender = asyncio.create_task(trickle())
        try:
            data, took = await closed_within(reader, 3)
        finally:
            sender.cancel()
            writer.close()
        assert data == b""
        assert took < 1.0  # the 30 s idle timeout did not decide it


async def test_a_body_that_never_arrives_is_closed_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serving() as served:
        reader, writer = await served.connect()
        writer.write(
            b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"task"'
        )
        data, took = await closed_within(reader, 3)
        assert took < 1.5
        assert b"201" not in data
        writer.close()
        assert served.sched.store.jobs == {}
    assert "Traceback" not in caplog.text


async def test_a_slow_but_steady_request_is_served() -> None:
    async with serving() as served:
        reader, writer = await served.connect()
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
            writer.write(piece)
            await asyncio.sleep(0.05)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert status_of(head) == 200
        writer.close()


# --- the connection cap ----------------------------------------------------------------------


async def test_past_the_cap_the_oldest_idle_connection_makes_room() -> None:
    limits = ServerLimits(idle_timeout=30, header_timeout=30, max_connections=5)
    async with serving(limits) as served:
        idle = [await served.connect() for _ in range(5)]
        await asyncio.sleep(0.05)
        answer = await served.exchange(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        assert status_of(answer) == 200
        data, _ = await closed_within(idle[0][0], 2)  # the oldest went
        assert data == b""
        assert not idle[-1][0].at_eof()
        for _, writer in idle:
            writer.close()


async def test_when_every_connection_is_busy_a_new_one_is_refused_with_503() -> None:
    limits = ServerLimits(idle_timeout=30, header_timeout=30, max_connections=2)
    async with serving(limits) as served:
        streams = []
        for _ in range(2):
            reader, writer = await served.connect()
            writer.write(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            streams.append(writer)
        answer = await served.exchange(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert status_of(answer) == 503
        assert b"Retry-After: 1" in answer
        assert body_of(answer)["error"]["code"] == "unavailable"
        for writer in streams:
            writer.close()


def test_the_cap_leaves_file_descriptors_for_everything_else() -> None:
    limits = ServerLimits(max_connections=1024)
    assert connection_cap(limits, None) == 1024
    assert connection_cap(limits, 65536) == 1024
    assert connection_cap(limits, 1024) == 1024 - FD_RESERVE
    assert connection_cap(limits, 100) == 16


# --- malformed and oversized requests --------------------------------------------------------


async def test_an_oversized_authorization_header_is_a_401_that_echoes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = (TOKEN * 2000).encode()  # 50 kB: past the parser's 32 KiB line limit
    async with serving(token=TOKEN) as served:
        answer = await served.exchange(
            b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + secret
            + b"\r\nAccept: */*\r\n\r\n"
        )
    assert status_of(answer) == 401
    assert body_of(answer)["error"]["code"] == "unauthorized"
    assert b"WWW-Authenticate: Bearer" in answer
    assert TOKEN.encode() not in answer
    assert TOKEN not in caplog.text
    assert "Traceback" not in caplog.text


async def test_an_oversized_header_sent_in_pieces_is_named_in_a_431() -> None:
    async with serving() as served:
        reader, writer = await served.connect()
        writer.write(b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Junk: ")
        for _ in range(20):
            writer.write(b"j" * 4096)
            await writer.drain()
        answer, _ = await closed_within(reader, 3)
        writer.close()
    assert status_of(answer) == 431
    assert body_of(answer)["error"]["message"] == "request header X-Junk is too large"


async def test_a_malformed_request_is_a_json_400_without_echo() -> None:
    async with serving() as served:
        answer = await served.exchange(
            b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: one\x01two\r\n\r\n"
        )
    assert status_of(answer) == 400
    assert body_of(answer)["error"]["code"] == "invalid"
    assert b"one" not in answer


async def test_a_flood_of_malformed_requests_logs_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving() as served:
        for n in range(30):
            answer = await served.exchange(b"GET /%d HTTP/1.1\r\nHost: \x01\r\n\r\n" % n)
            assert status_of(answer) == 400
    lines = [r for r in caplog.records if r.name.startswith(("scheduler", "aiohttp"))]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "refused a request" in lines[0].getMessage()
    assert "Traceback" not in caplog.text


def test_accept_errors_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        throttled = throttle_accept_errors(loop)
        for _ in range(500):
            loop.call_exception_handler(
                {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(24, "Too many open files"),
                }
            )
    finally:
        loop.close()
    lines = [r for r in caplog.records if "accept" in r.getMessage()]
    assert len(lines) == 1
    assert "Too many open files" in lines[0].getMessage()
    assert lines[0].exc_info is None
    assert throttled.total == 500


def test_a_throttled_line_reports_how_many_were_left_out(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    throttled = Throttled(logging.getLogger("t"), every=10.0, clock=lambda: now[0])
    assert throttled("event %s", "a")
    assert not throttled("event %s", "b")
    assert not throttled("event %s", "c")
    now[0] += 10.0
    assert throttled("event %s", "d")
    assert [r.getMessage() for r in caplog.records] == [
        "event a",
        "event d (and 2 more like it in the last 10s, not logged)",
    ]
