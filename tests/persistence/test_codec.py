"""Journal record format: framing, checksums, versions, and the torn-tail rule."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from scheduler.errors import CorruptState
from scheduler.model import (
    AddRun,
    Change,
    DeleteJob,
    DstFold,
    DstGap,
    DstPolicy,
    Frequency,
    Job,
    JobStatus,
    MisfirePolicy,
    OnCrash,
    Outcome,
    Overlap,
    Policy,
    Priority,
    Progress,
    PutJob,
    Repeat,
    RetryPolicy,
    Run,
    Schedule,
    SetMeta,
    Source,
)
from scheduler.persistence.codec import (
    RECORD_VERSION,
    RecordCodec,
    frame,
    scan_frames,
)

PATH = Path("/state/journal-00000000000000000001.log")

FULL_JOB = Job(
    id=(1_760_000_000_000 << 22) | 7,
    task="sendWelcomeEmail",
    payload={"email": "a@b.c", "nested": [1, 2.5, None, True, "ü"]},
    schedule=Schedule(
        repeat=Repeat(
            freq=Frequency.MONTHLY,
            interval=2,
            time="09:30",
            weekdays=("mon", "wed"),
            month_days=(1, 15, -1),
            until="2027-01-01",
            count=10,
        ),
        dst=DstPolicy(gap=DstGap.SHIFT, fold=DstFold.BOTH),
    ),
    timezone="Asia/Seoul",
    workflow_id="wf-1",
    workflow_name="Nightly backup",
    name="backup",
    status=JobStatus.PAUSED,
    priority=Priority.CRITICAL,
    policy=Policy(
        retry=RetryPolicy(max=5, delay=1.5, max_delay=60.0, jitter=0.0),
        timeout=30.0,
        misfire=MisfirePolicy(grace=120.0),
        overlap=Overlap.BUFFER_ONE,
        on_crash=OnCrash.ABANDON,
    ),
    unique_key="wf-1",
    source=Source.CONFIG,
    scheduled=1_760_003_600.0,
    fire=1_760_000_000.0,
    executed=1_760_000_000.5,
    completed=1_760_000_001.75,
    attempt=2,
    runs=3,
    interrupted=1,
    error="HTTP 503",
    result={"ok": False},
    progress=Progress(percent=42.5, message="half way"),
    paused_until=1_760_010_000.0,
    pause_reason="maintenance",
    pid=4242,
    pid_started=123456,
)

FULL_RUN = Run(
    job_id=FULL_JOB.id,
    fire=1_760_000_000.0,
    attempt=2,
    outcome=Outcome.SKIPPED_OVERLAP,
    started=1_760_000_000.5,
    ended=1_760_000_001.75,
    lateness=0.5,
    error="still running",
    result=["tail", "of", "stdout"],
    reason="skipped_overlap",
)

CHANGES: list[Change] = [
    PutJob(FULL_JOB),
    PutJob(Job(id=1, task="t", timezone="UTC")),
    DeleteJob(FULL_JOB.id),
    AddRun(FULL_RUN),
    SetMeta(paused=True),
    SetMeta(paused=False),
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: type(c).__name__)
def test_every_change_round_trips_with_its_sequence_number(change: Change) -> None:
    codec = RecordCodec()
    data = codec.encode(41, change)
    scan = scan_frames(data, PATH, tolerate_torn_tail=False)
    assert scan.torn_at is None
    [(offset, payload)] = scan.frames
    assert offset == 0
    assert codec.decode(payload, PATH, offset) == (41, change)


def _records(n: int) -> bytes:
    codec = RecordCodec()
    return b"".join(codec.encode(seq, SetMeta(paused=seq % 2 == 0)) for seq in range(1, n + 1))


def test_a_record_of_a_newer_format_is_reported_with_file_and_offset() -> None:
    older = _records(2)
    newer = frame(msgspec.msgpack.encode([RECORD_VERSION + 1, 3, {"type": "future"}]))
    scan = scan_frames(older + newer, PATH, tolerate_torn_tail=False)
    offset, payload = scan.frames[-1]
    with pytest.raises(CorruptState, match=rf"{PATH}: byte {len(older)}: .*version 2 is newer"):
        RecordCodec().decode(payload, PATH, offset)


def test_a_flipped_bit_in_a_complete_record_is_corruption_naming_its_offset() -> None:
    data = bytearray(_records(3))
    second = len(_records(1))
    data[second + 12] ^= 0x10
    with pytest.raises(CorruptState, match=rf"{PATH}: byte {second}: checksum mismatch"):
        scan_frames(bytes(data), PATH, tolerate_torn_tail=True)


def test_a_flipped_bit_in_a_length_field_is_caught_by_the_checksum() -> None:
    data = bytearray(_records(3))
    data[0] ^= 0x01  # the first record now claims to be one byte shorter (or longer)
    with pytest.raises(CorruptState, match=rf"{PATH}: byte 0: "):
        scan_frames(bytes(data), PATH, tolerate_torn_tail=True)


@pytest.mark.parametrize("keep", [1, 4, 7, 8, 9, 20])
def test_an_incomplete_last_record_is_a_torn_tail_only_when_tolerated(keep: int) -> None:
    whole = _records(3)
    start = len(_records(2))
    data = whole[: start + keep]
    scan = scan_frames(data, PATH, tolerate_torn_tail=True)
    assert (len(scan.frames), scan.torn_at) == (2, start)
    with pytest.raises(CorruptState, match=rf"{PATH}: byte {start}: "):
        scan_frames(data, PATH, tolerate_torn_tail=False)


def test_a_zero_filled_tail_is_a_torn_tail() -> None:
    data = _records(2) + bytes(300)
    scan = scan_frames(data, PATH, tolerate_torn_tail=True)
    assert (len(scan.frames), scan.torn_at) == (2, len(_records(2)))


def test_a_length_running_past_the_end_before_valid_records_is_corruption() -> None:
    data = bytearray(_records(5))
    second = len(_records(1))
    data[second + 3] = 0x01  # length of record 2 now runs past the end; records 3..5 follow
    with pytest.raises(CorruptState, match=rf"{PATH}: byte {second}: record runs past the end"):
        scan_frames(bytes(data), PATH, tolerate_torn_tail=True)


def test_an_absurd_length_is_corruption_even_at_the_tail() -> None:
    data = _records(1) + (2**31).to_bytes(4, "little") + bytes([1, 2, 3, 4])
    with pytest.raises(CorruptState, match="larger than any valid record"):
        scan_frames(data, PATH, tolerate_torn_tail=True)


def test_offsets_count_from_the_start_of_the_file() -> None:
    prefix = b"H" * 64
    data = prefix + _records(2)
    scan = scan_frames(data, PATH, start=64, tolerate_torn_tail=False)
    assert [f.offset for f in scan.frames] == [64, 64 + len(_records(1))]
