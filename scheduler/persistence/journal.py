"""The write-ahead journal: every store change is appended here before it is applied in memory.

Write path. :meth:`Journal.append` encodes one record and ``os.write``s it to the current
segment synchronously (a page-cache copy, microseconds), so the store learns at once whether the
change can be recorded. A full disk, a file-size limit or a short write truncates the partial
record away and raises :class:`StorageFull`; the store then leaves memory unchanged, and the
next append works again as soon as space is freed. The error's message names no path (it is
answered to HTTP clients as a 507); the log names the directory, once per full-disk episode.

Durability (``fsync``):

- ``always`` (default): :meth:`commit` returns once every record appended before the call is
  fsynced. Group commit: one fsync pass, run in a worker thread, covers every record appended
  before it started; a commit whose record came after the pass in flight started waits for the
  NEXT pass, which starts as soon as that one ends and covers every record appended meanwhile.
  So N concurrent requests cost about two fsyncs, not N (32 HTTP connections creating jobs:
  about 12 records per pass, measured). Each waiting commit has a future of its own in
  :attr:`Journal._waiters`, resolved when the pass it waits for has been applied: cheaper than
  a ``shield`` per commit, and cancelling one commit cancels only its own future.
- ``batch``: a timer fsyncs ``batch_interval`` (default 10 ms) after the first unsynced append,
  and :meth:`commit` returns at once. Loss window: a power failure or kernel crash can lose the
  records of the last ``batch_interval`` plus one fsync; a crash of the process alone loses
  nothing, because written records are already in the kernel's page cache.
- ``never``: no fsync at all (tests, benchmarks).

An fsync error is fatal: after a failed fsync the kernel may have dropped the dirty pages, so
retrying and reporting success would acknowledge data that is not on disk (the PostgreSQL
"fsyncgate" lesson). ``on_fatal`` is called once, and every later append and commit raises
:class:`PersistenceError`; the daemon exits and recovery replays what did reach the disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from scheduler.errors import PersistenceError, StorageFull
from scheduler.model import Change, FsyncMode
from scheduler.persistence import files
from scheduler.persistence.codec import RecordCodec
from scheduler.persistence.faults import crash_point

log = logging.getLogger(__name__)

# FsyncMode is defined in scheduler.model (config names it too); it stays importable from here.
__all__ = ["FULL_MESSAGE", "FsyncMode", "Journal"]


#: What a client is told when a change could not be journalled for lack of space.
FULL_MESSAGE = "the disk is full: the journal could not record the change, so nothing was changed"


class _SyncPlan:
    """What one fsync pass covers, captured on the loop when the pass starts."""

    __slots__ = ("dir_gen", "fds", "retired", "upto")

    def __init__(self, upto: int, fds: tuple[int, ...], retired: int, dir_gen: int) -> None:
        self.upto = upto
        self.fds = fds
        self.retired = retired
        self.dir_gen = dir_gen


class Journal:
    """Append-only segments ``journal-{first_seq:020d}.log`` in the state directory."""

    def __init__(
        self,
        directory: Path,
        *,
        fsync: FsyncMode,
        batch_interval: float,
        start_seq: int,
        on_fatal: Callable[[BaseException], None],
        loop: asyncio.AbstractEventLoop,
        dir_fd: int,
    ) -> None:
        self._dir = directory
        self._mode = FsyncMode(fsync)
        self._interval = batch_interval
        self._on_fatal = on_fatal
        self._loop = loop
        self._dir_fd = dir_fd
        self._codec = RecordCodec()
        self._last_seq = start_seq
        self._synced_seq = start_seq
        self._fd = -1
        self._size = 0
        self._retired: list[int] = []  # rotated-out segments not yet fsynced
        self._dir_gen = 0  # bumped on each segment creation; the dir needs an fsync
        self._dir_synced_gen = 0
        self._inflight: asyncio.Future[None] | None = None
        #: Commits waiting for the pass in flight to be applied (each its own future).
        self._waiters: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._fatal: BaseException | None = None
        self._closed = False
        self._full = False  # the last append failed for lack of space (logged once)

    @classmethod
    async def open(
        cls,
        dir: Path,
        *,
        fsync: FsyncMode,
        batch_interval: float = 0.01,
        start_seq: int,
        on_fatal: Callable[[BaseException], None],
    ) -> Journal:
        """Open a new segment after ``start_seq`` (the last record recovery read)."""
        files.ensure_state_dir(dir)
        files.tighten_dir_mode(dir)
        dir_fd = os.open(dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        journal = cls(
            dir,
            fsync=fsync,
            batch_interval=batch_interval,
            start_seq=start_seq,
            on_fatal=on_fatal,
            loop=asyncio.get_running_loop(),
            dir_fd=dir_fd,
        )
        try:
            journal._fd = journal._create_segment()
        except BaseException:
            os.close(dir_fd)
            raise
        return journal

    @property
    def last_seq(self) -> int:
        """The sequence number of the last record appended (durable or not)."""
        return self._last_seq

    @property
    def synced_seq(self) -> int:
        """Every record up to this one is on disk (in ``never`` mode: written)."""
        return self._last_seq if self._mode is FsyncMode.NEVER else self._synced_seq

    # --- append ----------------------------------------------------------------------------

    def append(self, change: Change) -> int:
        """Write one record; return its sequence number. Raises StorageFull, PersistenceError."""
        self._check_usable()
        seq = self._last_seq + 1
        data = self._codec.encode(seq, change)
        crash_point("journal.before_write")
        self._write_all_or_nothing(data)
        crash_point("journal.after_write")
        self._last_seq = seq
        if self._mode is FsyncMode.BATCH:
            self._arm_timer()
        return seq

    def append_group(self, changes: Sequence[Change]) -> int:
        """Write several records with one write, all or nothing (a run's end and its job's
        new state); return the last one's sequence number. A crash that tears the write keeps
        a prefix of whole records, as separate writes would have: recovery reads them as such.
        Raises StorageFull, PersistenceError."""
        self._check_usable()
        seq = self._last_seq
        encode = self._codec.encode
        parts = []
        for change in changes:
            seq += 1
            parts.append(encode(seq, change))
        crash_point("journal.before_write")
        self._write_all_or_nothing(b"".join(parts))
        crash_point("journal.after_write")
        self._last_seq = seq
        if self._mode is FsyncMode.BATCH:
            self._arm_timer()
        return seq

    def _write_all_or_nothing(self, data: bytes) -> None:
        try:
            written = os.write(self._fd, data)
        except OSError as exc:
            self._truncate_partial()
            if exc.errno in files.FULL_ERRNOS:
                raise self._storage_full(str(exc)) from exc
            raise PersistenceError(f"{self._dir}: journal write failed: {exc}") from exc
        if written != len(data):
            self._truncate_partial()
            raise self._storage_full(f"short write, {written} of {len(data)} bytes")
        self._size += written
        if self._full:
            self._full = False
            log.info("journal in %s: writes work again", self._dir)

    def _storage_full(self, detail: str) -> StorageFull:
        """The error for a change the disk had no room for.

        Its message reaches HTTP clients (a 507), so it never names a path: where the state
        lives is the operator's business, and the log says it, once per full-disk episode.
        """
        if not self._full:
            self._full = True
            log.warning(
                "journal in %s: the disk is full (%s): changes are refused until space is freed",
                self._dir,
                detail,
            )
        return StorageFull(FULL_MESSAGE)

    def _truncate_partial(self) -> None:
        """Cut a partial record away so it can never be mistaken for corruption later."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as exc:
            # The segment now ends in a partial record we cannot remove: appending after it
            # would turn a harmless torn tail into corruption in the middle of the journal.
            self._fail(exc)
            raise PersistenceError(f"{self._dir}: cannot truncate a partial record: {exc}") from exc

    def _check_usable(self) -> None:
        if self._fatal is not None:
            raise PersistenceError(f"{self._dir}: journal stopped after an error: {self._fatal}")
        if self._closed:
            raise PersistenceError(f"{self._dir}: journal is closed")

    # --- commit ----------------------------------------------------------------------------

    async def commit(self) -> None:
        """Return once every record appended so far is durable (see the module's fsync modes)."""
        self._check_fatal()
        if self._mode is not FsyncMode.ALWAYS:
            return
        target = self._last_seq
        while self._synced_seq < target:
            if self._inflight is None:
                self._start_sync()
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            await waiter
            if self._fatal is not None:
                raise PersistenceError(f"{self._dir}: journal fsync failed: {self._fatal}")

    def _check_fatal(self) -> None:
        if self._fatal is not None:
            raise PersistenceError(f"{self._dir}: journal stopped after an error: {self._fatal}")

    def _start_sync(self) -> asyncio.Future[None]:
        """Start one fsync pass in a worker thread; the future resolves once its outcome has
        been applied (``synced_seq`` advanced, or the journal failed).

        Waiters wait for the outcome to be applied, not for the worker's future: that one is
        done before its callbacks run, so a commit arriving in between would find a finished
        pass whose outcome is not applied yet, and awaiting a done future never yields to let
        it apply: the commit would spin on the loop forever. (``_inflight`` stays set until
        the outcome is applied, so such a commit queues a waiter for it.)
        """
        plan = _SyncPlan(
            upto=self._last_seq,
            fds=(*self._retired, self._fd),
            retired=len(self._retired),
            dir_gen=self._dir_gen,
        )
        need_dir = plan.dir_gen != self._dir_synced_gen
        applied: asyncio.Future[None] = self._loop.create_future()
        work = self._loop.run_in_executor(None, _fsync_all, plan.fds, self._dir_fd, need_dir)
        work.add_done_callback(lambda done: self._sync_done(done, plan, applied))
        self._inflight = applied
        return applied

    def _sync_done(
        self, work: asyncio.Future[None], plan: _SyncPlan, applied: asyncio.Future[None]
    ) -> None:
        self._inflight = None
        waiters, self._waiters = self._waiters, []
        try:
            self._apply_sync(work, plan)
        finally:
            applied.set_result(None)  # waiters read the outcome from the journal's state
            for waiter in waiters:
                if not waiter.done():  # a cancelled commit
                    waiter.set_result(None)

    def _apply_sync(self, work: asyncio.Future[None], plan: _SyncPlan) -> None:
        exc = None if work.cancelled() else work.exception()
        if work.cancelled() or exc is not None:
            self._fail(exc or PersistenceError("journal fsync was cancelled"))
            return
        self._synced_seq = max(self._synced_seq, plan.upto)
        self._dir_synced_gen = plan.dir_gen
        for fd in self._retired[: plan.retired]:
            os.close(fd)
        del self._retired[: plan.retired]
        if self._mode is FsyncMode.BATCH and self._dirty():
            self._arm_timer()

    def _dirty(self) -> bool:
        return (
            self._synced_seq < self._last_seq
            or bool(self._retired)
            or self._dir_gen != self._dir_synced_gen
        )

    def _arm_timer(self) -> None:
        if self._timer is None and self._inflight is None and not self._closed:
            self._timer = self._loop.call_later(self._interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._inflight is None and self._fatal is None and self._dirty():
            self._start_sync()

    def _fail(self, exc: BaseException) -> None:
        if self._fatal is not None:
            return
        self._fatal = exc
        log.critical("journal in %s stopped: %s", self._dir, exc)
        self._on_fatal(exc)

    # --- segments --------------------------------------------------------------------------

    def rotate(self) -> None:
        """Start a new segment (before a snapshot, so older segments can be deleted whole)."""
        self._check_usable()
        if self._size == 0:
            return  # the current segment already starts after last_seq
        fd = self._create_segment()
        crash_point("journal.rotate")
        if self._mode is FsyncMode.NEVER:
            os.close(self._fd)
        else:
            self._retired.append(self._fd)
        self._fd, self._size = fd, 0
        if self._mode is FsyncMode.BATCH:
            self._arm_timer()

    def _create_segment(self) -> int:
        path = self._dir / files.segment_name(self._last_seq + 1)
        fd = files.open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        size = os.fstat(fd).st_size
        if size:
            os.close(fd)
            raise PersistenceError(
                f"{path}: segment already holds {size} bytes after record {self._last_seq}: "
                "was the state directory recovered first?"
            )
        self._dir_gen += 1
        return fd

    async def close(self) -> None:
        """Flush (unless ``never``) and close. Later appends raise PersistenceError."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
        if self._mode is not FsyncMode.NEVER and self._fatal is None and self._dirty():
            await asyncio.shield(self._start_sync())
        for fd in (*self._retired, self._fd, self._dir_fd):
            os.close(fd)
        self._retired.clear()


def _fsync_all(fds: tuple[int, ...], dir_fd: int, need_dir: bool) -> None:
    """One group-commit pass, in a worker thread: segments first, then the directory entry."""
    for fd in fds:
        os.fsync(fd)
    if need_dir:
        os.fsync(dir_fd)
    crash_point("journal.after_fsync")
