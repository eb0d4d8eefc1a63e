"""Snapshot format 2 (issue 14): jobs framed by index key, so that a restart takes each job's
bucket from its frame; a version 1 snapshot (written by the scheduler before this format) still
loads, alone or with a journal after it; and checksums are verified beside the decoding without
changing which damage is reported."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.errors import CorruptState
from scheduler.model import (
    Change,
    DeleteJob,
    Frequency,
    Job,
    JobStatus,
    PutJob,
    Repeat,
    Schedule,
    SetMeta,
)
from scheduler.persistence import snapshot as snapshot_module
from scheduler.persistence.codec import FRAME_HEADER, RecordCodec
from scheduler.persistence.recovery import load_state
from scheduler.persistence.snapshot import SnapshotState, load_snapshot, write_snapshot
from scheduler.store import Store
from tests.fakes import job, run
from tests.persistence.store_groups import assert_same, grouped, reference

#: Written by the scheduler as it was before format 2 (commit 152d671, ``write_snapshot``):
#: 24 jobs over every status, six kinds of schedule, three tasks, shared and unique workflows
#: and unique keys; 10 runs; paused; last_seq 24.
V1_SNAPSHOT = Path(__file__).with_name("s14_snapshot_v1.snap")
V1_NAME = "snapshot-00000000000000000024.snap"

SCHEDULES = [
    Schedule(),
    Schedule(delay=60.0),
    Schedule(at="2030-01-01T09:00"),
    Schedule(cron="0 9 * * 1-5"),
    Schedule(repeat=Repeat(freq=Frequency.DAILY)),
]
TASKS = ["a", "b", "c"]
WORKFLOWS = [None, "w1", "w2", "w3"]


def loaded_store(directory: Path) -> Store:
    """What the daemon does at a start: recover, then fill the store (with the groups)."""
    state = load_state(directory)
    store = Store()
    store.load(state.jobs, dict(state.runs), paused=state.meta.paused, groups=state.groups)
    return store


def v1_directory(root: Path) -> Path:
    directory = root / "state"
    directory.mkdir(mode=0o700)
    shutil.copyfile(V1_SNAPSHOT, directory / V1_NAME)
    return directory


# --- version 1 ---------------------------------------------------------------------------------


def test_a_version_1_snapshot_still_loads_into_the_same_store(tmp_path: Path) -> None:
    directory = v1_directory(tmp_path)
    snap = load_snapshot(directory / V1_NAME)
    assert snap.header.version == 1
    assert snap.groups is None  # the store groups a version 1 snapshot's jobs itself
    assert (len(snap.jobs), len(snap.runs), snap.meta) == (24, 10, SetMeta(paused=True))
    assert {j.status for j in snap.jobs} == set(JobStatus)
    state = load_state(directory)
    assert state.groups is None
    runs: dict[int, list[Any]] = {}
    for r in snap.runs:
        runs.setdefault(r.job_id, []).append(r)
    assert_same(loaded_store(directory), reference(state.jobs, runs, paused=True))


async def test_a_version_1_snapshot_with_a_journal_after_it_loads(tmp_path: Path) -> None:
    directory = v1_directory(tmp_path)
    old = load_snapshot(directory / V1_NAME)
    first, second = old.jobs[0], old.jobs[1]
    changes: list[Change] = [
        PutJob(job(first.id, task="moved", status=JobStatus.PAUSED, paused_until=5.0)),
        DeleteJob(second.id),
        PutJob(job(first.id + 1000, task="new", scheduled=7.0, workflow_id="wf-a")),
    ]
    codec = RecordCodec()
    segment = directory / "journal-00000000000000000025.log"
    segment.write_bytes(b"".join(codec.encode(25 + i, c) for i, c in enumerate(changes)))
    state = load_state(directory)
    assert state.groups is None
    assert second.id not in state.jobs
    assert state.jobs[first.id].task == "moved"
    runs = {job_id: list(rs) for job_id, rs in state.runs.items()}
    assert_same(loaded_store(directory), reference(state.jobs, runs, paused=True))
    # The next snapshot is written in format 2 and loads into the same store again.
    store = loaded_store(directory)
    await write_snapshot(
        directory,
        SnapshotState(
            jobs=list(store.jobs.values()),
            runs=store.all_runs(),
            meta=SetMeta(paused=True),
            last_seq=state.last_seq,
            next_id=state.next_id,
        ),
    )
    again = load_state(directory)
    assert again.stats.snapshot is not None
    assert load_snapshot(again.stats.snapshot).header.version == 2
    assert again.groups == grouped(again.jobs)
    assert_same(loaded_store(directory), reference(state.jobs, runs, paused=True))


# --- version 2 ---------------------------------------------------------------------------------


def a_job(draw: Any, job_id: int) -> Job:
    status = draw(st.sampled_from(list(JobStatus)))
    return job(
        job_id,
        task=draw(st.sampled_from(TASKS)),
        schedule=draw(st.sampled_from(SCHEDULES)),
        status=status,
        workflow_id=draw(st.sampled_from(WORKFLOWS)),
        unique_key=draw(st.sampled_from([None, f"k{job_id}"])),
        scheduled=draw(st.sampled_from([None, 10.0, 20.0])),
        paused_until=draw(st.sampled_from([None, 15.0])),
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_the_groups_follow_the_snapshot_and_the_journal_after_it(
    data: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot_module, "SLICE", 3)  # a key's jobs span several frames
    n = data.draw(st.integers(0, 14), label="jobs")
    snapshotted = {i: a_job(data.draw, i) for i in range(1, n + 1)}
    snapshot_runs = {i: tuple(run(i, k) for k in range(2)) for i in snapshotted if i % 3 == 0}
    jobs, runs = dict(snapshotted), {i: list(rs) for i, rs in snapshot_runs.items()}
    changes: list[Change] = []
    for step in range(data.draw(st.integers(0, 8), label="changes")):
        if jobs and data.draw(st.booleans(), label="delete"):
            victim = data.draw(st.sampled_from(sorted(jobs)))
            changes.append(DeleteJob(victim))
            del jobs[victim]
            runs.pop(victim, None)
        else:  # a changed job (new status, task, schedule...) or a new one
            job_id = data.draw(st.sampled_from([*sorted(jobs), 100 + step]))
            jobs[job_id] = a_job(data.draw, job_id)
            changes.append(PutJob(jobs[job_id]))
    with tempfile.TemporaryDirectory() as root:
        directory = Path(root)
        snapshot = SnapshotState(
            jobs=list(snapshotted.values()),
            runs=snapshot_runs,
            meta=SetMeta(paused=False),
            last_seq=5,
            next_id=n + 1,
        )
        asyncio.run(write_snapshot(directory, snapshot))
        codec = RecordCodec()
        segment = directory / "journal-00000000000000000006.log"
        segment.write_bytes(b"".join(codec.encode(6 + i, c) for i, c in enumerate(changes)))
        state = load_state(directory)
        assert state.jobs == jobs
        assert state.groups is not None
        assert {k: sorted(ids) for k, ids in state.groups.items()} == grouped(jobs)
        assert_same(loaded_store(directory), reference(jobs, runs, paused=False))


async def test_every_frame_holds_the_jobs_of_one_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot_module, "SLICE", 2)
    jobs = [
        job(i, task=TASKS[i % 3], status=list(JobStatus)[i % 6], schedule=SCHEDULES[i % 5])
        for i in range(1, 40)
    ]
    info = await write_snapshot(
        tmp_path,
        SnapshotState(jobs=jobs, runs={}, meta=SetMeta(paused=False), last_seq=1, next_id=40),
    )
    snap = load_snapshot(info.path)
    assert snap.header.version == 2
    assert sorted(j.id for j in snap.jobs) == [j.id for j in jobs]
    assert snap.groups is not None
    assert {k: sorted(v) for k, v in snap.groups.items()} == grouped({j.id: j for j in jobs})


# --- damage ------------------------------------------------------------------------------------


def frames_of(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each frame of a snapshot file's bytes."""
    out, offset = [], snapshot_module._HEADER.size  # the file header
    while offset < len(data):
        length = FRAME_HEADER.unpack_from(data, offset)[0]
        out.append((offset, length))
        offset += FRAME_HEADER.size + length
    return out


def with_payload(data: bytes, offset: int, payload: bytes) -> bytes:
    """``data`` with the frame at ``offset`` holding ``payload`` (same length, valid crc)."""
    length_bytes = data[offset : offset + 4]
    crc = zlib.crc32(payload, zlib.crc32(length_bytes)).to_bytes(4, "little")
    start = offset + FRAME_HEADER.size
    return data[:offset] + length_bytes + crc + payload + data[start + len(payload) :]


async def damaged(tmp_path: Path) -> tuple[Path, bytes, list[tuple[int, int]]]:
    jobs = [job(i, task=TASKS[i % 3]) for i in range(1, 30)]
    info = await write_snapshot(
        tmp_path,
        SnapshotState(jobs=jobs, runs={}, meta=SetMeta(paused=False), last_seq=1, next_id=30),
    )
    data = info.path.read_bytes()
    return info.path, data, frames_of(data)


async def test_a_frame_that_does_not_decode_is_named(tmp_path: Path) -> None:
    path, data, frames = await damaged(tmp_path)
    offset, length = frames[1]
    path.write_bytes(with_payload(data, offset, b"\xc1" * length))  # 0xc1: never valid msgpack
    with pytest.raises(CorruptState, match=rf"{path}: byte {offset}: snapshot frame does not"):
        load_snapshot(path)


async def test_a_checksum_failure_is_reported_before_an_undecodable_frame(
    tmp_path: Path,
) -> None:
    path, data, frames = await damaged(tmp_path)
    (bad_offset, bad_length), (flip_offset, _) = frames[1], frames[-1]
    data = with_payload(data, bad_offset, b"\xc1" * bad_length)
    flipped = bytearray(data)
    flipped[flip_offset + FRAME_HEADER.size] ^= 0x40  # a bit of the last frame's payload
    path.write_bytes(bytes(flipped))
    with pytest.raises(CorruptState, match=rf"{path}: byte {flip_offset}: checksum mismatch"):
        load_snapshot(path)


def test_no_checking_thread_is_left_behind() -> None:
    """The thread that verifies checksums is gone when ``load_snapshot`` returns."""
    before = threading.active_count()

    async def main() -> None:
        with tempfile.TemporaryDirectory() as root:
            info = await write_snapshot(
                Path(root),
                SnapshotState(
                    jobs=[job(1)], runs={}, meta=SetMeta(paused=False), last_seq=1, next_id=2
                ),
            )
            assert [j.id for j in load_snapshot(info.path).jobs] == [1]

    asyncio.run(main())
    assert threading.active_count() == before
