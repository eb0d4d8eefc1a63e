"""One scheduler per state directory: an exclusive ``flock`` on ``DIR/scheduler.lock``.

Two processes on one directory would run every job twice, and each one's snapshot cleanup
would delete the files the other still appends to. So whoever opens the state (the daemon and
the library alike, through :class:`~scheduler.persistence.manager.Persistence`) first takes an
exclusive lock and holds it for as long as the state is open.

Why ``flock``: the kernel drops the lock when its holder exits, however it exits (``kill -9``
included), so a crashed daemon never leaves a stale lock behind and a new one starts at once.
The file is opened ``O_CLOEXEC`` and never inherited by command tasks, so a command left running
by a crash cannot keep the directory locked. It is 0600, like every state file, is never
deleted (unlinking a lock file while others may hold it open lets two processes lock two
different files), and snapshot cleanup never touches it (it only removes numbered files).

The file holds the holder's pid (``"1234\\n"``) so that a refused process can name it. The pid
is written once the state has been read and verified: a start refused for damaged state then
leaves every file in the directory exactly as it was. While a holder is still recovering, the
file may hold an older pid, so the kernel's own table (``/proc/locks``) is asked first.

``scheduler check --state`` does not lock: :func:`holder` only tests for a lock with a shared
probe that it drops at once. A start that meets the probe retries for :data:`RETRY_FOR`
seconds, so a check can never make a start fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

from scheduler.errors import PersistenceError
from scheduler.persistence import files

log = logging.getLogger(__name__)

LOCK_NAME = "scheduler.lock"
RETRY_FOR = 0.25  # seconds a start keeps trying while a check's probe holds the lock
_RETRY_EVERY = 0.01
_PROC_LOCKS = Path("/proc/locks")


class StateLock:
    """An exclusive lock on a state directory, held until :meth:`release`."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: Path, *, retry_for: float = RETRY_FOR) -> StateLock:
        """Lock ``directory`` (created 0700 when missing) or raise PersistenceError naming the
        directory and the pid that holds it, after ``retry_for`` seconds of trying."""
        files.ensure_state_dir(directory)
        path = directory / LOCK_NAME
        try:
            fd = files.open_private(path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise PersistenceError(f"{path}: cannot open the lock file: {exc}") from exc
        try:
            _lock_exclusive(fd, directory, path, retry_for)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

    def record_holder(self) -> None:
        """Write this process's pid into the lock file (the state has been read and is ours).

        A failure (a full disk) is logged, not raised: the lock holds all the same, and only
        the pid that a refused process would print is missing, so it must not stop a start.
        """
        fd = self._require_fd()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            log.warning("%s: cannot write this process's pid (%s); the lock holds", self.path, exc)

    def release(self) -> None:
        """Drop the lock (closing the file drops it). Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _require_fd(self) -> int:
        if self._fd is None:
            raise PersistenceError(f"{self.path}: the lock was released")
        return self._fd


def _lock_exclusive(fd: int, directory: Path, path: Path, retry_for: float) -> None:
    deadline = time.monotonic() + retry_for
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise PersistenceError(in_use_message(directory, holder_pid(path, fd))) from None
            time.sleep(_RETRY_EVERY)
        except OSError as exc:
            raise PersistenceError(f"{path}: cannot lock the state directory: {exc}") from exc
        else:
            return


def in_use_message(directory: Path, pid: int | None) -> str:
    """What a process refused the directory is told: the directory and who holds it."""
    if pid is None:
        who = "another scheduler process (its pid is not known yet: it is still starting)"
    elif pid == os.getpid():
        who = f"another Scheduler in this process (pid {pid})"
    else:
        who = f"another scheduler process (pid {pid})"
    return (
        f"{directory} is in use by {who}; only one scheduler may use a state directory: "
        "stop that one first, or give this one another [persistence] dir"
    )


def holder(directory: Path) -> tuple[bool, int | None]:
    """Whether a process holds ``directory``'s lock now, and its pid when known.

    Read only: never creates the lock file. The shared probe it takes is dropped at once.
    """
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False, None  # no scheduler has ever locked this directory
    except OSError as exc:
        raise PersistenceError(f"{path}: cannot open the lock file: {exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, holder_pid(path, fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False, None
    finally:
        os.close(fd)


def holder_pid(path: Path, fd: int) -> int | None:
    """The pid holding the lock on ``fd``'s file: from the kernel's lock table when it can be
    read (exact, even while the holder is still recovering), else from the file's contents."""
    st = os.fstat(fd)
    return _pid_from_proc_locks(st.st_dev, st.st_ino) or _pid_from_file(path)


def _pid_from_proc_locks(dev: int, ino: int) -> int | None:
    """``/proc/locks`` lines read ``1: FLOCK  ADVISORY  WRITE 1234 fe:00:2146312 0 EOF``:
    the pid, then the file as hex major:minor and decimal inode. ``->`` marks a waiter."""
    wanted = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"
    try:
        table = _PROC_LOCKS.read_text()
    except OSError:
        return None
    for line in table.splitlines():
        fields = line.split()
        if fields[1:4] == ["FLOCK", "ADVISORY", "WRITE"] and fields[5:6] == [wanted]:
            pid = fields[4]
            return int(pid) if pid.isdigit() and int(pid) > 0 else None
    return None


def _pid_from_file(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        text = path.read_text().strip()
        return int(text) if text else None
    return None
