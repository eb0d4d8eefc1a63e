"""Executors: what runs a job's task, one per task kind, behind one protocol.

:func:`build_executor` turns a configured task into its executor. The engine only knows
:class:`Executor` and :class:`RunContext`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

from scheduler.errors import ExecutorError
from scheduler.executors.base import Executor, RunContext
from scheduler.executors.command import (
    CommandExecutor,
    env_secrets,
    job_environment,
    process_start_ticks,
    stop_stale_process,
    terminate_group,
)
from scheduler.executors.http import HttpExecutor, http_secrets, make_session, parse_retry_after
from scheduler.executors.python import PythonExecutor, TaskContext, resolve_callable

if TYPE_CHECKING:
    # Only the type: config (a higher layer) imports this package to resolve python callables.
    from scheduler.config.load import TaskConfig


def build_executor(
    task_name: str,
    task: TaskConfig,
    *,
    session: Callable[[], aiohttp.ClientSession],
    env_base: Mapping[str, str],
) -> Executor:
    """The executor for one configured task. ``session`` is called on the first http request,
    inside the running loop; ``env_base`` is what commands inherit (see :func:`job_environment`).
    A python task's callable is imported here; an error names the task and what is wrong."""
    kind = task.kind.value
    if kind == "http":
        return HttpExecutor(task_name, task, session)
    if kind == "command":
        return CommandExecutor(task_name, task, env_base=env_base)
    if kind == "python":
        if not task.callable:
            raise ExecutorError(
                f"task {task_name!r}: a python task needs a callable", field="callable"
            )
        return PythonExecutor(resolve_callable(task.callable), task_name=task_name)
    raise ExecutorError(f"task {task_name!r}: unknown kind {kind!r}", field="kind")


def task_secrets(tasks: Mapping[str, TaskConfig], env_base: Mapping[str, str]) -> frozenset[str]:
    """Every value the executors of ``tasks`` redact from their results (see
    :class:`~scheduler.executors.base.Secrets`): for the log's redactor, so that a traceback
    logged by an executor cannot show them either. ``env_base`` is what commands inherit."""
    found: set[str] = set()
    for task in tasks.values():
        kind = task.kind.value
        if kind == "http" and task.url:
            found.update(http_secrets(task.headers, URL(task.url)).values)
        elif kind == "command":
            found.update(env_secrets({**env_base, **task.env}).values)
    return frozenset(found)


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
