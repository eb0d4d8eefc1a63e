"""``scheduler cluster import``: a single box's state moves into the tables unchanged (decoded
rows equal the jobs and runs it held), only into an empty schema with no node alive, never
from a directory a running scheduler holds. And the row codec: records decode to what was
encoded, and the indexed columns are derived from the record."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.checks import MAX_INT, MIN_INT
from scheduler.cluster.codec import (
    JOB_COLUMNS,
    decode_job,
    decode_run,
    encode_job,
    encode_run,
    job_columns,
)
from scheduler.cluster.importer import Imported, import_state, locked_state
from scheduler.errors import InvalidState, PersistenceError
from scheduler.model import Job, JobStatus, Priority, PutJob, Run, Schedule, Source
from scheduler.persistence.codec import RecordCodec
from scheduler.persistence.statelock import StateLock
from scheduler.store import wake_time
from tests.cluster.conftest import ClusterDb
from tests.cluster.samples import (
    BASE,
    every_kind_of_job,
    job_id,
    runs_of,
    write_single_box_state,
)


async def import_dir(cluster: ClusterDb, directory: Path, *, history: int = 20) -> Imported:
    conn = await cluster.connect()
    try:
        with locked_state(directory, history=history) as state:
            return await import_state(conn, state, lease=cluster.lease)
    finally:
        await conn.close()


async def sample_state(
    tmp_path: Path, *, paused: bool = False
) -> tuple[Path, list[Job], dict[int, list[Run]]]:
    jobs = every_kind_of_job()
    runs = {job.id: runs_of(job, i) for i, job in enumerate(jobs)}
    directory = tmp_path / "state"
    await write_single_box_state(directory, jobs, runs, paused=paused)
    return directory, jobs, runs


@pytest.mark.integration
async def test_a_single_box_state_round_trips_through_the_tables(
    cluster: ClusterDb, tmp_path: Path
) -> None:
    await cluster.migrate()
    directory, jobs, runs = await sample_state(tmp_path, paused=True)
    done = await import_dir(cluster, directory)
    assert done == Imported(
        jobs=len(jobs), runs=sum(len(r) for r in runs.values()), running=1, paused=True
    )
    conn = await cluster.connect()
    try:
        columns = ", ".join(JOB_COLUMNS)
        cur = await conn.execute(f"SELECT id, version, {columns}, record FROM jobs ORDER BY id")
        rows = await cur.fetchall()
        cur = await conn.execute("SELECT job_id, record FROM runs ORDER BY job_id, seq")
        run_rows = await cur.fetchall()
        cur = await conn.execute("SELECT value FROM meta WHERE key = 'paused'")
        paused = await cur.fetchone()
    finally:
        await conn.close()
    assert [decode_job(row[-1]) for row in rows] == sorted(jobs, key=lambda job: job.id)
    for row in rows:
        job = decode_job(row[-1])
        assert row[0] == job.id
        assert row[1] == 1
        assert dict(zip(JOB_COLUMNS, row[2:-1], strict=True)) == job_columns(job)
    stored: dict[int, list[Run]] = {}
    for job_id_, record in run_rows:
        stored.setdefault(job_id_, []).append(decode_run(record))
    assert stored == {job_id: r for job_id, r in runs.items() if r}  # oldest first, no orphan
    assert paused == (True,)


@pytest.mark.integration
async def test_only_the_last_history_runs_of_each_job_come_along(
    cluster: ClusterDb, tmp_path: Path
) -> None:
    await cluster.migrate()
    directory, _, runs = await sample_state(tmp_path)
    done = await import_dir(cluster, directory, history=3)
    assert done.runs == sum(min(3, len(r)) for r in runs.values())
    conn = await cluster.connect()
    try:
        cur = await conn.execute(
            "SELECT record FROM runs WHERE job_id = %s ORDER BY seq", [job_id(10)]
        )
        kept = [decode_run(record) for (record,) in await cur.fetchall()]
    finally:
        await conn.close()
    assert kept == runs[job_id(10)][-3:]


@pytest.mark.integration
async def test_an_import_into_a_schema_holding_jobs_is_refused_and_changes_nothing(
    cluster: ClusterDb, tmp_path: Path
) -> None:
    await cluster.migrate()
    directory, jobs, _ = await sample_state(tmp_path)
    await import_dir(cluster, directory)
    with pytest.raises(InvalidState) as caught:
        await import_dir(cluster, directory)
    assert caught.value.message == (
        f"the cluster's schema already holds {len(jobs)} jobs: import only into an empty one"
        " (a fresh cluster.schema, after scheduler cluster init)"
    )
    conn = await cluster.connect()
    try:
        cur = await conn.execute("SELECT count(*) FROM jobs")
        assert await cur.fetchone() == (len(jobs),)
    finally:
        await conn.close()


@pytest.mark.integration
async def test_an_import_while_a_node_is_alive_is_refused(
    cluster: ClusterDb, tmp_path: Path
) -> None:
    await cluster.migrate()
    conn = await cluster.connect()
    try:
        for node, age in (("live", 1.0), ("dead", 60.0)):
            await conn.execute(
                "INSERT INTO nodes (node_id, epoch, slot, heartbeat_at, started_at, host, pid,"
                " config_hash, version) VALUES (%s, 1, %s, extract(epoch FROM now())::float8 - %s,"
                " 0, 'h', 1, 'x', '0.1')",
                [node, 1 if node == "live" else 2, age],
            )
    finally:
        await conn.close()
    directory, _, _ = await sample_state(tmp_path)
    with pytest.raises(InvalidState, match=r"nodes are running on the cluster's schema \(live\)"):
        await import_dir(cluster, directory)


@pytest.mark.integration
async def test_a_state_breaking_a_unique_rule_is_refused_whole(
    cluster: ClusterDb, tmp_path: Path
) -> None:
    await cluster.migrate()
    twins = [
        Job(id=job_id(n), task="t", timezone="UTC", unique_key="same", scheduled=BASE)
        for n in (1, 2)
    ]
    await write_single_box_state(tmp_path / "state", twins, {})
    with pytest.raises(InvalidState, match=r"\(Key \(unique_key\)=\(same\) already exists\.\)"):
        await import_dir(cluster, tmp_path / "state")
    conn = await cluster.connect()
    try:
        cur = await conn.execute("SELECT count(*) FROM jobs")
        assert await cur.fetchone() == (0,)
    finally:
        await conn.close()


async def test_a_directory_a_running_scheduler_holds_is_refused(tmp_path: Path) -> None:
    directory, _, _ = await sample_state(tmp_path)
    lock = StateLock.acquire(directory)
    lock.record_holder()
    try:
        with (
            pytest.raises(InvalidState, match="is in use by a running scheduler"),
            locked_state(directory, history=20),
        ):
            pass
    finally:
        lock.release()
    with locked_state(directory, history=20) as state:  # free again: it loads
        assert len(state.jobs) == len(every_kind_of_job())


def test_a_directory_without_state_is_refused(tmp_path: Path) -> None:
    with (
        pytest.raises(PersistenceError, match="no such state directory"),
        locked_state(tmp_path / "missing", history=20),
    ):
        pass
    with (
        pytest.raises(PersistenceError, match="holds no scheduler state"),
        locked_state(tmp_path, history=20),
    ):
        pass
    assert not (tmp_path / "missing").exists()


# --- the row codec ---------------------------------------------------------------------------


def test_a_record_is_the_bytes_the_journal_writes_for_the_job() -> None:
    codec = RecordCodec()
    for job in every_kind_of_job():
        assert encode_job(job) in codec.encode(1, PutJob(job))
        assert decode_job(encode_job(job)) == job
    with pytest.raises(msgspec.DecodeError):
        decode_job(encode_run(runs_of(every_kind_of_job()[0], 1)[0]))


_ints = st.integers(min_value=MIN_INT, max_value=MAX_INT)
jobs_st = st.builds(
    Job,
    id=st.integers(min_value=1, max_value=2**63 - 1),
    task=st.text(min_size=1, max_size=20),
    timezone=st.sampled_from(["UTC", "Asia/Seoul"]),
    # Payloads as the API and the library accept them (checks.expect_payload): 64-bit integers.
    payload=st.none() | _ints | st.text() | st.lists(_ints, max_size=3),
    status=st.sampled_from(JobStatus),
    priority=st.sampled_from(Priority),
    source=st.sampled_from(Source),
    schedule=st.sampled_from([Schedule(), Schedule(every=60.0), Schedule(cron="0 9 * * *")]),
    scheduled=st.none() | st.floats(min_value=0, max_value=4e9),
    paused_until=st.none() | st.floats(min_value=0, max_value=4e9),
    completed=st.none() | st.floats(min_value=0, max_value=4e9),
    unique_key=st.none() | st.text(max_size=10),
    workflow_id=st.none() | st.text(max_size=10),
    name=st.none() | st.text(max_size=10),
)


@settings(max_examples=150, deadline=None)
@given(jobs_st)
def test_any_job_decodes_to_itself_and_its_columns_follow_its_record(job: Job) -> None:
    assert decode_job(encode_job(job)) == job
    columns = job_columns(job)
    assert set(columns) == set(JOB_COLUMNS)
    assert columns["wake"] == wake_time(job)
    assert columns["status"] == job.status.value
    assert columns["priority"] == job.priority.rank
    assert columns["source"] == job.source.value
    assert (columns["unique_key"], columns["workflow_id"], columns["name"]) == (
        job.unique_key, job.workflow_id, job.name,
    )  # fmt: skip
    assert columns["completed"] == job.completed
    assert columns["held"] is False


def test_runs_decode_to_themselves() -> None:
    for run in runs_of(every_kind_of_job()[0], 8):
        assert decode_run(encode_run(run)) == run
