"""Recovery: rebuild the store from the newest valid snapshot plus the journal after it.

Policy:

- Snapshot: the newest whose header, size and checksums verify; if it is damaged in any way
  (bit flip, truncation, bad magic, newer format, empty) the previous generation is used and the
  reason logged. Snapshots exist but none is valid: CorruptState (no silent empty start).
- Journal: records with ``seq`` above the snapshot's ``last_seq`` are replayed in order. Replay
  is idempotent: ``PutJob`` carries the whole job, so applying a record twice changes nothing.
  ``PutJob`` replaces, ``DeleteJob`` removes the job and its runs, ``AddRun`` appends and keeps
  the newest ``history`` runs, ``SetMeta`` replaces. Sequence numbers must be contiguous from the
  snapshot on; a gap is corruption (a lost segment is lost acknowledged data).
- Damage: only an incomplete last record of the last segment is cut off (see ``codec``): the
  segment is first copied to ``<name>.broken``, then truncated, and the byte count is logged and
  returned in the stats. Any other damage raises CorruptState naming the file and byte offset,
  and then no file has been touched: everything is read and checked before anything is written.
- When the previous process was last alive: the newest instant its records hold (a job's
  creation, start or end, a run's end) and the newest time one of its files was written (read
  before a torn tail is cut). The engine keeps the span from then to this start (see
  :mod:`scheduler.engine.recovery`), so that ``GET /api/jobs/{id}/explain`` can say that runs
  were missed because the daemon was down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import operator
import os
import time
from collections.abc import Iterator
from pathlib import Path

from scheduler.errors import CorruptState, PersistenceError
from scheduler.ids import created_at
from scheduler.index import JobIndex, Key
from scheduler.model import AddRun, Change, DeleteJob, Job, PutJob, Run, SetMeta
from scheduler.persistence import files
from scheduler.persistence.codec import RecordCodec, scan_frames
from scheduler.persistence.snapshot import LoadedSnapshot, load_snapshot

log = logging.getLogger(__name__)

_JOB_ID = operator.attrgetter("id")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryStats:
    snapshot: Path | None  # the snapshot loaded, None when starting from the journal alone
    skipped_snapshots: tuple[str, ...]  # why newer snapshots were not used
    snapshot_jobs: int
    segments: int
    records_replayed: int
    torn_bytes: int  # bytes of an incomplete last record that were cut off
    broken_copy: Path | None  # the copy of the segment made before cutting
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RecoveredState:
    """What the store loads. ``runs`` lists hold at most ``history`` runs, oldest first."""

    jobs: dict[int, Job]
    runs: dict[int, list[Run]]
    meta: SetMeta
    last_seq: int
    next_id: int
    stats: RecoveryStats
    #: The ids of ``jobs`` by index key (for ``Store.load``), or None when not known (no
    #: snapshot, or a version 1 snapshot).
    groups: dict[Key, list[int]] | None = None
    #: The newest instant the records hold (a job created, started or ended, a run ended), or
    #: None for an empty state: the previous process was alive then.
    last_recorded: float | None = None
    #: The newest modification time of a snapshot or journal segment, or None (no file).
    last_written: float | None = None


@dataclasses.dataclass(slots=True)
class _Builder:
    """State being rebuilt, plus what the repair step must do once everything has checked out."""

    history: int
    jobs: dict[int, Job] = dataclasses.field(default_factory=dict)
    runs: dict[int, list[Run]] = dataclasses.field(default_factory=dict)
    meta: SetMeta = dataclasses.field(default_factory=lambda: SetMeta(paused=False))
    snapshot: Path | None = None
    skipped: tuple[str, ...] = ()
    snapshot_seq: int = 0
    snapshot_jobs: int = 0
    last_seq: int = 0
    next_id: int = 0
    segments: int = 0
    replayed: int = 0
    torn: tuple[Path, bytes, int] | None = None  # segment, its bytes, where the tail starts
    empty_tail: tuple[Path, ...] = ()  # empty segments after the last record: nothing to keep
    groups: dict[Key, list[int]] | None = None  # the snapshot's, as of the snapshot
    touched: set[int] = dataclasses.field(default_factory=set)  # jobs the replay put or deleted
    newest: float = 0.0  # the newest instant the records hold (see RecoveredState.last_recorded)

    def load(self, snap: LoadedSnapshot, path: Path) -> None:
        self.snapshot = path
        self.snapshot_seq = self.last_seq = snap.header.last_seq
        self.next_id = snap.header.next_id
        self.meta = snap.meta
        # zip over a C-level attrgetter: half the cost of a dict comprehension at 1M jobs.
        self.jobs = dict(zip(map(_JOB_ID, snap.jobs), snap.jobs, strict=True))
        self.snapshot_jobs = len(self.jobs)
        self.groups = snap.groups
        # The newest job's creation is in the id counter; the newest run end is looked for in
        # the loop that files the runs anyway (one comparison each, not a second pass).
        newest = max(self.newest, created_at(self.next_id))
        for run in snap.runs:
            self._add_run(run)
            ended = run.ended
            if ended is not None and ended > newest:
                newest = ended
        self.newest = newest

    def apply(self, change: Change) -> None:
        if isinstance(change, PutJob):
            job = change.job
            self.jobs[job.id] = job
            self.next_id = max(self.next_id, job.id + 1)
            self.touched.add(job.id)
            self.newest = max(self.newest, created_at(job.id), job.executed or 0.0)
            self.newest = max(self.newest, job.completed or 0.0)
        elif isinstance(change, DeleteJob):
            self.jobs.pop(change.job_id, None)
            self.runs.pop(change.job_id, None)
            self.touched.add(change.job_id)
        elif isinstance(change, AddRun):
            self._add_run(change.run)
            self.newest = max(self.newest, change.run.ended or change.run.started or 0.0)
        else:
            self.meta = change

    def final_groups(self) -> dict[Key, list[int]] | None:
        """The snapshot's groups brought up to date with the replay: the jobs it put or
        deleted leave their old group, and those still there join the group of their key."""
        groups, touched = self.groups, self.touched
        if groups is None or not touched:
            return groups
        moved = {key: [i for i in ids if i not in touched] for key, ids in groups.items()}
        for job_id in touched:
            job = self.jobs.get(job_id)
            if job is not None:
                moved.setdefault(JobIndex.key(job), []).append(job_id)
        return {key: ids for key, ids in moved.items() if ids}

    def _add_run(self, run: Run) -> None:
        runs = self.runs.get(run.job_id)
        if runs is None:
            self.runs[run.job_id] = [run]
            return
        runs.append(run)
        if len(runs) > self.history:
            del runs[: len(runs) - self.history]


def load_state(dir: Path, *, history: int = 20) -> RecoveredState:
    """Recover the state in ``dir`` (created if missing). Raises CorruptState, PersistenceError."""
    started = time.perf_counter()
    files.ensure_state_dir(dir)
    with _collector_paused():
        built = _read_state(dir, history)
    written = _last_written(dir)  # before the repair writes
    torn_bytes, broken = _repair(built)
    stats = RecoveryStats(
        snapshot=built.snapshot,
        skipped_snapshots=built.skipped,
        snapshot_jobs=built.snapshot_jobs,
        segments=built.segments,
        records_replayed=built.replayed,
        torn_bytes=torn_bytes,
        broken_copy=broken,
        seconds=time.perf_counter() - started,
    )
    log.info(
        "state loaded from %s: snapshot %s, %d records replayed from %d segments, "
        "%d torn bytes cut, %d jobs, in %.3f s",
        dir, built.snapshot.name if built.snapshot else "none", built.replayed,
        built.segments, torn_bytes, len(built.jobs), stats.seconds,
    )  # fmt: skip
    return RecoveredState(
        jobs=built.jobs,
        runs=built.runs,
        meta=built.meta,
        last_seq=built.last_seq,
        next_id=built.next_id,
        stats=stats,
        groups=built.final_groups(),
        last_recorded=built.newest or None,
        last_written=written,
    )


def verify_state_dir(dir: Path) -> list[str]:
    """Problems that would stop a start from ``dir``, one line each; reads, never writes."""
    error = state_error(dir)
    return [] if error is None else [str(error)]


def state_error(dir: Path) -> PersistenceError | None:
    """What would stop a start from ``dir``, or None; reads, never writes.

    The error's type says which: CorruptState for damage (a start exits 65), another
    PersistenceError for a directory that cannot be used (a start exits 78), so a check can
    answer exactly as the start would.
    """
    problem = files.check_state_dir(dir)
    if problem:
        return PersistenceError(problem)
    if not dir.exists():
        return None  # a start creates it
    try:
        with _collector_paused():
            _read_state(dir, history=1)
    except PersistenceError as exc:
        return exc
    return None


def _last_written(directory: Path) -> float | None:
    """The newest modification time of the snapshots and journal segments in ``directory``."""
    paths = [path for _, path in files.list_snapshots(directory) + files.list_segments(directory)]
    try:
        return max((path.stat().st_mtime for path in paths), default=None)
    except OSError:
        return None  # a file removed meanwhile: no answer rather than a failed start


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Millions of new objects would trigger full collections that find nothing to free."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_state(directory: Path, history: int) -> _Builder:
    built = _Builder(history=history)
    try:
        _load_snapshot(directory, built)
        _replay(directory, built)
    except OSError as exc:
        raise PersistenceError(f"{directory}: cannot read state: {exc}") from exc
    return built


def _load_snapshot(directory: Path, built: _Builder) -> None:
    problems: list[str] = []
    for _, path in reversed(files.list_snapshots(directory)):
        try:
            snap = load_snapshot(path)
        except CorruptState as exc:
            problems.append(str(exc))
            log.warning("snapshot not used: %s", exc)
            continue
        if problems:
            log.warning("using the previous snapshot generation %s", path.name)
        built.load(snap, path)
        built.skipped = tuple(problems)
        return
    if problems:
        raise CorruptState(f"{problems[0]}; no valid older snapshot to fall back to")


def _replay(directory: Path, built: _Builder) -> None:
    segments = files.list_segments(directory)
    sizes = [path.stat().st_size for _, path in segments]
    last = max((i for i, size in enumerate(sizes) if size), default=-1)
    built.empty_tail = tuple(path for _, path in segments[last + 1 :])
    codec = RecordCodec()
    expected: int | None = None
    for index, (first_seq, path) in enumerate(segments[: last + 1]):
        if expected is not None and first_seq != expected:
            raise CorruptState(
                f"{path}: byte 0: segment starts at record {first_seq}, expected {expected}"
            )
        expected = _replay_segment(path, first_seq, index == last, codec, built)
        built.segments += 1


def _replay_segment(
    path: Path, first_seq: int, is_last: bool, codec: RecordCodec, built: _Builder
) -> int:
    """Check and apply one segment; return the sequence number the next segment must start at."""
    data = path.read_bytes()
    scan = scan_frames(data, path, tolerate_torn_tail=is_last)
    expected = first_seq
    for offset, payload in scan.frames:
        seq, change = codec.decode(payload, path, offset)
        if seq != expected:
            raise CorruptState(f"{path}: byte {offset}: record {seq} where {expected} belongs")
        expected += 1
        if seq <= built.snapshot_seq:
            continue  # already in the snapshot (the segment straddles it)
        if seq != built.last_seq + 1:
            raise CorruptState(
                f"{path}: byte {offset}: journal resumes at record {seq} but the state ends at "
                f"{built.last_seq}: records in between are missing"
            )
        built.apply(change)
        built.last_seq = seq
        built.replayed += 1
    if scan.torn_at is not None:
        built.torn = (path, data, scan.torn_at)
    return expected


def _repair(built: _Builder) -> tuple[int, Path | None]:
    """Cut the torn tail (after keeping a copy) and drop empty trailing segments."""
    for path in built.empty_tail:
        files.remove_quietly(path)  # holds no record; the journal opens its own segment
    if built.torn is None:
        return 0, None
    path, data, torn_at = built.torn
    broken = files.unused_path(path.with_name(path.name + ".broken"))
    try:
        files.write_file_durably(broken, data)
        os.truncate(path, torn_at)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        files.fsync_dir(path.parent)
    except OSError as exc:
        raise PersistenceError(f"{path}: cannot cut the torn last record: {exc}") from exc
    cut = len(data) - torn_at
    log.warning(
        "%s: cut an incomplete last record (%d bytes at byte %d); the segment was copied to %s",
        path, cut, torn_at, broken.name,
    )  # fmt: skip
    return cut, broken
