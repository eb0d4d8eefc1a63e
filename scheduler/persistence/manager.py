"""Ties the journal, snapshots and recovery to a store: open at start, snapshot on an interval,
close at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from pathlib import Path

from scheduler.model import SetMeta
from scheduler.persistence.journal import FsyncMode, Journal
from scheduler.persistence.recovery import RecoveredState, load_state
from scheduler.persistence.snapshot import SnapshotInfo, SnapshotState, write_snapshot
from scheduler.store import Store

log = logging.getLogger("scheduler.persistence")


def die_on_fsync_error(exc: BaseException) -> None:
    """An fsync error means the kernel may have dropped our writes: never carry on as if they
    were durable. Stop now; systemd restarts us and recovery replays what is really on disk."""
    log.critical("fsync failed (%s): stopping so that recovery can replay the journal", exc)
    os.kill(os.getpid(), signal.SIGKILL)


class Persistence:
    def __init__(
        self,
        directory: Path,
        *,
        fsync: str,
        batch_interval: float,
        snapshot_interval: float,
        store: Store,
        next_id: int = 0,
    ) -> None:
        self.directory = directory
        self.fsync = FsyncMode(str(fsync))
        self.batch_interval = batch_interval
        self.snapshot_interval = snapshot_interval
        self.store = store
        self.next_id = next_id
        self.journal: Journal | None = None
        self.recovered: RecoveredState | None = None
        self._periodic: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> RecoveredState:
        """Load the newest valid state into the (empty) store and start journalling."""
        state = await asyncio.to_thread(load_state, self.directory, history=self.store.history)
        self.store.load(state.jobs, dict(state.runs), paused=state.meta.paused)
        self.next_id = state.next_id
        gc.freeze()  # the loaded records live long: keep full collections from walking them
        self.journal = await Journal.open(
            self.directory,
            fsync=self.fsync,
            batch_interval=self.batch_interval,
            start_seq=state.last_seq,
            on_fatal=die_on_fsync_error,
        )
        self.store.journal = self.journal
        self.recovered = state
        self._periodic = asyncio.create_task(self._snapshot_loop(), name="snapshots")
        return state

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(self.snapshot_interval)
            try:
                await self.snapshot()
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
        """Final snapshot, then close the journal."""
        if self._periodic is not None:
            self._periodic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._periodic
        if self.journal is None:
            return
        try:
            await self.snapshot(next_id)
        except Exception:
            log.exception("final snapshot failed; the journal holds every change")
        await self.journal.close()
        self.journal = None
