"""Recovery: snapshot + journal replay, the torn-tail rule, damage that stops the start, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from scheduler.errors import CorruptState, PersistenceError
from scheduler.model import AddRun, Change, DeleteJob, Job, JobStatus, PutJob, Run, SetMeta
from scheduler.persistence.codec import RecordCodec, frame
from scheduler.persistence.journal import FsyncMode, Journal
from scheduler.persistence.recovery import load_state, verify_state_dir
from scheduler.persistence.snapshot import SnapshotState, write_snapshot
from tests import ROOT
from tests.fakes import job, run
from tests.persistence.harness import CRASH_POINTS, DAMAGE, damage_snapshot, files_of


def write_segment(directory: Path, first_seq: int, changes: list[Change]) -> Path:
    codec = RecordCodec()
    path = directory / f"journal-{first_seq:020d}.log"
    path.write_bytes(b"".join(codec.encode(first_seq + i, c) for i, c in enumerate(changes)))
    return path


def snapshot_state(
    jobs: list[Job], last_seq: int, runs: dict[int, tuple[Run, ...]]
) -> SnapshotState:
    return SnapshotState(
        jobs=jobs, runs=runs, meta=SetMeta(paused=False), last_seq=last_seq, next_id=100
    )


def test_an_empty_or_missing_directory_recovers_to_an_empty_state(tmp_path: Path) -> None:
    recovered = load_state(tmp_path / "new")
    assert (recovered.jobs, recovered.runs, recovered.last_seq) == ({}, {}, 0)
    assert recovered.meta == SetMeta(paused=False)
    assert (tmp_path / "new").is_dir()


def test_a_state_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_text("")
    with pytest.raises(PersistenceError, match="not a directory"):
        load_state(path)
    assert verify_state_dir(path) == [f"{path}: state directory is not a directory"]


async def test_the_journal_after_the_snapshot_is_replayed_in_order(tmp_path: Path) -> None:
    await write_snapshot(
        tmp_path, snapshot_state([job(1), job(2)], 3, {1: (run(1, 0),), 2: (run(2, 0),)})
    )
    write_segment(
        tmp_path,
        2,  # this segment straddles the snapshot: records 2 and 3 are already in it
        [
            PutJob(job(2, status=JobStatus.RUNNING)),
            PutJob(job(9)),
            PutJob(job(1, status=JobStatus.COMPLETED)),  # 4: replaces job 1
            DeleteJob(2),  # 5: removes job 2 and its runs
            *[AddRun(run(1, n)) for n in range(1, 5)],  # 6..9: history keeps the newest 3
            PutJob(job(7)),
            SetMeta(paused=True),
        ],
    )
    recovered = load_state(tmp_path, history=3)
    assert recovered.jobs == {1: job(1, status=JobStatus.COMPLETED), 7: job(7)}
    assert recovered.runs == {1: [run(1, 2), run(1, 3), run(1, 4)]}
    assert recovered.meta == SetMeta(paused=True)
    assert recovered.last_seq == 11
    assert recovered.next_id == 100
    stats = recovered.stats
    assert (stats.snapshot_jobs, stats.records_replayed, stats.segments) == (2, 8, 1)
    assert stats.snapshot == tmp_path / "snapshot-00000000000000000003.snap"


def test_replay_is_idempotent_and_a_restart_sees_the_same_state(tmp_path: Path) -> None:
    write_segment(tmp_path, 1, [PutJob(job(1)), PutJob(job(1)), AddRun(run(1, 1))])
    first = load_state(tmp_path)
    second = load_state(tmp_path)
    assert (first.jobs, first.runs, first.last_seq) == (second.jobs, second.runs, second.last_seq)
    assert first.next_id == 2


def test_a_torn_last_record_is_cut_at_every_byte_offset(tmp_path: Path) -> None:
    codec = RecordCodec()
    changes: list[Change] = [PutJob(job(i)) for i in range(1, 4)]
    earlier = b"".join(codec.encode(i + 1, c) for i, c in enumerate(changes))
    last = codec.encode(4, PutJob(job(4)))
    for keep in range(1, len(last)):
        directory = tmp_path / str(keep)
        directory.mkdir()
        segment = directory / "journal-00000000000000000001.log"
        segment.write_bytes(earlier + last[:keep])
        assert verify_state_dir(directory) == []  # a torn tail is repaired, not a problem
        recovered = load_state(directory)
        assert sorted(recovered.jobs) == [1, 2, 3], keep
        assert recovered.last_seq == 3
        assert recovered.stats.torn_bytes == keep
        assert segment.read_bytes() == earlier
        broken = directory / "journal-00000000000000000001.log.broken"
        assert recovered.stats.broken_copy == broken
        assert broken.read_bytes() == earlier + last[:keep]
    assert len(list(tmp_path.iterdir())) == len(last) - 1


async def test_after_a_cut_the_journal_continues_and_a_second_cut_keeps_both_copies(
    tmp_path: Path,
) -> None:
    codec = RecordCodec()
    segment = write_segment(tmp_path, 1, [PutJob(job(1))])
    with segment.open("ab") as f:
        f.write(codec.encode(2, PutJob(job(2)))[:5])
    recovered = load_state(tmp_path)
    journal = await Journal.open(
        tmp_path, fsync=FsyncMode.ALWAYS, batch_interval=0.01, start_seq=1, on_fatal=print
    )
    journal.append(PutJob(job(3)))
    await journal.commit()
    await journal.close()
    new_segment = tmp_path / "journal-00000000000000000002.log"
    with new_segment.open("ab") as f:
        f.write(codec.encode(3, PutJob(job(4)))[:5])
    recovered = load_state(tmp_path)
    assert sorted(recovered.jobs) == [1, 3]
    assert (tmp_path / "journal-00000000000000000001.log.broken").exists()
    assert (tmp_path / "journal-00000000000000000002.log.broken").exists()


@pytest.mark.parametrize("where", ["middle-of-last-segment", "end-of-older-segment"])
def test_a_bit_flip_is_corruption_naming_file_and_offset_and_nothing_is_touched(
    tmp_path: Path, where: str
) -> None:
    older = write_segment(tmp_path, 1, [PutJob(job(i)) for i in range(1, 4)])
    newer = write_segment(tmp_path, 4, [PutJob(job(i)) for i in range(4, 9)])
    record = len(RecordCodec().encode(1, PutJob(job(1))))
    target, offset = (newer, 2 * record) if where.startswith("middle") else (older, 2 * record)
    data = bytearray(target.read_bytes())
    data[offset + 20] ^= 0x01
    target.write_bytes(bytes(data))
    before = files_of(tmp_path)
    message = rf"{target}: byte {offset}: checksum mismatch"
    with pytest.raises(CorruptState, match=message):
        load_state(tmp_path)
    assert files_of(tmp_path) == before
    [problem] = verify_state_dir(tmp_path)
    assert f"{target}: byte {offset}: checksum mismatch" in problem
    assert files_of(tmp_path) == before


def test_a_torn_tail_in_an_older_segment_is_corruption(tmp_path: Path) -> None:
    older = write_segment(tmp_path, 1, [PutJob(job(1)), PutJob(job(2))])
    size = older.stat().st_size
    os.truncate(older, size - 3)
    write_segment(tmp_path, 3, [PutJob(job(3))])
    with pytest.raises(CorruptState, match=rf"{older}: byte \d+: record runs past the end"):
        load_state(tmp_path)


def test_a_missing_segment_is_corruption(tmp_path: Path) -> None:
    write_segment(tmp_path, 1, [PutJob(job(1))])
    third = write_segment(tmp_path, 3, [PutJob(job(3))])
    with pytest.raises(CorruptState, match=rf"{third}: byte 0: segment starts at record 3"):
        load_state(tmp_path)


async def test_a_journal_that_resumes_after_a_gap_from_the_snapshot_is_corruption(
    tmp_path: Path,
) -> None:
    await write_snapshot(tmp_path, snapshot_state([job(1)], 2, {}))
    segment = write_segment(tmp_path, 5, [PutJob(job(5))])
    with pytest.raises(CorruptState, match=rf"{segment}: byte 0: journal resumes at record 5"):
        load_state(tmp_path)


def test_a_record_of_a_newer_format_stops_the_start(tmp_path: Path) -> None:
    segment = write_segment(tmp_path, 1, [PutJob(job(1))])
    size = segment.stat().st_size
    with segment.open("ab") as f:
        f.write(frame(msgspec.msgpack.encode([2, 2, {"type": "future"}])))
    with pytest.raises(CorruptState, match=rf"{segment}: byte {size}: .*version 2 is newer"):
        load_state(tmp_path)


async def _two_generations(directory: Path) -> tuple[Path, Path]:
    """Snapshots at 2 and 4 with the journal kept back to the older one, as in operation."""
    journal = await Journal.open(
        directory, fsync=FsyncMode.NEVER, batch_interval=0.01, start_seq=0, on_fatal=print
    )
    paths = []
    for i in range(1, 7):
        journal.append(PutJob(job(i)))
        if i in (2, 4):
            journal.rotate()
            jobs = [job(k) for k in range(1, i + 1)]
            paths.append((await write_snapshot(directory, snapshot_state(jobs, i, {}))).path)
    await journal.close()
    return paths[0], paths[1]


@pytest.mark.parametrize("how", DAMAGE)
async def test_a_damaged_snapshot_falls_back_to_the_previous_generation(
    tmp_path: Path, how: str
) -> None:
    older, newer = await _two_generations(tmp_path)
    newer.write_bytes(damage_snapshot(newer.read_bytes(), how))
    assert verify_state_dir(tmp_path) == []
    recovered = load_state(tmp_path)
    assert sorted(recovered.jobs) == [1, 2, 3, 4, 5, 6]
    assert recovered.stats.snapshot == older
    [reason] = recovered.stats.skipped_snapshots
    assert str(newer) in reason


@pytest.mark.parametrize("how", DAMAGE)
async def test_a_damaged_snapshot_without_an_older_generation_stops_the_start(
    tmp_path: Path, how: str
) -> None:
    older, newer = await _two_generations(tmp_path)
    older.unlink()
    newer.write_bytes(damage_snapshot(newer.read_bytes(), how))
    before = files_of(tmp_path)
    with pytest.raises(CorruptState, match=rf"{newer}: byte \d+: .*no valid older snapshot"):
        load_state(tmp_path)
    assert files_of(tmp_path) == before
    [problem] = verify_state_dir(tmp_path)
    assert str(newer) in problem


CRASH_CHILD = """
import asyncio, sys
from pathlib import Path
from scheduler.model import Job, PutJob, SetMeta
from scheduler.persistence.journal import FsyncMode, Journal
from scheduler.persistence.recovery import load_state
from scheduler.persistence.snapshot import SnapshotState, write_snapshot

async def main():
    directory = Path(sys.argv[1])
    recovered = load_state(directory)
    jobs = dict(recovered.jobs)
    journal = await Journal.open(directory, fsync=FsyncMode.ALWAYS, batch_interval=0.01,
                                 start_seq=recovered.last_seq, on_fatal=print)
    start = max(jobs, default=0)
    for i in range(start + 1, start + 31):
        job = Job(id=i, task="t", timezone="UTC")
        journal.append(PutJob(job))
        jobs[i] = job
        await journal.commit()
        print(i, flush=True)
        if i % 10 == 0:
            journal.rotate()
            state = SnapshotState(jobs=list(jobs.values()), runs={}, meta=SetMeta(paused=False),
                                  last_seq=journal.last_seq, next_id=i + 1)
            await write_snapshot(directory, state)
    await journal.close()

asyncio.run(main())
"""


def _child(directory: Path, crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SCHEDULER_CRASH_AT"}
    if crash_at:
        env["SCHEDULER_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-c", CRASH_CHILD, str(directory)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("point", CRASH_POINTS)
@pytest.mark.integration
def test_a_crash_at_each_write_step_leaves_a_recoverable_directory(
    tmp_path: Path, point: str
) -> None:
    first = _child(tmp_path, point)
    assert first.returncode == -signal.SIGKILL, first.stderr
    acknowledged = [int(line) for line in first.stdout.split()]
    recovered = load_state(tmp_path)
    ids = sorted(recovered.jobs)
    # Everything acknowledged is there; at most the one record in flight beyond it; no gaps.
    assert ids[: len(acknowledged)] == acknowledged
    assert ids == list(range(1, len(ids) + 1))
    assert len(ids) - len(acknowledged) <= 1
    second = _child(tmp_path, None)  # the directory is fit to run on, too
    assert second.returncode == 0, second.stderr
    assert sorted(load_state(tmp_path).jobs) == list(range(1, len(ids) + 31))
