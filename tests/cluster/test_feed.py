"""Events across nodes: a relayed hub streams records under the ids it is given (the global
seq), holes and all; every streamed record reads back from its ``events`` row; the feed relays
the table to another node's hub in seq order, waits for a writer still in flight and skips a
rolled-back number; an SSE client resumes on another node without a gap or a duplicate. The
first tests need no database; the rest run real PostgreSQL (``tests/cluster/pg.py``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import msgspec
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.api.app import create_app
from scheduler.cluster import db
from scheduler.cluster.feed import Feed, Row, event_row, insert_events, prune
from scheduler.config import Config
from scheduler.events import (
    STREAMED,
    Event,
    Hub,
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobFailed,
    JobRetrying,
    Published,
    RelayedJobCreated,
    RunProgress,
    RunStarted,
    SchedulerStatus,
    Subscription,
    from_wire,
)
from scheduler.runtime.library import Scheduler
from tests.api.harness import Stream, daemon_state
from tests.cluster.conftest import ClusterDb
from tests.cluster.replicas import Node, Writer, pool_for, rows_of
from tests.fakes import FakeClock, job
from tests.polling import until


def progress(n: int, job_id: int = 1) -> RunProgress:
    return RunProgress(job_id=job_id, percent=float(n), message=None)


def ids_of(hub: Hub, sub: Subscription) -> list[int]:
    batch = hub.take(sub)
    assert batch is not None, "the stream was dropped"
    return [item.id for item in batch]


# --- a relayed hub --------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    ids=st.lists(st.integers(1, 400), unique=True, max_size=40).map(sorted),
    buffer=st.integers(1, 50),
    last=st.integers(0, 420),
)
def test_a_relayed_stream_resumes_after_its_last_id_across_holes(
    ids: list[int], buffer: int, last: int
) -> None:
    hub = Hub(buffer=buffer, queue_size=1000, relayed=True)
    for id_ in ids:
        hub.publish(progress(id_), id=id_)
    sub = hub.stream(last_id=last)
    assert ids_of(hub, sub) == [id_ for id_ in ids[-buffer:] if id_ > last]
    newer = max([*ids, last]) + 3
    hub.publish(progress(last), id=last)  # the client's own last event, relayed here late
    hub.publish(progress(newer), id=newer)
    assert ids_of(hub, sub) == [newer]


def test_holes_in_the_ids_are_not_taken_for_a_stream_that_fell_behind() -> None:
    hub = Hub(buffer=3, queue_size=3, relayed=True)
    for id_ in (10, 20, 30):
        hub.publish(progress(id_), id=id_)
    sub = hub.stream()
    for id_ in (100, 200, 300):
        hub.publish(progress(id_), id=id_)
    assert ids_of(hub, sub) == [100, 200, 300]
    for id_ in (400, 500, 600, 700):  # now one record it never saw has left the ring
        hub.publish(progress(id_), id=id_)
    assert hub.take(sub) is None
    assert sub.overflowed


def test_a_relayed_hub_drops_a_record_it_already_has() -> None:
    hub = Hub(relayed=True)
    sub = hub.stream()
    hub.publish(progress(1), id=5)
    hub.publish(progress(2), id=5)
    hub.publish(progress(3), id=4)
    batch = hub.take(sub)
    assert batch is not None
    assert [(item.id, item.event) for item in batch] == [(5, progress(1))]


def test_a_relayed_hub_streams_only_relayed_records_and_calls_back_only_for_local_ones() -> None:
    hub = Hub(relayed=True)
    heard: list[RunProgress] = []
    hub.subscribe([RunProgress], heard.append)
    sub = hub.stream()
    hub.publish(progress(1))  # this node's own: its logs, metrics, alerts
    hub.publish(progress(2), id=7)  # any node's, from the feed: its streams
    assert heard == [progress(1)]
    assert ids_of(hub, sub) == [7]
    assert hub.wants(RunProgress)
    assert not hub.wants(RunStarted)  # a stream is open, but it is fed from the table


def test_the_feed_needs_a_relayed_hub() -> None:
    with pytest.raises(ValueError, match="relayed"):
        Feed(Hub())


# --- records and rows -----------------------------------------------------------------------------

SAMPLES: list[Event] = [
    JobCreated(job_id=1, job=job(1, payload={"a": [1, 2.5, None]}, unique_key="k")),
    RunStarted(job_id=1, attempt=2, fire=1_700_000_000.125),
    RunProgress(job_id=1, percent=40.5, message="half"),
    JobCompleted(job_id=1, outcome="success", attempt=1),
    JobFailed(job_id=1, outcome="error", attempt=3, error="boom"),
    JobRetrying(job_id=1, outcome="timeout", attempt=1, error="slow", final=False),
    JobCancelled(job_id=2, outcome="cancelled", attempt=0),
    SchedulerStatus(paused=True),
]


def test_every_streamed_kind_has_a_sample() -> None:
    assert {type(event) for event in SAMPLES} == set(STREAMED)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda event: str(event.name))
def test_a_streamed_record_reads_back_from_its_row_as_the_same_frame(event: Event) -> None:
    job_id, type_, data, at = event_row(event, 12.5)
    assert (job_id, type_, at) == (event.job_id, event.name, 12.5)
    back = from_wire(type_, job_id, json.loads(data))
    assert back is not None
    assert Published(9, back).frame() == Published(9, event).frame()
    if isinstance(event, JobCreated):
        assert isinstance(back, RelayedJobCreated)
    else:
        assert back == event


def test_a_row_of_an_unknown_type_reads_as_none_and_a_bad_one_raises() -> None:
    assert from_wire("job-teleported", 1, {}) is None
    newer = {"percent": 5, "message": None, "extra": "from a newer node"}
    assert from_wire("job-progress", 1, newer) == RunProgress(job_id=1, percent=5.0, message=None)
    with pytest.raises(msgspec.ValidationError):
        from_wire("job-started", 1, {"attempt": "one", "fire": 1.0})


def test_a_nul_character_is_stored_as_a_replacement_character() -> None:
    payload = {"k\0": ["x\0y", "\\u0000 stays as typed"]}
    _, _, data, _ = event_row(JobCreated(job_id=1, job=job(1, payload=payload)), 0.0)
    assert "\\u0000" not in data.replace("\\\\u0000", "")
    assert json.loads(data)["payload"] == {"k\ufffd": ["x\ufffdy", "\\u0000 stays as typed"]}


# --- with PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
async def pool(cluster: ClusterDb) -> AsyncIterator[db.Pool]:
    async with pool_for(cluster) as opened:
        yield opened


@pytest.fixture
async def writer(cluster: ClusterDb, pool: db.Pool) -> AsyncIterator[Writer]:
    conn = await cluster.connect()
    try:
        yield Writer(conn, cluster.schema)
    finally:
        await conn.close()


def row(n: int, at: float = 0.0) -> Row:
    return event_row(progress(n), at)


class Relayed:
    """What a node's hub has relayed, read from the start (a stream resuming at id 0)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.sub = hub.stream(last_id=0)
        self.items: list[tuple[int, Event]] = []

    def __call__(self) -> list[tuple[int, Event]]:
        batch = self.hub.take(self.sub)
        assert batch is not None
        self.items += [(item.id, item.event) for item in batch]
        return self.items

    def ids(self) -> list[int]:
        return [id_ for id_, _ in self()]


@pytest.mark.integration
async def test_events_reach_another_nodes_hub_in_seq_order_with_the_seq_as_id(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    node = Node(cluster, pool, "b")
    async with node.running():
        relayed = Relayed(node.hub)
        seqs = [await writer.events([row(1), row(2)]), await writer.events([row(3)])]
        await until(lambda: len(relayed()) == 3, "three events")
    assert relayed.ids() == [seqs[0] - 1, seqs[0], seqs[1]]
    assert [event for _, event in relayed()] == [progress(1), progress(2), progress(3)]


@pytest.mark.integration
async def test_a_later_seq_committed_first_waits_for_the_earlier_one(
    cluster: ClusterDb, pool: db.Pool
) -> None:
    node = Node(cluster, pool, "b")
    first_conn, second_conn = await cluster.connect(), await cluster.connect()
    try:
        async with node.running():
            relayed = Relayed(node.hub)
            channel = node.replica.channel
            async with first_conn.transaction():
                first = await insert_events(first_conn, channel, [row(1)])
                async with second_conn.transaction():
                    second = await insert_events(second_conn, channel, [row(2)])
                await until(lambda: node.feed._hole is not None, "the feed to see the hole")
                assert relayed() == []
            await until(lambda: len(relayed()) == 2, "both events")
    finally:
        await first_conn.close()
        await second_conn.close()
    assert (first, second) == (relayed.ids()[0], relayed.ids()[1])
    assert [event for _, event in relayed()] == [progress(1), progress(2)]


@pytest.mark.integration
async def test_a_rolled_back_seq_holds_the_feed_only_until_its_writer_ends(
    cluster: ClusterDb, pool: db.Pool
) -> None:
    node = Node(cluster, pool, "b")
    node.feed.gap_limit = 60.0  # so that only the snapshot check can let the feed go on
    first_conn, second_conn = await cluster.connect(), await cluster.connect()
    try:
        async with node.running():
            relayed = Relayed(node.hub)
            channel = node.replica.channel
            async with first_conn.transaction():
                await insert_events(first_conn, channel, [row(1)])
                async with second_conn.transaction():
                    second = await insert_events(second_conn, channel, [row(2)])
                await until(lambda: node.feed._hole is not None, "the feed to see the hole")
                _roll_back()  # the earlier number never commits: a hole for good
            await until(relayed, "the later event", within=3)
    finally:
        await first_conn.close()
        await second_conn.close()
    assert relayed() == [(second, progress(2))]


def _roll_back() -> None:
    """Leave the enclosing ``transaction()`` block, rolling it back (a function, so that the
    type checker does not take the rest of the test for unreachable)."""
    raise psycopg.Rollback


@pytest.mark.integration
async def test_rows_the_node_cannot_read_are_skipped(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    node = Node(cluster, pool, "b")
    async with node.running():
        relayed = Relayed(node.hub)
        await writer.events([(1, "job-teleported", "{}", 0.0), (1, "job-started", "[]", 0.0)])
        last = await writer.events([row(1)])
        await until(relayed, "the readable event")
    assert relayed() == [(last, progress(1))]


@pytest.mark.integration
async def test_a_nul_in_a_job_payload_is_stored_and_relayed(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    node = Node(cluster, pool, "b")
    async with node.running():
        relayed = Relayed(node.hub)
        created = JobCreated(job_id=1, job=job(1, payload="a\0b"))
        await writer.events([event_row(created, 0.0)])
        await until(relayed, "the event")
    (_, event), *_ = relayed()
    assert event.data()["payload"] == "a\ufffdb"


@pytest.mark.integration
async def test_a_node_that_starts_holds_the_newest_events_for_resuming_clients(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    seqs = [await writer.events([row(n)]) for n in range(5)]
    feed = Feed(Hub(relayed=True), backlog=3)
    await feed.load(pool)
    relayed = Relayed(feed.hub)
    assert relayed.ids() == seqs[-3:]
    assert feed.last == seqs[-1]


@pytest.mark.integration
async def test_pruning_deletes_only_old_events(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    now = await db.db_now(writer.conn)
    await writer.events([row(1, now - 100), row(2, now - 60), row(3, now)])
    assert await prune(pool, 50) == 2
    left = await rows_of(writer.conn, "SELECT data->>'percent' FROM events")
    assert left == [("3.0",)]


@contextlib.asynccontextmanager
async def node_with_api(
    cluster: ClusterDb, pool: db.Pool, name: str
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A node's replica and feed under the HTTP API, as a daemon in cluster mode serves them."""
    sched = Scheduler(Config(), clock=FakeClock(0.0), persistence=False, environ={})
    sched.hub = Hub(relayed=True)  # what the daemon builds in cluster mode
    node = Node(cluster, pool, name, hub=sched.hub, store=sched.store)
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(create_app(sched, daemon_state()), host="127.0.0.1")
    )
    async with node.running():
        await client.start_server()
        try:
            yield client
        finally:
            sched.hub.close_all()
            await client.close()


async def read_events(
    client: TestClient[web.Request, web.Application], last_id: str, count: int
) -> list[dict[str, object]]:
    resp = await client.get("/api/events", headers={"Last-Event-ID": last_id})
    assert resp.status == 200
    try:
        stream = Stream(resp)
        return [await stream.event() for _ in range(count)]
    finally:
        resp.close()


@pytest.mark.integration
async def test_an_sse_client_resumes_on_another_node_without_gap_or_duplicate(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    seqs = [await writer.events([row(n)]) for n in range(3)]
    async with (
        node_with_api(cluster, pool, "a") as node_a,
        node_with_api(cluster, pool, "b") as node_b,
    ):
        before = await read_events(node_a, "0", 3)
        seqs += [await writer.events([row(n)]) for n in range(3, 6)]
        after = await read_events(node_b, str(before[-1]["id"]), 3)
    events = before + after
    assert [int(str(event["id"])) for event in events] == seqs
    assert [event["data"] for event in events] == [
        {"jobId": "0000000000000001", "percent": float(n), "message": None} for n in range(6)
    ]
