"""The client of ``scheduler jobs`` against a small in-process server: the event stream is read
event by event as it arrives, ends when the server ends it, and gives up at its deadline
however quiet it is; requests send the token and JSON, and a refusal carries the exit code.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from scheduler.cli.exits import CONFLICT, Failure
from scheduler.cli.http import Client, Event, TimedOut
from scheduler.cli.target import Target


class Fake:
    """Records what it was sent; its stream sends ``frames`` and then ends or hangs."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.hang = False
        self.release = asyncio.Event()  # ends a hanging stream (set at teardown)
        self.seen: list[dict[str, Any]] = []

    async def events(self, request: web.Request) -> web.StreamResponse:
        self.seen.append({"query": dict(request.query), **dict(request.headers)})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for frame in self.frames:
            await resp.write(frame)
            await asyncio.sleep(0.01)
        if self.hang:
            await self.release.wait()
        return resp

    async def change(self, request: web.Request) -> web.Response:
        self.seen.append({"body": await request.json(), **dict(request.headers)})
        if request.match_info["id"] == "busy":
            error = {"code": "conflict", "message": "job busy is running", "field": "overlap"}
            return web.json_response({"error": error}, status=409)
        return web.json_response({"id": request.match_info["id"], "status": "paused"})


@pytest.fixture
async def fake() -> AsyncIterator[tuple[Fake, Client]]:
    server = Fake()
    app = web.Application()
    app.router.add_get("/prefix/api/events", server.events)
    app.router.add_post("/prefix/api/jobs/{id}/pause", server.change)
    async with TestServer(app, host="127.0.0.1") as test_server:
        url = str(test_server.make_url("/prefix/"))
        yield server, Client(Target(url, "tok\u00e9n", "--token-file t"))
        server.release.set()


def read_all(client: Client, within: float) -> list[Event]:
    deadline = time.monotonic() + within
    with client.events("/api/events", {"jobId": "j"}, deadline=deadline,
                       monotonic=time.monotonic) as stream:  # fmt: skip
        return list(stream)


async def test_events_are_read_as_they_come_until_the_stream_ends(
    fake: tuple[Fake, Client],
) -> None:
    server, client = fake
    server.frames = [
        b": ping\r\n\r\n",
        b'id: 1\r\nevent: job-progress\r\ndata: {"percent": 50,\r\n',
        b'data: "message": "half"}\r\n\r\n',
        b"event: job-completed\ndata: " + json.dumps({"outcome": "success"}).encode() + b"\n\n",
        b"event: junk\ndata: not json\n\n",
    ]
    events = await asyncio.to_thread(read_all, client, 10.0)
    assert events == [
        Event("job-progress", {"percent": 50, "message": "half"}),
        Event("job-completed", {"outcome": "success"}),
        Event("junk", {}),
    ]
    assert server.seen[0]["query"] == {"jobId": "j"}
    assert server.seen[0]["Accept"] == "text/event-stream"


async def test_a_quiet_stream_gives_up_at_its_deadline(fake: tuple[Fake, Client]) -> None:
    server, client = fake
    server.frames = [b"event: job-started\ndata: {}\n\n"]
    server.hang = True
    got: list[Event] = []

    def read() -> None:
        deadline = time.monotonic() + 0.3
        with client.events("/api/events", {}, deadline=deadline,
                           monotonic=time.monotonic) as stream:  # fmt: skip
            got.extend(stream)

    started = time.monotonic()
    with pytest.raises(TimedOut):
        await asyncio.to_thread(read)
    assert 0.25 < time.monotonic() - started < 5
    assert got == [Event("job-started", {})]


async def test_a_change_is_sent_as_json_with_the_token_and_a_refusal_has_its_code(
    fake: tuple[Fake, Client],
) -> None:
    server, client = fake
    doc = await asyncio.to_thread(client.call, "POST", "/api/jobs/j1/pause", body={"reason": "why"})
    assert doc == {"id": "j1", "status": "paused"}
    assert server.seen[0]["body"] == {"reason": "why"}
    assert server.seen[0]["Content-Type"] == "application/json"
    # Sent as its UTF-8 bytes (what the daemon compares), not refused for not being Latin-1.
    sent = server.seen[0]["Authorization"].encode("utf-8", "surrogateescape")
    assert sent == "Bearer tok\u00e9n".encode()
    with pytest.raises(Failure) as refused:
        await asyncio.to_thread(client.call, "POST", "/api/jobs/busy/pause")
    assert (refused.value.code, refused.value.message) == (CONFLICT, "job busy is running")
    assert server.seen[1]["body"] == {}  # an empty change is still a JSON object
