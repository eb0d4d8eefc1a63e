"""Ties the journal, snapshots and recovery to a store: open at start, snapshot on an interval,
close at shutdown. The state directory is locked (see ``statelock``) from before its state is
read until the journal is closed, so no two schedulers ever share it."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from pathlib import Path

from scheduler.errors import StorageFull
from scheduler.model import SetMeta
from scheduler.persistence.journal import FsyncMode, Journal
from scheduler.persistence.recovery import RecoveredState, load_state
from scheduler.persistence.snapshot import SnapshotInfo, SnapshotState, write_snapshot
from scheduler.persistence.statelock import StateLock
from scheduler.store import Store

log = logging.getLogger("scheduler.persistence")


def die_on_fsync_error(exc: BaseException) -> None:
    """An fsync error means the kernel may have dropped our writes: never carry on as if they
    were durable. Stop now; systemd restarts us and recovery replays what is really on disk."""
    log.critical("fsync failed (%s): stopping so that recovery can replay the journal", exc)
    os.kill(os.getpid(), signal.SIGKILL)


def _release_abandoned(work: asyncio.Future[tuple[StateLock, RecoveredState]]) -> None:
    """An open cancelled while its worker thread ran: drop the lock that thread took."""
    if not work.cancelled() and work.exception() is None:
        work.result()[0].release()


class Persistence:
    def __init__(
        self,
        directory: Path,
        *,
        fsync: FsyncMode | str,
        batch_interval: float,
        snapshot_interval: float,
        store: Store,
        next_id: int = 0,
    ) -> None:
        self.directory = directory
        self.fsync = FsyncMode(fsync)
        self.batch_interval = batch_interval
        self.snapshot_interval = snapshot_interval
        self.store = store
        self.next_id = next_id
        self.journal: Journal | None = None
        self.recovered: RecoveredState | None = None
        self._lock = asyncio.Lock()
        self.state_lock: StateLock | None = None

    async def claim(self) -> None:
        """Lock the directory now, ahead of :meth:`open` (the daemon does this before it binds
        its port, so a second daemon on the same state is refused for that reason first)."""
        if self.state_lock is None:
            self.state_lock = await asyncio.to_thread(StateLock.acquire, self.directory)

    async def open(self) -> RecoveredState:
        """Lock the directory, load the newest valid state into the (empty) store and start
        journalling. Raises PersistenceError (the directory is in use, or unusable) or
        CorruptState (then no file was changed); on any failure the lock is released again."""
        work = asyncio.ensure_future(asyncio.to_thread(self._lock_and_load))
        try:
            self.state_lock, state = await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(_release_abandoned)  # the thread may still take the lock
            raise
        try:
            self.store.load(
                state.jobs, dict(state.runs), paused=state.meta.paused, groups=state.groups
            )
            self.next_id = state.next_id
            gc.freeze()  # the loaded records live long: keep full collections from walking them
            self.journal = await Journal.open(
                self.directory,
                fsync=self.fsync,
                batch_interval=self.batch_interval,
                start_seq=state.last_seq,
                on_fatal=die_on_fsync_error,
            )
        except BaseException:
            self._release_lock()
            raise
        self.store.journal = self.journal
        self.recovered = state
        return state

    def _lock_and_load(self) -> tuple[StateLock, RecoveredState]:
        """In a worker thread: the lock first, then the state, then the pid in the lock file
        (only now, so that a start refused for damaged state changes no file at all)."""
        lock = self.state_lock or StateLock.acquire(self.directory)
        try:
            state = load_state(self.directory, history=self.store.history)
            lock.record_holder()
        except BaseException:
            lock.release()
            raise
        return lock, state

    def _release_lock(self) -> None:
        if self.state_lock is not None:
            self.state_lock.release()
            self.state_lock = None

    async def serve(self) -> None:
        """Write a snapshot every ``snapshot_interval`` until cancelled (the scheduler runs
        this in its task group)."""
        while True:
            await asyncio.sleep(self.snapshot_interval)
            try:
                await self.snapshot()
            except StorageFull:
                continue  # logged where it happened, with the path; no traceback for a full disk
            except Exception:
                log.exception("snapshot failed; the journal keeps every change meanwhile")

    async def snapshot(self, next_id: int | None = None) -> SnapshotInfo:
        """Capture the store at the current journal position and write it off the loop."""
        assert self.journal is not None
        async with self._lock:
            await self.journal.commit()
            self.journal.rotate()
            state = SnapshotState(
                jobs=list(self.store.jobs.values()),
                runs=self.store.all_runs(),
                meta=SetMeta(self.store.paused),
                last_seq=self.journal.last_seq,
                next_id=max(self.next_id, next_id or 0),
            )
            return await write_snapshot(self.directory, state)  # it logs what it wrote

    async def close(self, next_id: int | None = None) -> None:
        """Final snapshot, close the journal, then release the directory's lock (last: until
        the journal is closed, another scheduler must not start on this directory)."""
        try:
            if self.journal is not None:
                await self._final_snapshot(next_id)
                await self.journal.close()
                self.journal = None
        finally:
            self._release_lock()

    async def _final_snapshot(self, next_id: int | None) -> None:
        try:
            await self.snapshot(next_id)
        except StorageFull:
            return  # logged where it happened, with the path; the journal holds every change
        except Exception:
            log.exception("final snapshot failed; the journal holds every change")
