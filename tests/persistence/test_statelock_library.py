"""One scheduler per state directory, for the library ``Scheduler`` and ``Persistence``.

The lock is an ``flock`` on ``DIR/scheduler.lock`` taken before any state is read; a second
holder, in this process or another, is refused at once with a message naming the directory and
the pid that holds it. The daemon-level behaviour is in
``tests/persistence/test_statelock_daemon.py``.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import re
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.config import Config, FsyncMode, PersistenceConfig
from scheduler.errors import CorruptState, PersistenceError
from scheduler.persistence import manager, statelock
from scheduler.persistence.manager import Persistence
from scheduler.persistence.recovery import load_state
from scheduler.persistence.statelock import LOCK_NAME, StateLock, holder
from scheduler.runtime.library import Scheduler
from scheduler.store import Store
from tests import ROOT
from tests.fakes import FakeClock
from tests.persistence.harness import files_of

T0 = 1_900_000_000.0

# A child that holds a directory the way a running scheduler does, then waits to be killed.
HOLDER = """
import asyncio, sys
from scheduler.config import Config, FsyncMode, PersistenceConfig
from scheduler.runtime.library import Scheduler

async def main():
    sched = Scheduler(Config(persistence=PersistenceConfig(dir=sys.argv[1], fsync=FsyncMode.NEVER)),
                      environ={})
    await sched.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await sched.stop()

asyncio.run(main())
"""

# A child that only flocks the file and writes nothing in it: a holder still recovering.
BARE_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("ready", flush=True)
sys.stdin.read()
"""


def scheduler(directory: Path) -> Scheduler:
    config = Config(persistence=PersistenceConfig(dir=str(directory), fsync=FsyncMode.NEVER))
    return Scheduler(config, clock=FakeClock(T0), environ={})


def damage_newest_snapshot(directory: Path) -> None:
    max(directory.glob("snapshot-*.snap")).write_bytes(b"garbage")


def start_child(code: str, arg: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", code, arg],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "ready":
        child.kill()
        _, err = child.communicate(timeout=10)
        raise AssertionError(f"the holder did not start: {line!r} {err}")
    return child


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)


async def test_a_second_scheduler_in_this_process_is_refused_and_the_first_is_untouched(
    tmp_path: Path,
) -> None:
    state = tmp_path / "var"
    first = scheduler(state)
    first.register_task("later", lambda payload: None)
    await first.start()
    await first.create_task("later", schedule={"delay": "1h"})
    before = files_of(state)
    second = scheduler(state)
    with pytest.raises(PersistenceError) as refused:
        await second.start()
    message = refused.value.message
    assert str(state) in message
    assert f"pid {os.getpid()}" in message
    assert "this process" in message
    assert files_of(state) == before
    assert first.running
    await first.stop()
    third = scheduler(state)  # released at stop: the next one starts at once
    await third.start()
    await third.stop()


@pytest.mark.integration
async def test_a_scheduler_in_another_process_is_named_by_its_pid_and_kill_9_frees_the_dir(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    state = tmp_path / "var"
    child = start_child(HOLDER, str(state))
    children.append(child)
    assert (state / LOCK_NAME).read_text() == f"{child.pid}\n"
    mine = scheduler(state)
    with pytest.raises(PersistenceError) as refused:
        await mine.start()
    assert refused.value.message.startswith(f"{state} is in use by another scheduler process")
    assert f"(pid {child.pid})" in refused.value.message
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    await mine.start()  # the kernel dropped the dead holder's lock: no stale lock to clear
    assert (state / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    await mine.stop()


@pytest.mark.integration
def test_a_holder_that_has_not_written_its_pid_yet_is_named_from_the_kernels_table(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    (tmp_path / LOCK_NAME).write_text("99999999\n")  # a dead holder's pid, left by a crash
    child = start_child(BARE_HOLDER, str(tmp_path / LOCK_NAME))
    children.append(child)
    with pytest.raises(PersistenceError, match=rf"\(pid {child.pid}\)"):
        StateLock.acquire(tmp_path)
    assert holder(tmp_path) == (True, child.pid)


def test_without_the_kernels_table_the_pid_comes_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statelock, "_PROC_LOCKS", tmp_path / "no-proc-locks")
    first = StateLock.acquire(tmp_path)
    with pytest.raises(PersistenceError, match="its pid is not known yet"):
        StateLock.acquire(tmp_path)  # locked, pid not written yet
    first.record_holder()
    with pytest.raises(PersistenceError, match=rf"\(pid {os.getpid()}\)"):
        StateLock.acquire(tmp_path)
    first.release()
    StateLock.acquire(tmp_path).release()


def test_the_lock_file_is_private_and_holds_the_pid(tmp_path: Path) -> None:
    state = tmp_path / "new"
    lock = StateLock.acquire(state)
    lock.record_holder()
    path = state / LOCK_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert path.read_text() == f"{os.getpid()}\n"
    lock.release()
    lock.release()  # twice is harmless
    assert holder(state) == (False, None)


async def test_snapshots_never_touch_the_lock_file(tmp_path: Path) -> None:
    persistence = Persistence(
        tmp_path, fsync=FsyncMode.NEVER, batch_interval=0.01, snapshot_interval=3600, store=Store()
    )
    await persistence.open()
    inode = (tmp_path / LOCK_NAME).stat().st_ino
    for _ in range(4):  # enough generations for cleanup to delete old snapshots and segments
        await persistence.snapshot()
    assert (tmp_path / LOCK_NAME).stat().st_ino == inode
    assert holder(tmp_path) == (True, os.getpid())
    await persistence.close()
    assert (tmp_path / LOCK_NAME).exists()  # never deleted: see statelock's docstring
    assert holder(tmp_path) == (False, None)


async def test_a_start_refused_for_damaged_state_changes_no_file_and_releases_the_lock(
    tmp_path: Path,
) -> None:
    first = scheduler(tmp_path)
    await first.start()
    await first.stop()
    damage_newest_snapshot(tmp_path)
    before = files_of(tmp_path)
    with pytest.raises(CorruptState):
        await scheduler(tmp_path).start()
    assert files_of(tmp_path) == before  # the old pid stays: the pid is written after recovery
    assert holder(tmp_path) == (False, None)


async def test_an_open_cancelled_while_recovery_runs_does_not_keep_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, proceed = threading.Event(), threading.Event()

    def slow_load(directory: Path, *, history: int) -> object:
        entered.set()
        proceed.wait(10)
        return load_state(directory, history=history)

    monkeypatch.setattr(manager, "load_state", slow_load)
    persistence = Persistence(
        tmp_path, fsync=FsyncMode.NEVER, batch_interval=0.01, snapshot_interval=3600, store=Store()
    )
    opening = asyncio.create_task(persistence.open())
    await asyncio.to_thread(entered.wait, 10)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    proceed.set()
    for _ in range(500):  # the worker thread finishes, then its lock is dropped on the loop
        if holder(tmp_path) == (False, None):
            break
        await asyncio.sleep(0.01)
    assert holder(tmp_path) == (False, None)
    StateLock.acquire(tmp_path).release()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=25))
def test_at_most_one_holder_at_any_time_and_a_free_directory_is_always_taken(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[int, bool]]
) -> None:
    """Three would-be holders (separate open files, as separate processes have) acquire and
    release in any order: an acquire succeeds exactly when nobody holds the lock."""
    directory = tmp_path_factory.mktemp("lock")
    held: dict[int, StateLock] = {}
    try:
        for who, acquire in steps:
            if not acquire:
                lock = held.pop(who, None)
                if lock is not None:
                    lock.release()
                continue
            if who in held:
                continue
            if held:
                with pytest.raises(PersistenceError, match=re.escape(f"{directory} is in use")):
                    StateLock.acquire(directory, retry_for=0)
            else:
                held[who] = StateLock.acquire(directory, retry_for=0)
    finally:
        for lock in held.values():
            lock.release()


def test_check_s_probe_never_makes_a_start_fail(tmp_path: Path) -> None:
    """``holder()`` takes a shared lock for a moment; a start that meets it retries."""
    path = tmp_path / LOCK_NAME
    path.touch(mode=0o600)
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a probe caught mid-way, dropped shortly after
    timer = threading.Timer(0.05, os.close, (fd,))
    timer.start()
    try:
        StateLock.acquire(tmp_path).release()
    finally:
        timer.join()


def test_a_full_disk_while_writing_the_pid_does_not_stop_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lock = StateLock.acquire(tmp_path)

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    lock.record_holder()  # logged, not raised
    monkeypatch.undo()
    assert "cannot write this process's pid" in caplog.text
    assert holder(tmp_path) == (True, os.getpid())  # the lock holds; the kernel names us
    lock.release()
