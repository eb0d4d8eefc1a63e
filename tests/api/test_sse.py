"""``GET /api/events``: Server-Sent Events with a filter, a heartbeat, resume from the ring,
bounded queues and a clean end at shutdown."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import ClientResponse

from scheduler.events import RunProgress
from tests.api.harness import Api, ApiOptions, Stream, running_api


@pytest.fixture
def api_options() -> ApiOptions:
    return {"heartbeat": 0.05}


async def open_stream(
    api: Api, query: str = "", headers: dict[str, str] | None = None
) -> tuple[ClientResponse, Stream]:
    resp = await api.client.get("/api/events" + query, headers=api.headers(headers))
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return resp, Stream(resp)


async def test_job_events_are_streamed_in_order(api: Api) -> None:
    resp, stream = await open_stream(api)
    job = await api.create()
    await api.clock.advance(0)
    events = [await stream.event() for _ in range(3)]
    assert [e["event"] for e in events] == ["job-created", "job-started", "job-completed"]
    assert all(e["data"]["jobId"] == job["id"] for e in events)
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids)
    assert events[0]["data"]["status"] == "pending"
    assert events[2]["data"]["outcome"] == "success"
    resp.close()


async def test_job_id_filters_the_stream(api: Api) -> None:
    other = await api.create(schedule={"delay": "1h"})
    job = await api.create(schedule={"delay": "2h"})
    resp, stream = await open_stream(api, f"?jobId={job['id']}")
    await api.call("POST", f"/api/jobs/{other['id']}/run")
    await api.call("POST", f"/api/jobs/{job['id']}/run")
    await api.clock.advance(0)
    first = await stream.event()
    assert first["event"] == "job-started"
    assert first["data"]["jobId"] == job["id"]
    resp.close()


async def test_a_heartbeat_comment_keeps_an_idle_stream_alive(api: Api) -> None:
    resp, stream = await open_stream(api)
    block = await stream.block()
    assert block == {"comments": ["ping"]}
    resp.close()


async def test_last_event_id_resumes_from_the_ring(api: Api) -> None:
    for n in range(5):
        api.sched.hub.publish(RunProgress(job_id=1, percent=n * 10, message=None))
    resp, stream = await open_stream(api, headers={"Last-Event-ID": "3"})
    got = [await stream.event() for _ in range(2)]
    assert [(e["id"], e["data"]["percent"]) for e in got] == [("4", 30), ("5", 40)]
    resp.close()


async def test_a_bad_last_event_id_is_a_400(api: Api) -> None:
    status, body = await api.call("GET", "/api/events", headers={"Last-Event-ID": "yesterday"})
    assert status == 400
    assert body["error"]["field"] == "Last-Event-ID"


async def test_pausing_and_resuming_the_scheduler_is_announced(api: Api) -> None:
    resp, stream = await open_stream(api)
    await api.call("POST", "/api/scheduler/pause")
    await api.call("POST", "/api/scheduler/resume")
    paused, resumed = await stream.event(), await stream.event()
    assert paused["event"] == "scheduler-status"
    assert paused["data"] == {"jobId": None, "paused": True, "isRunning": False}
    assert resumed["data"]["isRunning"] is True
    resp.close()


async def test_a_subscriber_that_falls_behind_is_told_and_dropped() -> None:
    async with running_api(heartbeat=0.05, queue_size=3) as api:
        resp, stream = await open_stream(api)
        for n in range(10):  # in one go: the stream cannot drain between them
            api.sched.hub.publish(RunProgress(job_id=1, percent=n, message=None))
        blocks = []
        while (event := await stream.next()) is not None:
            blocks.append(event)
        *delivered, notice = blocks
        assert len(delivered) < 10
        assert [b["data"]["percent"] for b in delivered] == list(range(len(delivered)))
        assert notice["event"] == "stream-overflow"
        assert "id" not in notice  # the client's last event id stays that of the last event
        last = int(delivered[-1]["id"]) if delivered else None
        assert notice["data"]["lastEventId"] == last
        assert api.sched.hub._subs == set()  # unsubscribed: its queue no longer grows
        resp.close()


async def test_open_streams_end_at_shutdown(api: Api) -> None:
    resp, stream = await open_stream(api)
    api.sched.hub.publish(RunProgress(job_id=1, percent=1, message=None))
    assert (await stream.event())["data"]["percent"] == 1
    api.sched.hub.close_all()
    assert await stream.next() is None
    resp.close()


async def test_a_client_that_goes_away_is_unsubscribed(api: Api) -> None:
    resp, _ = await open_stream(api)
    assert len(api.sched.hub._subs) == 1
    resp.close()
    for _ in range(100):
        if not api.sched.hub._subs:
            break
        await asyncio.sleep(0.01)  # the next heartbeat notices the closed connection
    assert api.sched.hub._subs == set()
