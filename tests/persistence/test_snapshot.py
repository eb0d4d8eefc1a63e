"""Snapshots: format, verification, generations, journal clean-up, and a loop that keeps turning."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from pathlib import Path

import msgspec
import pytest

from scheduler.errors import CorruptState, PersistenceError, StorageFull
from scheduler.model import PutJob, SetMeta
from scheduler.persistence import snapshot as snapshot_module
from scheduler.persistence.journal import FsyncMode, Journal
from scheduler.persistence.snapshot import (
    SNAPSHOT_VERSION,
    SnapshotState,
    load_snapshot,
    verify_snapshot,
    write_snapshot,
)
from tests.fakes import job, run
from tests.persistence.harness import damage_snapshot


def state(
    n_jobs: int, last_seq: int, *, runs_per_job: int = 2, paused: bool = False
) -> SnapshotState:
    jobs = [job(i, payload={"n": i}) for i in range(1, n_jobs + 1)]
    return SnapshotState(
        jobs=jobs,
        runs={j.id: tuple(run(j.id, k) for k in range(runs_per_job)) for j in jobs},
        meta=SetMeta(paused=paused),
        last_seq=last_seq,
        next_id=n_jobs + 1,
    )


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_a_snapshot_holds_every_job_run_and_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot_module, "SLICE", 7)  # several frames of each kind
    written = state(50, last_seq=123, runs_per_job=3, paused=True)
    info = await write_snapshot(tmp_path, written)
    assert (info.jobs, info.runs, info.last_seq) == (50, 150, 123)
    assert info.path == tmp_path / "snapshot-00000000000000000123.snap"
    assert info.size == info.path.stat().st_size
    loaded = load_snapshot(info.path)
    assert loaded.jobs == list(written.jobs)
    assert loaded.runs == [r for rs in written.runs.values() for r in rs]
    assert loaded.meta == SetMeta(paused=True)
    assert (loaded.header.last_seq, loaded.header.next_id) == (123, 51)


async def test_a_snapshot_is_private_and_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "snapshot-00000000000000000001.snap.tmp").write_bytes(b"left by a crash")
    info = await write_snapshot(tmp_path, state(3, last_seq=2))
    assert names(tmp_path) == [info.path.name]
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600


async def test_the_newest_two_generations_are_kept(tmp_path: Path) -> None:
    for seq in (10, 20, 30, 40):
        await write_snapshot(tmp_path, state(2, last_seq=seq))
    assert names(tmp_path) == [
        "snapshot-00000000000000000030.snap",
        "snapshot-00000000000000000040.snap",
    ]


async def test_journal_segments_go_once_the_older_kept_generation_covers_them(
    tmp_path: Path,
) -> None:
    journal = await Journal.open(
        tmp_path, fsync=FsyncMode.NEVER, batch_interval=0.01, start_seq=0, on_fatal=print
    )

    async def records_then_snapshot(n: int) -> None:
        for _ in range(n):
            journal.append(PutJob(job(journal.last_seq + 1)))
        journal.rotate()
        await write_snapshot(tmp_path, state(journal.last_seq, last_seq=journal.last_seq))

    await records_then_snapshot(3)  # segment 1 holds 1..3; snapshot 3 covers it
    assert "journal-00000000000000000001.log" not in names(tmp_path)
    await records_then_snapshot(3)  # segment 4 holds 4..6; the older snapshot (3) does not
    assert "journal-00000000000000000004.log" in names(tmp_path)
    await records_then_snapshot(3)  # now snapshot 6 is the older one kept
    assert names(tmp_path) == [
        "journal-00000000000000000007.log",
        "journal-00000000000000000010.log",
        "snapshot-00000000000000000006.snap",
        "snapshot-00000000000000000009.snap",
    ]
    await journal.close()


async def test_a_snapshot_that_does_not_read_back_is_removed_and_the_old_one_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await write_snapshot(tmp_path, state(2, last_seq=1))

    def unreadable(path: Path) -> None:
        raise CorruptState(f"{path}: byte 64: checksum mismatch")

    monkeypatch.setattr(snapshot_module, "verify_snapshot", unreadable)
    with pytest.raises(PersistenceError, match="failed verification"):
        await write_snapshot(tmp_path, state(2, last_seq=5))
    assert names(tmp_path) == ["snapshot-00000000000000000001.snap"]


DAMAGE = {
    "body-bit": r"byte \d+: checksum mismatch",
    "truncated": r"byte \d+: snapshot is truncated",
    "magic": r"byte 0: not a snapshot",
    "future-version": rf"byte 8: snapshot format version {SNAPSHOT_VERSION + 1} is newer",
    "empty": r"byte 0: snapshot is empty",
}


@pytest.mark.parametrize(("how", "message"), DAMAGE.items(), ids=DAMAGE.keys())
async def test_a_damaged_snapshot_is_reported_with_file_and_offset(
    tmp_path: Path, how: str, message: str
) -> None:
    info = await write_snapshot(tmp_path, state(30, last_seq=9))
    info.path.write_bytes(damage_snapshot(info.path.read_bytes(), how))
    with pytest.raises(CorruptState, match=rf"{info.path}: {message}"):
        load_snapshot(info.path)
    with pytest.raises(CorruptState, match=rf"{info.path}: {message}"):
        verify_snapshot(info.path)


async def test_a_frame_that_checks_out_but_does_not_decode_is_corruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = snapshot_module._payloads

    def bad_payloads(
        s: SnapshotState, encoder: msgspec.msgpack.Encoder
    ) -> object:  # a well-framed payload of the wrong shape
        for payload, n in real(s, encoder):
            yield (payload if n == 0 else msgspec.msgpack.encode([3, ["not a run"]])), n

    monkeypatch.setattr(snapshot_module, "_payloads", bad_payloads)
    info = await write_snapshot(tmp_path, state(2, last_seq=1))
    with pytest.raises(CorruptState, match=r"byte \d+: snapshot frame does not decode"):
        load_snapshot(info.path)


async def test_the_event_loop_keeps_turning_while_a_large_snapshot_is_written(
    tmp_path: Path,
) -> None:
    big = state(200_000, last_seq=1, runs_per_job=0)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    worst = 0.0

    async def probe() -> None:
        nonlocal worst
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = loop.time()
            worst = max(worst, now - last)
            last = now

    probing = asyncio.ensure_future(probe())
    info = await write_snapshot(tmp_path, big)
    done.set()
    await probing
    assert info.jobs == 200_000
    assert worst < 0.1, f"the loop stalled for {worst * 1000:.0f} ms"


async def test_short_writes_are_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.writev

    def dribble(fd: int, buffers: list[memoryview]) -> int:
        return real(fd, [bytes(buffers[0][:3])])  # at most 3 bytes per call

    monkeypatch.setattr(os, "writev", dribble)
    written = state(4, last_seq=2)
    info = await write_snapshot(tmp_path, written)
    assert load_snapshot(info.path).jobs == list(written.jobs)


async def test_a_full_disk_fails_the_snapshot_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await write_snapshot(tmp_path, state(2, last_seq=1))

    def full(fd: int, buffers: list[memoryview]) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full)
    with pytest.raises(StorageFull, match="snapshot not written"):
        await write_snapshot(tmp_path, state(2, last_seq=5))
    assert names(tmp_path) == ["snapshot-00000000000000000001.snap"]


async def test_a_full_disk_snapshot_error_names_no_path_but_the_log_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def full(fd: int, buffers: list[memoryview]) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full)
    with pytest.raises(StorageFull) as refused:
        await write_snapshot(tmp_path, state(2, last_seq=5))
    assert str(tmp_path) not in refused.value.message
    assert refused.value.message == "the disk is full: snapshot not written"
    [logged] = [r for r in caplog.records if "snapshot not written" in r.getMessage()]
    assert str(tmp_path / "snapshot-00000000000000000005.snap") in logged.getMessage()
    assert "No space left on device" in logged.getMessage()
