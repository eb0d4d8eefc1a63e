"""Refusing subprocesses: how tests/conftest.py checks that every test which starts one is
marked (``make test-fast`` leaves the marked ones out).

``refusing_subprocesses(who)`` patches every way of starting a process, for the length of a
``with`` block: each attempt is recorded and raises :class:`SubprocessRefused`, whose message
names ``who`` and the marker to add. ``subprocess`` and asyncio's subprocesses all go through
``Popen._execute_child``; ``os.fork``, ``os.posix_spawn`` and ``os.system`` are the ways
around it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

#: Markers of the tests that may start a subprocess; ``make test-fast`` leaves them out.
SLOW_MARKERS = ("integration", "browser")
_SPAWNERS: list[tuple[object, str]] = [
    (subprocess.Popen, "_execute_child"),
    (os, "fork"),
    (os, "forkpty"),
    (os, "posix_spawn"),
    (os, "posix_spawnp"),
    (os, "system"),
]


class SubprocessRefused(RuntimeError):
    """A test without a marker of :data:`SLOW_MARKERS` tried to start a subprocess."""


def _refusal(name: str, who: str, started: list[str]) -> Callable[..., Any]:
    def spawn(*args: Any, **kwargs: Any) -> Any:
        # Popen._execute_child(self, args, ...): the argv is the second argument.
        what = args[1] if name == "_execute_child" and len(args) > 1 else args[:1]
        started.append(f"{name}({what!r})")
        raise SubprocessRefused(
            f"{who} started a subprocess ({started[-1]}) without a marker:"
            " mark it @pytest.mark.integration (make test-fast leaves it out)"
        )

    return spawn


@contextmanager
def refusing_subprocesses(who: str) -> Iterator[list[str]]:
    """Within the block, starting a subprocess raises; yields the list of attempts."""
    started: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        for owner, name in _SPAWNERS:
            if hasattr(owner, name):
                patch.setattr(owner, name, _refusal(name, who, started))
        yield started
