"""The tasks a scheduler can run: defined in config (``[tasks.NAME]``) or registered in code.

Each task becomes a :class:`~scheduler.engine.queue.TaskRuntime`: its executor and its limits.
Jobs never inherit the API token's variable or systemd's notification, watchdog and credential
variables. Http tasks share one client session, made on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from msgspec.structs import replace

from scheduler.checks import expect_duration, expect_int
from scheduler.config import Config
from scheduler.engine.queue import TaskRuntime
from scheduler.executors.factory import build_executor
from scheduler.executors.http import make_session
from scheduler.executors.python import PythonExecutor
from scheduler.executors.tasks import TaskConfig

#: Variables of the daemon's environment that no job sees.
PRIVATE_ENV = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY"})


class TaskRegistry:
    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        #: By name: what the engine runs. Shared with the engine (a dict it reads live).
        self.runtimes: dict[str, TaskRuntime] = {}
        #: ``retries=`` of tasks registered in code: the default ``maxRetries`` of their jobs.
        self.retries: dict[str, int] = {}
        self._session: aiohttp.ClientSession | None = None

    def known(self, name: str) -> bool:
        return name in self.runtimes

    def install(self, config: Config) -> None:
        """Build (or rebuild) the executors of ``config``'s tasks."""
        drop = set(PRIVATE_ENV)
        if config.server.token_env:
            drop.add(config.server.token_env)
        if config.cluster is not None and config.cluster.password_env:
            drop.add(config.cluster.password_env)
        env = {k: v for k, v in self.environ.items() if k not in drop}
        for name, task in config.tasks.items():
            executor = build_executor(name, task, session=self.session, env_base=env)
            self.runtimes[name] = _runtime(executor, task)

    def reinstall(self, old: Config, new: Config) -> set[str]:
        """Apply a reloaded config's tasks: a changed task gets a new executor (a run in flight
        keeps the one it started with); returns the names of the tasks removed."""
        # A token variable once named stays out of every job's environment for good.
        if old.server.token_env:
            self.environ.pop(old.server.token_env, None)
        rebuild_all = old.server.token_env != new.server.token_env
        changed = {
            name: task
            for name, task in new.tasks.items()
            if rebuild_all or old.tasks.get(name) != task
        }
        self.install(replace(new, tasks=changed))
        removed = set(old.tasks.keys() - new.tasks.keys())
        for name in removed:
            self.runtimes.pop(name, None)
        return removed

    def register(
        self,
        name: str,
        handler: Callable[..., Any],
        *,
        retries: object = None,
        timeout: object = None,
        concurrency: object = None,
    ) -> None:
        """``handler`` as the python task ``name``; each limit is checked, naming it."""
        seconds = None if timeout is None else expect_duration(timeout, "timeout")
        tries = None if retries is None else expect_int(retries, "retries", minimum=0, maximum=1000)
        slots = None if concurrency is None else expect_int(concurrency, "concurrency", minimum=1)
        self.runtimes[name] = TaskRuntime(
            PythonExecutor(handler, task_name=name), timeout=seconds, concurrency=slots
        )
        if tries is not None:
            self.retries[name] = tries

    def with_retries(self, raw: Mapping[str, Any]) -> Mapping[str, Any]:
        """A job's input with its task's ``retries=`` as ``max_retries`` unless it says."""
        task = raw.get("task")
        if isinstance(task, str) and task in self.retries and "retry" not in raw:
            return {**raw, "max_retries": raw.get("max_retries", self.retries[task])}
        return raw

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = make_session()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _runtime(executor: Any, task: TaskConfig) -> TaskRuntime:
    rate = None if task.rate_limit is None else (task.rate_limit.count, task.rate_limit.per)
    return TaskRuntime(
        executor, timeout=task.timeout, concurrency=task.concurrency, rate_limit=rate
    )
