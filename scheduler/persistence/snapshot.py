"""Snapshots: the whole store in one verified file, so recovery replays only a short journal.

File ``snapshot-{last_seq:020d}.snap``::

    header  magic "SCHEDSNP" | u32 version | u32 crc32 of the rest of the header |
            u64 last_seq | u64 next_id | u64 jobs | u64 runs | u64 frames | u64 body bytes
    body    frames (``u32 length | u32 crc32 | payload``, as in the journal); each payload is a
            msgpack array ``[kind, ...]``: 1 = meta; 3 = up to SLICE runs; 4 = up to SLICE jobs
            that share one index key, ``[4, status, type, task, jobs]`` (version 2); 2 = up
            to SLICE jobs of any key (version 1, still read)

Version 2 groups the jobs by the store's index key (status, type, task): a restart then takes
each job's bucket from its frame instead of computing a million keys (0.4 s at 1M jobs). The
writer pays for that grouping, off the event loop. A version 1 snapshot loads as before (the
store groups its jobs itself).

Policy. The snapshot is built off the event loop: a worker thread encodes SLICE (10,000)
records per msgspec call. msgspec holds the GIL for the length of one call, so slicing is what
bounds the loop's stall (a few ms per slice) even for a million jobs. The store must hand over a
state that does not change while it is written: a list of jobs and a dict copy whose values are
tuples (records are immutable, so no deep copy is needed).

Write order (each step survives a crash at any point): temp file, fsync, rename, fsync of the
directory, read back and verify, then clean up: keep the newest KEEP (2) snapshots and delete
the journal segments wholly covered by the OLDEST one kept. Keeping the journal back to the
previous generation is what makes that generation useful: if the newest snapshot is damaged,
recovery loads the previous one and replays the journal from there, losing nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import mmap
import os
import struct
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import attrgetter
from pathlib import Path

import msgspec

from scheduler.errors import CorruptState, PersistenceError, StorageFull
from scheduler.index import Key
from scheduler.model import Job, JobStatus, JobType, Run, SetMeta
from scheduler.persistence import files
from scheduler.persistence.codec import (
    FRAME_HEADER,
    MAX_FRAME,
    Frame,
    check_version,
    frame_header,
    scan_frames,
)
from scheduler.persistence.faults import crash_point

log = logging.getLogger(__name__)

MAGIC = b"SCHEDSNP"
SNAPSHOT_VERSION = 2
SLICE = 10_000
KEEP = 2
_HEADER = struct.Struct("<8sII6Q")
_CRC_FROM = 16  # the header checksum covers the fields after itself


class SnapshotState(msgspec.Struct, frozen=True, kw_only=True):
    """The store at one journal position. Must not change while the snapshot is written."""

    jobs: Sequence[Job]
    runs: Mapping[int, Sequence[Run]]
    meta: SetMeta
    last_seq: int
    next_id: int


class SnapshotInfo(msgspec.Struct, frozen=True, kw_only=True):
    path: Path
    last_seq: int
    jobs: int
    runs: int
    size: int
    seconds: float
    removed: tuple[Path, ...]  # older snapshots and journal segments deleted afterwards


class SnapshotHeader(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    last_seq: int
    next_id: int
    jobs: int
    runs: int
    frames: int
    body: int


class LoadedSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    header: SnapshotHeader
    meta: SetMeta
    jobs: list[Job]
    runs: list[Run]
    #: Job ids by index key, as the frames grouped them; None for a version 1 snapshot.
    groups: dict[Key, list[int]] | None


class _MetaFrame(msgspec.Struct, array_like=True, frozen=True, gc=False, tag=1):
    meta: SetMeta


class _JobsFrame(msgspec.Struct, array_like=True, frozen=True, gc=False, tag=2):
    """Version 1: jobs of any key."""

    jobs: list[Job]


class _KeyedJobsFrame(msgspec.Struct, array_like=True, frozen=True, gc=False, tag=4):
    """Version 2: jobs that all have this index key."""

    status: JobStatus
    kind: JobType
    task: str
    jobs: list[Job]


class _RunsFrame(msgspec.Struct, array_like=True, frozen=True, gc=False, tag=3):
    runs: list[Run]


_Frame = _MetaFrame | _JobsFrame | _KeyedJobsFrame | _RunsFrame
_JOB_ID = attrgetter("id")


async def write_snapshot(dir: Path, state: SnapshotState) -> SnapshotInfo:
    """Write ``state`` as the newest snapshot in ``dir`` (one at a time), off the event loop."""
    return await asyncio.to_thread(_write_snapshot, dir, state)


def _write_snapshot(directory: Path, state: SnapshotState) -> SnapshotInfo:
    started = time.perf_counter()
    files.ensure_state_dir(directory)
    final = directory / files.snapshot_name(state.last_seq)
    try:
        header = _publish(final, state)
    except OSError as exc:
        files.remove_quietly(final.with_name(final.name + ".tmp"))  # give the space back
        if exc.errno in files.FULL_ERRNOS:
            # The message of a StorageFull may reach an HTTP client: the path goes to the log.
            log.warning(
                "%s: snapshot not written, the disk is full (%s); the journal keeps every "
                "change meanwhile", final, exc,
            )  # fmt: skip
            raise StorageFull("the disk is full: snapshot not written") from exc
        raise PersistenceError(f"{final}: snapshot not written: {exc}") from exc
    _verify_written(final, header)
    crash_point("snapshot.before_cleanup")
    try:
        removed = _clean_up(directory)
    except OSError as exc:
        raise PersistenceError(f"{final}: snapshot written, old files not removed: {exc}") from exc
    info = SnapshotInfo(
        path=final,
        last_seq=state.last_seq,
        jobs=header.jobs,
        runs=header.runs,
        size=_HEADER.size + header.body,
        seconds=time.perf_counter() - started,
        removed=removed,
    )
    log.info(
        "snapshot %s: %d jobs, %d runs, %d bytes in %.3f s; removed %d old files",
        final.name, info.jobs, info.runs, info.size, info.seconds, len(removed),
    )  # fmt: skip
    return info


def _publish(final: Path, state: SnapshotState) -> SnapshotHeader:
    """Temp file, fsync, rename, fsync of the directory: the new name appears whole or not."""
    for stale in final.parent.glob("snapshot-*.snap.tmp"):
        files.remove_quietly(stale)  # left by a crash mid-write
    tmp = final.with_name(final.name + ".tmp")
    header = _write_tmp(tmp, state)
    crash_point("snapshot.after_tmp_write")
    tmp.replace(final)
    crash_point("snapshot.after_rename")
    files.fsync_dir(final.parent)
    return header


def _write_tmp(tmp: Path, state: SnapshotState) -> SnapshotHeader:
    fd = files.open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        _write_all(fd, bytes(_HEADER.size))  # placeholder; pwrite leaves the offset alone
        body = frames = runs = 0
        encoder = msgspec.msgpack.Encoder()
        for payload, n_runs in _payloads(state, encoder):
            body += _write_all(fd, frame_header(payload), payload)
            frames += 1
            runs += n_runs
        header = SnapshotHeader(
            version=SNAPSHOT_VERSION,
            last_seq=state.last_seq,
            next_id=state.next_id,
            jobs=len(state.jobs),
            runs=runs,
            frames=frames,
            body=body,
        )
        os.pwrite(fd, _pack_header(header), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    return header


def _payloads(
    state: SnapshotState, encoder: msgspec.msgpack.Encoder
) -> Iterator[tuple[bytes, int]]:
    """Encoded frame payloads with the number of runs in each; one msgspec call per slice."""
    yield encoder.encode(_MetaFrame(state.meta)), 0
    for (status, kind, task), jobs in group_jobs(state.jobs).items():
        for start in range(0, len(jobs), SLICE):
            frame = _KeyedJobsFrame(status, kind, task, jobs[start : start + SLICE])
            yield encoder.encode(frame), 0
    pending: list[Run] = []
    for job_runs in state.runs.values():
        pending.extend(job_runs)
        if len(pending) >= SLICE:
            yield encoder.encode(_RunsFrame(pending)), len(pending)
            pending = []
    if pending:
        yield encoder.encode(_RunsFrame(pending)), len(pending)


def group_jobs(jobs: Iterable[Job]) -> dict[Key, list[Job]]:
    """Jobs by index key (``JobIndex.key``, written out inline: it runs a million times)."""
    groups: dict[Key, list[Job]] = {}
    for job in jobs:
        key = (job.status, job.schedule.type, job.task)
        group = groups.get(key)
        if group is None:
            groups[key] = [job]
        else:
            group.append(job)
    return groups


def _write_all(fd: int, *parts: bytes) -> int:
    """Write ``parts`` in order, resuming after short writes; return the byte count."""
    views = [memoryview(part) for part in parts if part]
    total = sum(len(view) for view in views)
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if views:
            views[0] = views[0][written:]
    return total


def _pack_header(header: SnapshotHeader) -> bytes:
    fields = (header.last_seq, header.next_id, header.jobs, header.runs, header.frames, header.body)
    rest = struct.pack("<6Q", *fields)
    crc = zlib.crc32(rest, zlib.crc32(MAGIC + header.version.to_bytes(4, "little")))
    return _HEADER.pack(MAGIC, header.version, crc, *fields)


def _verify_written(path: Path, expected: SnapshotHeader) -> None:
    """Read the file back; a mismatch removes it (older generations stay) and raises."""
    try:
        header = verify_snapshot(path)
    except CorruptState as exc:
        problem = str(exc)
    else:
        if header == expected:
            return
        problem = f"{path}: header reads back as {header}, wrote {expected}"
    files.remove_quietly(path)
    files.fsync_dir(path.parent)
    raise PersistenceError(f"snapshot failed verification and was removed: {problem}")


def _clean_up(directory: Path) -> tuple[Path, ...]:
    removed: list[Path] = []
    snapshots = files.list_snapshots(directory)
    removed += [path for _, path in snapshots[:-KEEP] if files.remove_quietly(path)]
    covered = snapshots[-KEEP:][0][0]
    segments = files.list_segments(directory)
    for (_, path), (next_first, _) in itertools.pairwise(segments):
        if next_first - 1 <= covered and files.remove_quietly(path):
            removed.append(path)
    if removed:
        files.fsync_dir(directory)
    return tuple(removed)


# --- reading -------------------------------------------------------------------------------


def read_header(data: bytes | mmap.mmap, path: Path) -> SnapshotHeader:
    """The checked header of a snapshot file's bytes; CorruptState names what is wrong."""
    if not data:
        raise CorruptState(f"{path}: byte 0: snapshot is empty")
    if len(data) < _HEADER.size:
        raise CorruptState(f"{path}: byte {len(data)}: snapshot header is truncated")
    magic, version, crc, *fields = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CorruptState(f"{path}: byte 0: not a snapshot (bad magic {magic!r})")
    check_version(version, SNAPSHOT_VERSION, path, 8, "snapshot")
    if zlib.crc32(data[_CRC_FROM : _HEADER.size], zlib.crc32(data[:12])) != crc:
        raise CorruptState(f"{path}: byte 12: snapshot header checksum mismatch")
    last_seq, next_id, jobs, runs, n_frames, body = fields
    header = SnapshotHeader(
        version=version, last_seq=last_seq, next_id=next_id, jobs=jobs, runs=runs,
        frames=n_frames, body=body,
    )  # fmt: skip
    expected = _HEADER.size + body
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise CorruptState(
            f"{path}: byte {min(len(data), expected)}: snapshot is {what} "
            f"({len(data)} bytes, header says {expected})"
        )
    return header


def verify_snapshot(path: Path) -> SnapshotHeader:
    """Check header, size and every frame's checksum without decoding records."""
    data = _mapped(path)
    header = read_header(data, path)
    _checked_frames(data, path, header)
    return header


def _mapped(path: Path) -> bytes | mmap.mmap:
    """The file's bytes, mapped rather than read: the pages already in the page cache are
    used in place, where reading 165 MB (1M jobs) into a new bytes object costs 0.1 s of
    copying and page zeroing. Snapshots are never changed in place (written whole, renamed,
    and the state directory is locked), so the mapping cannot change under the reader."""
    with path.open("rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            return b""  # an empty file cannot be mapped; read_header reports it
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)


def _checked_frames(data: bytes | mmap.mmap, path: Path, header: SnapshotHeader) -> list[Frame]:
    scan = scan_frames(
        data, path, start=_HEADER.size, max_length=MAX_FRAME, tolerate_torn_tail=False
    )
    if len(scan.frames) != header.frames:
        raise CorruptState(
            f"{path}: byte {len(data)}: {len(scan.frames)} frames, header says {header.frames}"
        )
    return scan.frames


def load_snapshot(path: Path) -> LoadedSnapshot:
    """Read, verify and decode a snapshot; CorruptState names the file and byte offset.

    The frames' checksums are verified on a second thread while this one decodes the frames
    (zlib releases the GIL, so at 1M jobs this hides ~0.1 s); nothing decoded is returned
    before every checksum has passed, and damage is reported as a check before decoding
    would report it (a checksum failure wins over a frame that does not decode)."""
    data = _mapped(path)
    header = read_header(data, path)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="snapshot-check") as pool:
        checked = pool.submit(_checked_frames, data, path, header)
        try:
            snap = _decode(data, path, header)
        except CorruptState:
            checked.result()  # raises first if a checksum failed
            raise
        checked.result()
    return snap


def _decode(data: bytes | mmap.mmap, path: Path, header: SnapshotHeader) -> LoadedSnapshot:
    decoder: msgspec.msgpack.Decoder[_Frame] = msgspec.msgpack.Decoder(_Frame)
    meta: SetMeta | None = None
    jobs: list[Job] = []
    runs: list[Run] = []
    groups: dict[Key, list[int]] | None = {}
    for offset, payload in _frame_spans(data):
        try:
            item = decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise CorruptState(
                f"{path}: byte {offset}: snapshot frame does not decode: {exc}"
            ) from exc
        if isinstance(item, _MetaFrame):
            meta = item.meta
        elif isinstance(item, _RunsFrame):
            runs += item.runs
        else:
            jobs += item.jobs
            if isinstance(item, _JobsFrame):
                groups = None  # version 1: the store groups the jobs itself
            elif groups is not None:
                ids = groups.setdefault((item.status, item.kind, item.task), [])
                ids += map(_JOB_ID, item.jobs)
    if meta is None or len(jobs) != header.jobs or len(runs) != header.runs:
        raise CorruptState(
            f"{path}: byte {len(data)}: snapshot holds {len(jobs)} jobs and {len(runs)} runs"
            f"{'' if meta else ' and no meta'}; header says {header.jobs} and {header.runs}"
        )
    return LoadedSnapshot(header=header, meta=meta, jobs=jobs, runs=runs, groups=groups)


def _frame_spans(data: bytes | mmap.mmap) -> Iterator[tuple[int, memoryview]]:
    """Each frame's offset and payload, by the length fields alone: the checksums and the
    frame count are :func:`_checked_frames`' job, which runs beside this."""
    view = memoryview(data)
    offset, size = _HEADER.size, len(data)
    while offset + FRAME_HEADER.size <= size:
        start = offset + FRAME_HEADER.size
        end = start + FRAME_HEADER.unpack_from(view, offset)[0]
        if end > size:
            return
        yield offset, view[start:end]
        offset = end
