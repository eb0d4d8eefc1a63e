"""Executors: what runs a job's task, one per task kind, behind one protocol.

:mod:`.tasks` defines a task (what config reads), :mod:`.factory` turns one into its executor
(:func:`build_executor`). The engine only knows :class:`Executor` and :class:`RunContext`.

Nothing is imported eagerly here: config imports :mod:`.tasks` and :mod:`.python`, and loading
this package must not load the http executor and with it aiohttp. The names below load their
module on first use, for the code that imports them from the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduler.executors.base import Executor, RunContext
    from scheduler.executors.command import (
        CommandExecutor,
        job_environment,
        process_start_ticks,
        stop_stale_process,
        terminate_group,
    )
    from scheduler.executors.factory import build_executor, task_secrets
    from scheduler.executors.http import HttpExecutor, make_session, parse_retry_after
    from scheduler.executors.python import PythonExecutor, TaskContext, resolve_callable

#: Each name's module, loaded by :func:`__getattr__` when the name is first asked for.
_HOMES = {
    "Executor": "base",
    "RunContext": "base",
    "CommandExecutor": "command",
    "job_environment": "command",
    "process_start_ticks": "command",
    "stop_stale_process": "command",
    "terminate_group": "command",
    "build_executor": "factory",
    "task_secrets": "factory",
    "HttpExecutor": "http",
    "make_session": "http",
    "parse_retry_after": "http",
    "PythonExecutor": "python",
    "TaskContext": "python",
    "resolve_callable": "python",
}

__all__ = [
    "CommandExecutor",
    "Executor",
    "HttpExecutor",
    "PythonExecutor",
    "RunContext",
    "TaskContext",
    "build_executor",
    "job_environment",
    "make_session",
    "parse_retry_after",
    "process_start_ticks",
    "resolve_callable",
    "stop_stale_process",
    "task_secrets",
    "terminate_group",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
