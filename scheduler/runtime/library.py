"""The embeddable scheduler: the same engine the daemon runs, driven from your asyncio app.

```python
sched = Scheduler.from_toml("config.toml")        # or Scheduler(config)
@sched.task("sendWelcomeEmail", retries=3)
async def send_welcome_email(payload): ...
ref = await sched.create_task("sendWelcomeEmail", {"email": "a@b.c"})
await sched.start(); ...; await sched.stop()
```
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
from msgspec.structs import replace

from scheduler import ids
from scheduler.checks import expect_duration, expect_int, expect_payload
from scheduler.clock import Clock, SystemClock, to_datetime
from scheduler.config.load import Config, TaskConfig, load_config
from scheduler.config.reload import keep_persistence, persistence_notes
from scheduler.engine.loop import Engine
from scheduler.engine.queue import TaskRuntime
from scheduler.events import Hub
from scheduler.executors import build_executor
from scheduler.executors.http import make_session
from scheduler.executors.python import PythonExecutor
from scheduler.jobspec import JobDefaults, JobSpec, Style, parse_job_input
from scheduler.model import FINISHED, Job, JobStatus, Source
from scheduler.service import JobService, definition
from scheduler.store import Store
from scheduler.views import iso

log = logging.getLogger("scheduler")

F = TypeVar("F", bound=Callable[..., Any])


class TaskRef(msgspec.Struct, frozen=True):
    """What :meth:`Scheduler.create_task` returns: the job's id and status at creation."""

    id: str
    status: str
    scheduled: float | None
    timezone: str

    @property
    def scheduled_time(self) -> str | None:
        """The first run, ISO 8601 in the job's zone (rendered on demand: creation is hot)."""
        return iso(self.scheduled, self.timezone)


class TaskStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`Scheduler.get_task_status` returns."""

    id: str
    status: str
    result: Any
    error: str | None
    attempt: int
    runs: int
    scheduled_time: str | None
    completed_at: str | None


class Scheduler:
    def __init__(
        self,
        config: Config | None = None,
        *,
        clock: Clock | None = None,
        persistence: bool | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config or Config()
        self.clock: Clock = clock or SystemClock()
        self.environ = dict(os.environ if environ is None else environ)
        self.persistence_enabled = (
            self.config.persistence.enabled if persistence is None else persistence
        )
        self.hub = Hub()
        self.store = Store(history=self.config.scheduler.history)
        self.runtimes: dict[str, TaskRuntime] = {}
        self._task_retries: dict[str, int] = {}
        self._library_jobs: list[tuple[str, dict[str, Any]]] = []
        self._session: aiohttp.ClientSession | None = None
        self.engine = Engine(
            self.store,
            self.clock,
            tasks=self.runtimes,
            hub=self.hub,
            max_concurrency=self.config.scheduler.max_concurrency,
            scan_interval=self.config.scheduler.scan_interval,
            retention=self.config.scheduler.retention,
            default_timeout=self.config.default_timeout,
        )
        self.service = JobService(
            self.store, self.engine, self.clock, hub=self.hub, known_task=self._known_task
        )
        self.defaults = JobDefaults.from_config(self.config)
        self._spec_cache: dict[tuple[str, str], JobSpec] = {}
        self._main: asyncio.Task[None] | None = None
        #: Called if the engine stops on its own (a bug): the daemon then exits non-zero so
        #: systemd restarts it, instead of serving an API in front of a dead engine.
        self.on_engine_exit: Callable[[BaseException | None], None] | None = None
        self.persistence: Any = None
        self._install_config_tasks(self.config)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **kwargs: Any) -> Scheduler:
        return cls(load_config(path, known_tasks=()), **kwargs)

    # --- tasks ---------------------------------------------------------------------------

    def _known_task(self, name: str) -> bool:
        return name in self.runtimes

    def _install_config_tasks(self, config: Config) -> None:
        # Jobs never inherit the API token or systemd's notification and watchdog sockets.
        drop = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY"}
        if config.server.token_env:
            drop.add(config.server.token_env)
        env = {k: v for k, v in self.environ.items() if k not in drop}
        for name, task in config.tasks.items():
            self.runtimes[name] = _runtime(
                build_executor(name, task, session=self._get_session, env_base=env), task
            )

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = make_session()
        return self._session

    def task(
        self,
        name: str,
        *,
        retries: int | None = None,
        timeout: float | str | None = None,
        concurrency: int | None = None,
    ) -> Callable[[F], F]:
        """Decorator: register ``func`` as the python task ``name``."""

        def decorate(func: F) -> F:
            self.register_task(
                name, func, retries=retries, timeout=timeout, concurrency=concurrency
            )
            return func

        return decorate

    def register_task(
        self,
        name: str,
        handler: Callable[..., Any],
        *,
        retries: int | None = None,
        timeout: float | str | None = None,
        concurrency: int | None = None,
        payload: Any = None,
        **schedule: Any,
    ) -> None:
        """Register ``handler`` as task ``name``; with schedule keywords (``cron=``, ``every=``,
        ``delay=``, ``at=``, ``rrule=``, ``repeat=``, ``timezone=``) also keep one job of it on
        that schedule (created at :meth:`start`, kept once across restarts)."""
        if timeout is not None:
            timeout = expect_duration(timeout, "timeout")
        if retries is not None:
            retries = expect_int(retries, "retries", minimum=0, maximum=1000)
        if concurrency is not None:
            concurrency = expect_int(concurrency, "concurrency", minimum=1)
        self.runtimes[name] = TaskRuntime(
            PythonExecutor(handler, task_name=name), timeout=timeout, concurrency=concurrency
        )
        if retries is not None:
            self._task_retries[name] = retries
        if schedule:
            raw = {"name": name, "task": name, "payload": payload, **schedule}
            self._spec(raw)  # validate now, where the caller can see the error
            self._library_jobs.append((name, raw))

    # --- jobs ----------------------------------------------------------------------------

    def _spec(self, raw: Mapping[str, Any]) -> JobSpec:
        task = raw.get("task")
        if isinstance(task, str) and task in self._task_retries and "retry" not in raw:
            raw = {**raw, "max_retries": raw.get("max_retries", self._task_retries[task])}
        return self.parse_input(raw, style="snake")

    def parse_input(self, raw: Mapping[str, Any], *, style: Style = "camel") -> JobSpec:
        """Validate one job's input (API: camelCase; library: snake_case) against this
        scheduler's tasks and defaults, with its schedule tried at this scheduler's now."""
        return parse_job_input(
            raw,
            defaults=self.defaults,
            style=style,
            tasks=self.runtimes if style == "camel" else None,
            created=to_datetime(self.clock.time()),
        )

    async def create_task(
        self,
        name: str,
        payload: Any = None,
        *,
        schedule: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TaskRef:
        """Create a job of task ``name``. ``schedule`` takes the SPEC's schedule keys
        (``{"delay": "15m"}``, ``{"cron": "0 9 * * 1-5"}``, ...); ``options`` the job's other
        keys in snake_case (``priority``, ``workflow_id``, ``max_retries``, ``timeout``...)."""
        spec = self._cached_spec(name, schedule, options)
        spec = replace(spec, payload=expect_payload(payload, "payload"))
        job = await self.service.create(spec, source=Source.LIBRARY)
        return TaskRef(ids.encode(job.id), job.status.value, job.scheduled, job.timezone)

    def _cached_spec(
        self, name: str, schedule: Mapping[str, Any] | None, options: Mapping[str, Any]
    ) -> JobSpec:
        # Validating the same shape of request again and again is the cost of a hot loop:
        # keep the validated spec per shape (payload is swapped in afterwards).
        key = (name, repr((schedule, options)) if schedule or options else "")
        spec = self._spec_cache.get(key)
        if spec is None:
            raw: dict[str, Any] = {"task": name, **(schedule or {}), **options}
            spec = self._spec(raw)
            if len(self._spec_cache) < 1024:
                self._spec_cache[key] = spec
        return spec

    def get_task_status(self, job_id: str) -> TaskStatus | None:
        job = self.service.find(job_id)
        if job is None:
            return None
        return TaskStatus(
            id=job_id,
            status=job.status.value,
            result=job.result,
            error=job.error,
            attempt=job.attempt,
            runs=job.runs,
            scheduled_time=iso(job.scheduled, job.timezone),
            completed_at=iso(job.completed, job.timezone),
        )

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        """``[persistence] dir``, else systemd's ``$STATE_DIRECTORY``, else ``var`` beside the
        config file (``./var`` for ``make run``)."""
        configured = self.config.persistence.dir
        if configured:
            return Path(configured)
        systemd = self.environ.get("STATE_DIRECTORY")
        if systemd:
            return Path(systemd.split(":")[0])
        base = Path(self.config.path).parent if self.config.path else Path()
        return base / "var"

    async def start(self) -> None:
        """Recover state (when persistence is on), install static jobs, start the engine."""
        if self._main is not None:
            return
        try:
            if self.persistence_enabled:
                await self._recover()
            await self._install_static_jobs()
        except BaseException:
            # Nothing started: let go of the state directory, so a retry (or another
            # process) can have it.
            if self.persistence is not None:
                await self.persistence.close()
                self.persistence = None
            raise
        started = asyncio.Event()
        self._main = asyncio.create_task(self.engine.serve(started), name="scheduler-engine")
        self._main.add_done_callback(self._engine_done)
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({waiter, self._main}, return_when=asyncio.FIRST_COMPLETED)
        if self._main.done():
            waiter.cancel()
            self._main.result()  # raises what stopped the engine

    def _engine_done(self, task: asyncio.Task[None]) -> None:
        if self.engine.stopping or task.cancelled():
            return
        error = task.exception()
        log.critical("the engine stopped unexpectedly: %r", error)
        if self.on_engine_exit is not None:
            self.on_engine_exit(error)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful stop: running jobs get ``shutdown_grace``, then are cancelled and recorded."""
        if self._main is None:
            if self.persistence is not None:  # claimed, or a start that failed half-way
                await self.persistence.close()
                self.persistence = None
            return
        main, self._main = self._main, None
        await self.engine.stop(self.config.scheduler.shutdown_grace if grace is None else grace)
        await asyncio.gather(main, return_exceptions=True)  # a crash was reported when it happened
        if self.persistence is not None:
            await self.persistence.close(self.service.ids.last)
            self.persistence = None
        if self._session is not None:
            await self._session.close()

    async def claim_state(self) -> None:
        """Take the state directory's lock now (persistence on): a second scheduler on the
        same directory is refused here, before anything else of its start. :meth:`start` does
        it too; the daemon calls this before it binds its port."""
        if self.persistence_enabled:
            await self._persistence().claim()

    def _persistence(self) -> Any:
        from scheduler.persistence.manager import Persistence

        if self.persistence is None:
            cfg = self.config.persistence
            self.persistence = Persistence(
                self.state_dir,
                fsync=cfg.fsync,
                batch_interval=cfg.batch_interval,
                snapshot_interval=cfg.snapshot_interval,
                store=self.store,
            )
        return self.persistence

    async def _recover(self) -> None:
        state = await self._persistence().open()
        self.service.ids.observe(max(state.next_id, max(self.store.jobs, default=0)))
        requeued = await self.engine.recover_interrupted()
        log.info(
            "recovered %d jobs (snapshot %s, %d journal records replayed, %d torn bytes cut); "
            "%d interrupted runs handled per onCrash",
            len(self.store),
            state.stats.snapshot.name if state.stats.snapshot else "none",
            state.stats.records_replayed,
            state.stats.torn_bytes,
            requeued,
        )

    @property
    def running(self) -> bool:
        return self._main is not None and not self.engine.stopping

    async def _install_static_jobs(self) -> None:
        """Config [[jobs]] and library-scheduled tasks, matched to stored jobs by name."""
        wanted: dict[str, tuple[JobSpec, Source]] = {
            static.name: (static.spec(), Source.CONFIG) for static in self.config.jobs
        }
        for name, raw in self._library_jobs:
            wanted[name] = (self._spec(raw), Source.LIBRARY)
        await self.sync_static_jobs(wanted)

    async def apply_config(self, new: Config) -> list[str]:
        """Apply a reloaded config in place; returns the changes that need a restart.

        Applied: tasks (a changed task gets a new executor; a run in flight keeps the one it
        started with), job defaults, ``max_concurrency`` (workers are added, or retire when
        idle), per-task limits, ``scan_interval`` (from the next scan), retention, history, the
        snapshot interval and the static jobs (:meth:`sync_static_jobs`: a changed schedule
        counts from now). Not applied, because the open journal depends on them: the
        persistence dir, fsync mode, batch interval and on/off switch; they keep their running
        values and each change is one returned note. Jobs created over the API are never
        touched; a removed task that such jobs still name is logged, as they will fail.
        """
        old = self.config
        notes = persistence_notes(old, new)
        new = replace(new, persistence=keep_persistence(old.persistence, new.persistence))
        self._reinstall_tasks(old, new)
        self.config = new
        self.defaults = JobDefaults.from_config(new)
        self._spec_cache.clear()
        self._apply_limits(new)
        await self._install_static_jobs()
        return notes

    def _reinstall_tasks(self, old: Config, new: Config) -> None:
        # A token variable once named stays out of every job's environment for good.
        if old.server.token_env:
            self.environ.pop(old.server.token_env, None)
        rebuild_all = old.server.token_env != new.server.token_env
        changed = {
            name: task
            for name, task in new.tasks.items()
            if rebuild_all or old.tasks.get(name) != task
        }
        self._install_config_tasks(replace(new, tasks=changed))
        removed = old.tasks.keys() - new.tasks.keys()
        for name in removed:
            self.runtimes.pop(name, None)
        users = sum(1 for job in self.store if job.task in removed and job.status not in FINISHED)
        if users:
            log.warning(
                "tasks removed from the config (%s) are still named by %d jobs, which will fail"
                " when they run; define the tasks again or delete those jobs",
                ", ".join(sorted(removed)),
                users,
            )

    def _apply_limits(self, config: Config) -> None:
        limits = config.scheduler
        engine = self.engine
        if limits.max_concurrency != engine.max_concurrency:
            engine.set_concurrency(limits.max_concurrency)
        engine.scan_interval = limits.scan_interval
        engine.retention = limits.retention
        engine.default_timeout = config.default_timeout
        self.store.history = limits.history
        if self.persistence is not None:
            self.persistence.snapshot_interval = config.persistence.snapshot_interval

    def _revives(self, job: Job, spec: JobSpec) -> bool:
        """An unchanged static job that finished comes back at a start or reload (cancelled or
        quarantined: the file still defines it), unless its schedule has no run left (a rule
        that ended, a one-off that ran): that one stays finished and never runs twice."""
        if job.status not in FINISHED:
            return False
        now = self.clock.time()
        return self.service.first_run(spec, created=job.created, now=now) is not None

    async def sync_static_jobs(self, wanted: Mapping[str, tuple[JobSpec, Source]]) -> None:
        """Make the stored static jobs match ``wanted``: add, change (next run computed from now,
        never retroactively) or remove by name. Jobs created over the API are never touched."""
        existing = {
            job.name: job
            for job in self.store
            if job.name is not None and job.source in (Source.CONFIG, Source.LIBRARY)
        }
        for name, (spec, source) in wanted.items():
            old = existing.pop(name, None)
            if old is not None and _same_spec(old, spec) and not self._revives(old, spec):
                continue
            fresh = self.service.build(spec, source=source)
            if old is not None:
                if old.status is JobStatus.RUNNING:
                    fresh = replace(fresh, status=JobStatus.RUNNING)
                fresh = replace(fresh, id=old.id, runs=old.runs)
            self.store.put(fresh)
        for old in existing.values():
            self.engine.cancel_runs(old.id, "removed from config", deleting=True)
            self.store.delete(old.id)
        await self.store.commit()


def _same_spec(job: Job, spec: JobSpec) -> bool:
    """Whether the stored job already is what ``spec`` defines (then a start or reload
    leaves it, and its schedule, alone)."""
    wanted = definition(spec, spec.task or job.task)
    return all(getattr(job, key) == value for key, value in wanted.items())


def _runtime(executor: Any, task: TaskConfig) -> TaskRuntime:
    rate = None if task.rate_limit is None else (task.rate_limit.count, task.rate_limit.per)
    return TaskRuntime(
        executor, timeout=task.timeout, concurrency=task.concurrency, rate_limit=rate
    )
