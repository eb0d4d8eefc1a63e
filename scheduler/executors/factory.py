"""From task definitions to what runs them: :func:`build_executor` and :func:`task_secrets`.

Apart from the package's other modules because it needs every executor, the http one and so
aiohttp included; only the runtime (library, daemon) imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import aiohttp
from yarl import URL

from scheduler.errors import ExecutorError
from scheduler.executors.base import Executor
from scheduler.executors.command import CommandExecutor, env_secrets
from scheduler.executors.http import HttpExecutor, http_secrets
from scheduler.executors.python import PythonExecutor, resolve_callable
from scheduler.executors.tasks import TaskConfig


def build_executor(
    task_name: str,
    task: TaskConfig,
    *,
    session: Callable[[], aiohttp.ClientSession],
    env_base: Mapping[str, str],
) -> Executor:
    """The executor for one configured task. ``session`` is called on the first http request,
    inside the running loop; ``env_base`` is what commands inherit (see
    :func:`~scheduler.executors.command.job_environment`). A python task's callable is
    imported here; an error names the task and what is wrong."""
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
