"""``GET /api/events``: live events as Server-Sent Events.

Each event goes out as ``id: <n>``, ``event: <type>`` and ``data: {"jobId": ..., ...}``. A comment
line (``: ping``) every ``heartbeat`` seconds keeps proxies from closing an idle stream and
notices a client that has gone. ``?jobId=`` keeps one job's events. A client that reconnects with
``Last-Event-ID`` first gets what it missed from the hub's bounded ring.

A subscriber's queue is bounded: a client too slow to keep up is sent one ``stream-overflow``
event (no id, so its last event id stays that of the last event it got) and the stream ends; it
can reconnect and resume from the ring. At shutdown the daemon closes every stream first, so
stopping never waits for idle clients.
"""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from scheduler.api.inputs import admitting
from scheduler.api.keys import SCHEDULER, SETTINGS
from scheduler.errors import InvalidInput
from scheduler.events import Event, Subscription

routes = web.RouteTableDef()

OVERFLOW_EVENT = "stream-overflow"
_encode = msgspec.json.Encoder().encode


@routes.get("/api/events")
async def events(request: web.Request) -> web.StreamResponse:
    admitting(request)
    last_id = _last_event_id(request)
    hub = request.app[SCHEDULER].hub
    sub = hub.subscribe(request.query.get("jobId"), last_id=last_id)
    resp = EventSourceResponse(ping_interval=request.app[SETTINGS].heartbeat)
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


async def _pump(resp: EventSourceResponse, sub: Subscription, last_id: int | None) -> None:
    while (event := await sub.get()) is not None:
        try:
            await resp.send(_data(event), id=str(event.id), event=event.type)
        except (ConnectionError, TimeoutError):
            return
        last_id = event.id
    if sub.overflowed:
        notice = {
            "message": "this client fell too far behind and was dropped; reconnect to resume",
            "lastEventId": last_id,
        }
        try:
            await resp.send(_encode(notice).decode(), event=OVERFLOW_EVENT)
        except (ConnectionError, TimeoutError):
            return


def _data(event: Event) -> str:
    return _encode({"jobId": event.job_id, **event.data}).decode()
