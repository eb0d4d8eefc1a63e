"""The state directory: its layout, its permissions and the file operations that need care.

Layout: ``journal-{first_seq:020d}.log`` segments and ``snapshot-{last_seq:020d}.snap``
snapshots; zero-padded numbers make name order equal numeric order. A snapshot is written as
``….snap.tmp`` and renamed into place; a torn journal tail is kept as ``….log.broken``. State
files are 0600 in a 0700 directory because jobs carry payloads and URLs that may be private.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
from pathlib import Path

from scheduler.errors import PersistenceError

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700
SEGMENT_RE = re.compile(r"journal-(\d{20})\.log")
SNAPSHOT_RE = re.compile(r"snapshot-(\d{20})\.snap")
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})  # "the disk is full"


def segment_name(first_seq: int) -> str:
    return f"journal-{first_seq:020d}.log"


def snapshot_name(last_seq: int) -> str:
    return f"snapshot-{last_seq:020d}.snap"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """Journal segments as ``(first_seq, path)``, oldest first."""
    return _numbered(directory, SEGMENT_RE)


def list_snapshots(directory: Path) -> list[tuple[int, Path]]:
    """Snapshots as ``(last_seq, path)``, oldest first."""
    return _numbered(directory, SNAPSHOT_RE)


def _numbered(directory: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    found = []
    for entry in os.scandir(directory):
        match = pattern.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), Path(entry.path)))
    return sorted(found)


def check_state_dir(directory: Path) -> str | None:
    """Why ``directory`` cannot hold state, or None when it can (or does not exist yet)."""
    if not directory.exists():
        return None
    if not directory.is_dir():
        return f"{directory}: state directory is not a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{directory}: state directory is not writable by this user"
    return None


def ensure_state_dir(directory: Path) -> None:
    """Create ``directory`` (0700) when missing; raise PersistenceError when it is unusable."""
    problem = check_state_dir(directory)
    if problem:
        raise PersistenceError(problem)
    if directory.exists():
        return
    try:
        directory.mkdir(mode=DIR_MODE, parents=True)
        directory.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise PersistenceError(f"{directory}: cannot create state directory: {exc}") from exc
    log.info("created state directory %s", directory)


def tighten_dir_mode(directory: Path) -> None:
    """Make an existing state directory 0700 (it may have been created by hand, or by mkdir -p)."""
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode != DIR_MODE:
        try:
            directory.chmod(DIR_MODE)
        except OSError as exc:
            log.warning("cannot make %s mode 0700 (it is %o): %s", directory, mode, exc)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` a state file with mode exactly 0600 whatever the umask."""
    fd = os.open(path, flags | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def fsync_dir(directory: Path) -> None:
    """Make a create, rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_durably(path: Path, data: bytes) -> None:
    """Write a whole new private file and fsync it (the caller fsyncs the directory)."""
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def unused_path(path: Path) -> Path:
    """``path`` itself, or ``path.1``, ``path.2``... whichever does not exist yet."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def remove_quietly(path: Path) -> bool:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        return True
    return False
