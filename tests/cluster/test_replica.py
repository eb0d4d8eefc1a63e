"""The replica: another node's writes reach this node's store through LISTEN/NOTIFY and one
fetch per batch; the highest version wins; runs are added once, in seq order; a lost
connection (killed backend, PostgreSQL restart) is followed by a reconnect and a full reload;
lag is measured. The first tests need no database (what the writer's own ``apply_*`` do); the
rest run real PostgreSQL (``tests/cluster/pg.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

from scheduler.cluster import db
from scheduler.cluster import replica as replica_module
from scheduler.cluster.codec import encode_job
from scheduler.cluster.db import channel
from scheduler.cluster.replica import Replica
from scheduler.cluster.rows import Writes
from scheduler.model import Job, Run
from scheduler.store import Store
from tests.cluster.conftest import ClusterDb
from tests.cluster.pg import PgServer
from tests.cluster.replicas import Node, Writer, pool_for, rows_of
from tests.fakes import job, run
from tests.polling import until


async def _no_database() -> db.Connection:
    raise AssertionError("this test has no database")


def lone_replica(history: int = 5) -> Replica:
    return Replica(Store(history=history), schema="s", node="n1", connect=_no_database)


# --- without a database: the writer's own changes ------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=30))
def test_the_highest_version_wins_in_any_order(versions: list[int]) -> None:
    replica = lone_replica()
    applied: list[int] = []
    replica.on_job = lambda put: applied.append(put.payload)
    for version in versions:
        replica.apply_job(job(1, payload=version), version)
    stored = replica.store.get(1)
    assert stored is not None
    assert stored.payload == replica.versions[1] == max(versions)
    assert applied == sorted(set(applied))  # each put is newer than the one before
    assert applied[-1] == max(versions)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_runs_are_added_once_in_seq_order_however_often_they_are_read(data: st.DataObject) -> None:
    history = 4
    replica = lone_replica(history)
    replica.apply_job(job(1), 1)
    seqs = sorted(data.draw(st.sets(st.integers(1, 10_000), min_size=1, max_size=12)))
    runs = [(seq, run(1, n)) for n, seq in enumerate(seqs, start=1)]
    read = 0  # a read returns every run from some already-held one on, up to a later point
    for _ in range(data.draw(st.integers(1, 6))):
        start = data.draw(st.integers(0, read))
        read = data.draw(st.integers(read, len(runs)))
        replica.apply_runs(1, runs[start:read])
    assert replica.store.runs(1) == [r for _, r in runs[:read]][-history:]


def test_a_deleted_job_is_not_brought_back_by_a_late_write() -> None:
    replica = lone_replica()
    deleted: list[int] = []
    replica.on_delete = deleted.append
    replica.apply_job(job(1), 1)
    replica.apply_delete(1)
    assert not replica.apply_job(job(1, payload="late"), 2)
    assert replica.store.get(1) is None
    assert deleted == [1]


def test_runs_of_a_job_the_store_does_not_hold_are_not_added() -> None:
    replica = lone_replica()
    assert replica.apply_runs(9, [(1, run(9, 1))]) == []
    replica.apply_job(job(9), 1)
    assert replica.apply_runs(9, [(1, run(9, 1))]) == [run(9, 1)]


def test_a_schema_name_too_long_for_a_channel_gets_a_short_stable_one() -> None:
    assert channel("scheduler") == "scheduler_changes"
    long = "s" * 63
    assert len(channel(long).encode()) <= 63
    assert channel(long) == channel(long) != channel("s" * 62 + "t")
    writer: Any = None
    assert Writes(writer, long, history=1).channel == channel(long)  # writers notify there


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


async def converged(node: Node, conn: db.Connection) -> bool:
    """Whether the node holds exactly the database's jobs, versions, runs and paused flag."""
    versions = {row[0]: row[1] for row in await rows_of(conn, "SELECT id, version FROM jobs")}
    query = "SELECT job_id, count(*) FROM runs GROUP BY job_id"
    runs = {row[0]: row[1] for row in await rows_of(conn, query)}
    paused = (await rows_of(conn, "SELECT value FROM meta WHERE key = 'paused'"))[0][0]
    return (
        node.replica.versions == versions
        and set(node.store.jobs) == set(versions)
        and {job_id: len(node.store.runs(job_id)) for job_id in runs} == runs
        and node.store.paused == paused
    )


@pytest.mark.integration
async def test_a_node_loads_every_job_its_last_runs_and_the_paused_flag(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    await seed(writer)
    runs = [run(1, n) for n in range(1, 8)]
    await writer.add_runs(job(1, runs=7), 2, runs)
    await writer.conn.execute("UPDATE meta SET value = 'true' WHERE key = 'paused'")
    node = Node(cluster, pool, "b")  # history 5
    async with node.running():
        assert node.replica.versions == {1: 2, 2: 1, 3: 1}
        assert node.store.jobs[1] == job(1, runs=7)
        assert node.store.runs(1) == runs[-5:]
        assert node.store.paused
        assert node.store.count() == 3


@pytest.mark.integration
async def test_a_job_another_node_writes_appears_in_the_store(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    node = Node(cluster, pool, "b")
    seen: list[Job] = []
    node.replica.on_job = seen.append
    async with node.running():
        await writer.put(job(1, task="first"), 1)
        await until(lambda: node.store.get(1), "the new job")
        await writer.put(job(1, task="second"), 2)
        await until(lambda: node.store.jobs[1].task == "second", "the changed job")
    assert [(put.id, put.task) for put in seen] == [(1, "first"), (1, "second")]
    assert node.replica.versions == {1: 2}


@pytest.mark.integration
async def test_an_older_version_never_replaces_a_newer_one(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    node = Node(cluster, pool, "b")
    puts: list[tuple[int, object]] = []
    node.replica.on_job = lambda put: puts.append((put.id, put.payload))
    async with node.running():
        assert node.replica.apply_job(job(1, payload="newest"), 3)  # read-your-writes
        await writer.put(job(1, payload="older"), 2)
        node.replica.apply_job(job(2, payload="mine"), 1)
        await writer.put(job(2, payload="mine"), 1)  # its NOTIFY follows the writer's apply
        await writer.put(job(3), 1)  # a marker: the NOTIFYs before it were handled
        await until(lambda: node.store.get(3), "the marker job")
    assert node.store.jobs[1].payload == "newest"
    assert puts == [(1, "newest"), (2, "mine"), (3, None)]


@pytest.mark.integration
async def test_a_deleted_job_disappears_with_its_runs(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    await writer.put(job(1), 1)
    await writer.add_runs(job(1, runs=1), 2, [run(1, 1)])
    node = Node(cluster, pool, "b")
    deleted: list[int] = []
    node.replica.on_delete = deleted.append
    async with node.running():
        assert node.store.runs(1) == [run(1, 1)]
        await writer.delete(1)
        await until(lambda: node.store.get(1) is None, "the deletion")
    assert node.store.runs(1) == []
    assert deleted == [1]
    assert node.store.counts[job(1).status] == 0


@pytest.mark.integration
async def test_new_runs_appear_once_and_go_to_on_runs(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    node = Node(cluster, pool, "b")
    handed: list[tuple[int, int, list[Run]]] = []
    node.replica.on_runs = lambda owner, new: handed.append((owner.id, owner.runs, new))
    async with node.running():
        await writer.put(job(1), 1)
        await writer.add_runs(job(1, runs=2), 2, [run(1, 1), run(1, 2)])
        await until(lambda: len(node.store.runs(1)) == 2, "the runs")
        await writer.notify("r:1")  # read again: nothing new
        await writer.add_runs(job(1, runs=3), 3, [run(1, 3)])
        await until(lambda: len(node.store.runs(1)) == 3, "the third run")
    assert node.store.runs(1) == [run(1, 1), run(1, 2), run(1, 3)]
    assert handed == [(1, 2, [run(1, 1), run(1, 2)]), (1, 3, [run(1, 3)])]


@pytest.mark.integration
async def test_cancel_wake_and_pause_reach_the_callbacks(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    node = Node(cluster, pool, "b")
    heard: list[object] = []
    node.replica.on_cancel = lambda job_id: heard.append(("cancel", job_id))
    node.replica.on_wake = lambda: heard.append("wake")
    node.replica.on_paused = lambda paused: heard.append(("paused", paused))
    async with node.running():
        heard.clear()  # the reload at connection wakes the engine once
        await writer.notify("c:7", "w")
        async with writer.conn.transaction():
            await writer.conn.execute("UPDATE meta SET value = 'true' WHERE key = 'paused'")
            await writer.conn.execute("SELECT pg_notify(%s, 'm:paused')", [writer.channel])
        await until(lambda: node.store.paused, "the pause")
    assert heard == [("cancel", 7), "wake", ("paused", True)]


@pytest.mark.integration
async def test_unreadable_notifications_are_ignored(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    node = Node(cluster, pool, "b")
    async with node.running():
        await writer.notify("zzz", "j:x:1", "j:5", "d:")
        await writer.put(job(1), 1)
        await until(lambda: node.store.get(1), "the job after the noise")
        assert node.replica.connected


async def write_while_away(writer: Writer) -> None:
    """Changes of every kind, none of which a disconnected node can hear of."""
    await writer.put(job(1, task="changed"), 2)
    await writer.delete(2)
    await writer.put(job(4), 1)
    await writer.add_runs(job(3, runs=1), 2, [run(3, 1)])
    await writer.conn.execute("UPDATE meta SET value = 'true' WHERE key = 'paused'")
    await writer.conn.execute(
        "INSERT INTO inflight (job_id, fire, attempt, node_id, epoch, task, started,"
        " lease_until, manual, cancel_reason) VALUES (3, 1, 1, 'a', 1, 't', 0, 0, false, 'x')"
    )


async def seed(writer: Writer) -> None:
    for job_id in (1, 2, 3):
        await writer.put(job(job_id), 1)


@pytest.mark.integration
async def test_a_killed_listener_reconnects_and_reloads_what_it_missed(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    await seed(writer)
    node = Node(cluster, pool, "b")
    cancelled: list[int] = []
    node.replica.on_cancel = cancelled.append
    async with node.running():
        node.gate.clear()  # it stays away until the writes are done
        await writer.conn.execute("SELECT pg_terminate_backend(%s)", [node.listener_pid])
        await until(lambda: not node.replica.connected, "the listener to notice")
        await write_while_away(writer)
        await asyncio.sleep(0.05)
        assert node.replica.status()["replicaLagMs"] >= 50  # the time it has been away
        assert not await converged(node, writer.conn)
        node.gate.set()
        await until(lambda: converged(node, writer.conn), "the reload")
        assert node.replica.connected
    assert node.store.jobs[1].task == "changed"
    assert cancelled == [3]
    assert len(node.listeners) == 2


@pytest.mark.integration
async def test_a_reload_keeps_a_job_the_writer_applied_while_it_read(
    cluster: ClusterDb, pool: db.Pool, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = Node(cluster, pool, "b")
    real_stream = replica_module._stream

    @contextlib.asynccontextmanager
    async def stream(conn: db.Connection, query: str, params: Any) -> AsyncIterator[Any]:
        async with real_stream(conn, query, params) as rows:
            yield rows
        if query == replica_module._ALL_VERSIONS:  # the reload has read the versions
            await writer.put(job(99), 1, notify=False)  # this node's own write, committed
            node.replica.apply_job(job(99), 1)  # and applied, after the reload's read

    monkeypatch.setattr(replica_module, "_stream", stream)
    async with node.running():
        await writer.put(job(1), 1)  # a marker: the reload is over, batches are handled
        await until(lambda: node.store.get(1), "the marker job")
        assert node.store.get(99) is not None


@pytest.mark.integration
async def test_a_load_stopped_while_it_streams_closes_its_cursor_and_frees_the_connection(
    cluster: ClusterDb, pool: db.Pool, writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node stopped while it loads (a shutdown during a start) is cancelled inside the
    server-side cursor's fetch: the cursor is still closed (no ResourceWarning when it is
    collected) and the pool's connection is usable by the next reader."""
    monkeypatch.setattr(replica_module, "CHUNK", 2)  # a fetch every two rows
    for job_id in range(1, 8):
        await writer.put(job(job_id), 1)
    node = Node(cluster, pool, "b")
    loading = [asyncio.create_task(node.replica.load(pool))]  # dropped below, with its frames
    real_decode = replica_module._decoded_job

    def decode_then_stop(job_id: int, record: bytes) -> Job | None:
        loading[0].cancel()  # delivered at the next fetch, inside the cursor
        return real_decode(job_id, record)

    monkeypatch.setattr(replica_module, "_decoded_job", decode_then_stop)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            await loading[0]
        except asyncio.CancelledError:
            pass
        else:
            pytest.fail("the load was not stopped")
        loading.clear()  # the task's traceback holds the cursor: let it be collected now
        gc.collect()
    assert [str(w.message) for w in seen if w.category is ResourceWarning] == []
    assert node.store.count() == 0  # nothing half-loaded
    async with pool.connection() as conn:
        assert await rows_of(conn, "SELECT count(*) FROM jobs") == [(7,)]


@pytest.mark.integration
async def test_a_restart_of_postgresql_is_followed_by_a_full_reload(
    cluster: ClusterDb, pg: PgServer, pool: db.Pool, writer: Writer
) -> None:
    await seed(writer)
    node = Node(cluster, pool, "b")
    async with node.running():
        node.gate.clear()
        await pg.arestart()
        await until(lambda: not node.replica.connected, "the listener to notice")
        conn = await cluster.connect()  # the writer's connection died with the server
        try:
            await write_while_away(Writer(conn, cluster.schema))
            node.gate.set()
            await until(lambda: converged(node, conn), "the reload", within=20)
        finally:
            await conn.close()


@pytest.mark.integration
async def test_lag_is_measured_and_shown_in_the_status(
    cluster: ClusterDb, pool: db.Pool, writer: Writer
) -> None:
    node = Node(cluster, pool, "b")
    node.replica.nodes = 2
    async with node.running():
        await writer.put(job(1), 1)
        await until(lambda: node.store.get(1), "the job")
        assert 0 < node.replica.lag < 1
        status = node.replica.status()
    assert status == {"node": "b", "nodes": 2, "replicaLagMs": round(node.replica.lag * 1000, 1)}


CHANGES = 1000


@pytest.mark.integration
async def test_apply_latency(cluster: ClusterDb, pg: PgServer, pool: db.Pool) -> None:
    """Commit on "another node" (a thread with its own connection) to applied here, over
    ``CHANGES`` changes one commit each, about one per millisecond. Prints p50/p99 (run with
    ``-s``); asserts only a loose bound, the machine is shared."""
    node = Node(cluster, pool, "b")
    applied: dict[int, float] = {}
    lags: list[float] = []

    def on_job(put: Job) -> None:
        applied[put.id] = time.monotonic()
        lags.append(node.replica.lag)  # the batch before this one's: set once a batch is done

    node.replica.on_job = on_job
    committed: dict[int, float] = {}

    def write_all() -> None:
        with pg.connect() as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(cluster.schema)))
            for n in range(1, CHANGES + 1):
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO jobs (id, version, status, priority, task, source, record)"
                        " VALUES (%s, 1, 'pending', 2, 't', 'api', %s)",
                        [n, encode_job(job(n))],
                    )
                    conn.execute("SELECT pg_notify(%s, %s)", [channel(cluster.schema), f"j:{n}:1"])
                committed[n] = time.monotonic()
                time.sleep(0.001)

    async with node.running():
        await asyncio.to_thread(write_all)
        await until(lambda: len(applied) == CHANGES, "every change", within=20)
    latency = sorted(applied[n] - committed[n] for n in committed)
    p50, p99 = statistics.median(latency), latency[int(len(latency) * 0.99)]
    print(
        f"\napply latency over {CHANGES} changes: commit->applied p50 {p50 * 1000:.2f} ms, "
        f"p99 {p99 * 1000:.2f} ms; NOTIFY->applied (replica lag) p50 "
        f"{statistics.median(lags[1:]) * 1000:.2f} ms, max {max(lags) * 1000:.2f} ms"
    )
    assert p99 < 0.5
