"""Crash points: let a test kill the process at a named step of the write path.

``SCHEDULER_CRASH_AT=journal.after_write`` makes the process SIGKILL itself the first time it
reaches that point, which is how the crash tests prove that every intermediate state on disk is
recoverable. The variable is read once; with it unset a crash point costs one cached lookup.

Points: ``journal.before_write``, ``journal.after_write``, ``journal.after_fsync``,
``journal.rotate``, ``snapshot.after_tmp_write``, ``snapshot.after_rename``,
``snapshot.before_cleanup``.
"""

from __future__ import annotations

import functools
import os
import signal

ENV_VAR = "SCHEDULER_CRASH_AT"


@functools.cache
def _target() -> str | None:
    return os.environ.get(ENV_VAR) or None


def crash_point(name: str) -> None:
    """SIGKILL this process if ``SCHEDULER_CRASH_AT`` names ``name``: no cleanup, no flush."""
    if _target() == name:
        os.kill(os.getpid(), signal.SIGKILL)
