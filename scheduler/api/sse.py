"""``GET /api/events``: live events as Server-Sent Events.

Each event goes out as ``id: <n>``, ``event: <type>`` and ``data: {"jobId": ..., ...}``. A comment
line (``: ping``) every ``heartbeat`` seconds keeps proxies from closing an idle stream and
notices a client that has gone. ``?jobId=`` keeps one job's events. A client that reconnects with
``Last-Event-ID`` first gets what it missed from the hub's bounded ring.

Bounded on every side, so that streams can never starve the API: at most ``max_streams`` are
open at once (past that, 503 with ``Retry-After``); a stream wakes once per loop turn and writes
everything published since in one write, not one write per event; a client whose socket takes
no data for ``SEND_TIMEOUT`` seconds is cut off. A client too slow to keep up is sent one
``stream-overflow`` event (no id, so its last event id stays that of the last event it got) and
the stream ends; it can reconnect and resume from the ring. At shutdown the daemon closes every
stream first, so stopping never waits for idle clients.
"""

from __future__ import annotations

import asyncio
from typing import Final

import msgspec
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from scheduler.api.errors import error_response
from scheduler.api.inputs import admitting
from scheduler.api.keys import SCHEDULER, SETTINGS
from scheduler.errors import InvalidInput, SchedulerError
from scheduler.events import Published, Subscription
from scheduler.ids import decode

routes = web.RouteTableDef()

OVERFLOW_EVENT = "stream-overflow"
#: Seconds a write to one client may wait for its socket before the client is cut off.
SEND_TIMEOUT: Final = 10.0
#: Seconds a client refused for too many streams is asked to wait before it tries again.
RETRY_AFTER: Final = 5
_encode = msgspec.json.Encoder().encode


class EventStream(EventSourceResponse):
    """An SSE response that writes a batch of events in one write."""

    async def send_events(self, events: list[Published]) -> None:
        """Raises TimeoutError (and aborts the connection) past ``send_timeout``."""
        payload = b"".join(event.frame() for event in events)
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.write(payload)
        except ConnectionResetError:
            self.stop_streaming()
            raise
        except TimeoutError:
            self.stop_streaming()
            self._abort_transport()  # a stalled peer never drains: do not wait for it
            raise


@routes.get("/api/events")
async def events(request: web.Request) -> web.StreamResponse:
    admitting(request)
    last_id = _last_event_id(request)
    hub = request.app[SCHEDULER].hub
    settings = request.app[SETTINGS]
    if hub.streams >= settings.max_streams:
        refused = error_response(
            503,
            "unavailable",
            f"too many event streams open (at most {settings.max_streams}); retry later",
        )
        refused.headers["Retry-After"] = str(RETRY_AFTER)
        refused.force_close()  # its connection is not kept for another try
        return refused
    sub = hub.stream(_job_filter(request.query.get("jobId")), last_id=last_id)
    resp = EventStream(ping_interval=settings.heartbeat, send_timeout=SEND_TIMEOUT)
    try:
        await resp.prepare(request)
        async with asyncio.TaskGroup() as group:
            group.create_task(_end_when_gone(resp, sub))
            await _pump(resp, sub, last_id)
            resp.stop_streaming()
    finally:
        sub.close()
    return resp


def _last_event_id(request: web.Request) -> int | None:
    text = request.headers.get("Last-Event-ID")
    if text is None or not text.strip():
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise InvalidInput(
            "Last-Event-ID: expected the id of an event from this stream", field="Last-Event-ID"
        )
    return value


async def _end_when_gone(resp: EventSourceResponse, sub: Subscription) -> None:
    """The heartbeat fails once the client has gone: end the subscription with it."""
    await resp.wait()
    sub.close()


async def _pump(resp: EventStream, sub: Subscription, last_id: int | None) -> None:
    while (batch := await sub.get()) is not None:
        try:
            await resp.send_events(batch)
        except (ConnectionError, TimeoutError):
            return
        last_id = batch[-1].id
    if sub.overflowed:
        notice = {
            "message": "this client fell too far behind and was dropped; reconnect to resume",
            "lastEventId": last_id,
        }
        try:
            await resp.send(_encode(notice).decode(), event=OVERFLOW_EVENT)
        except (ConnectionError, TimeoutError):
            return


def _job_filter(text: str | None) -> int | None:
    """``?jobId=``: only that job's events. An id that names no job matches none."""
    if text is None:
        return None
    try:
        return decode(text)
    except SchedulerError:
        return -1  # no job has it
