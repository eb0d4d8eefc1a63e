"""Event streams are bounded: a cap on open streams (503 with Retry-After past it), fan-out in
one batch per stream per loop turn, and resuming that never waits for ids from a past run."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from scheduler.api.app import create_app
from scheduler.events import Hub, RunProgress, Subscription
from scheduler.ids import encode
from tests.api.harness import Api, ApiOptions, Stream


@pytest.fixture
def api_options() -> ApiOptions:
    return {"heartbeat": 0.05}


async def test_past_the_stream_cap_a_client_gets_503_with_retry_after(api: Api) -> None:
    app = create_app(api.sched, api.daemon_state, heartbeat=0.05, max_streams=2)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    try:
        first = await client.get("/api/events")
        second = await client.get("/api/events")
        assert (first.status, second.status) == (200, 200)
        async with client.get("/api/events") as refused:
            assert refused.status == 503
            assert refused.headers["Retry-After"] == "5"
            assert refused.headers.get("Connection", "").lower() == "close"
            body = await refused.json()
            assert body["error"]["code"] == "unavailable"
            assert "at most 2" in body["error"]["message"]
        first.close()
        for _ in range(100):  # the next heartbeat notices the closed stream
            if api.sched.hub.streams < 2:
                break
            await asyncio.sleep(0.01)
        third = await client.get("/api/events")
        assert third.status == 200
        second.close()
        third.close()
    finally:
        api.sched.hub.close_all()
        await client.close()


async def test_a_burst_reaches_each_stream_as_one_batch() -> None:
    hub = Hub()
    subs = [hub.stream() for _ in range(100)]
    batches: list[int] = []

    async def consume(sub: Subscription) -> None:
        got = await sub.get()
        assert got is not None
        batches.append(len(got))

    readers = [asyncio.create_task(consume(sub)) for sub in subs]
    await asyncio.sleep(0)  # every reader is waiting
    for n in range(300):
        hub.publish(RunProgress(job_id=1, percent=n, message=None))
    await asyncio.gather(*readers)
    assert batches == [300] * 100  # one wake-up each, not 300


async def test_publishing_does_not_visit_each_open_stream() -> None:
    hub = Hub()
    subs = [hub.stream() for _ in range(2000)]
    woken = 0
    real_wake = hub._wake

    def count() -> None:
        nonlocal woken
        woken += 1
        real_wake()

    hub._wake = count  # type: ignore[method-assign]
    for n in range(500):
        hub.publish(RunProgress(job_id=1, percent=n, message=None))
    assert woken == 500  # one call per event, whatever the number of streams
    assert len(hub._recent) == 500  # held once, in the ring, not once per stream
    assert {sub.cursor for sub in subs} == {1}  # no stream was touched


async def test_a_filtered_stream_gets_its_job_events_in_one_batch(api: Api) -> None:
    resp = await api.client.get(f"/api/events?jobId={encode(2)}")
    stream = Stream(resp)
    for n in range(6):
        api.sched.hub.publish(RunProgress(job_id=1 if n % 2 else 2, percent=n, message=None))
    got = [await stream.event() for _ in range(3)]
    assert [e["data"]["percent"] for e in got] == [0, 2, 4]
    assert {e["data"]["jobId"] for e in got} == {encode(2)}
    resp.close()


async def test_a_last_event_id_from_before_a_restart_resumes_with_the_next_event(
    api: Api,
) -> None:
    api.sched.hub.publish(RunProgress(job_id=1, percent=1, message=None))
    resp = await api.client.get("/api/events", headers={"Last-Event-ID": "999999"})
    stream = Stream(resp)
    api.sched.hub.publish(RunProgress(job_id=1, percent=2, message=None))
    event = await stream.event()
    assert (event["id"], event["data"]["percent"]) == ("2", 2)
    resp.close()


async def test_resuming_past_the_ring_starts_at_its_oldest_event() -> None:
    hub = Hub(buffer=5)
    for n in range(20):
        hub.publish(RunProgress(job_id=1, percent=n, message=None))
    sub = hub.stream(last_id=3)
    batch = await sub.get()
    assert batch is not None
    assert [e.id for e in batch] == [16, 17, 18, 19, 20]
    assert not sub.overflowed
