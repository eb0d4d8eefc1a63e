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
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import msgspec
from msgspec.structs import replace

from scheduler import ids
from scheduler.checks import expect_payload
from scheduler.clock import Clock, SystemClock, to_datetime
from scheduler.config import Config, job_defaults, load_config, static_jobs
from scheduler.config.reload import (
    cluster_notes,
    keep_cluster,
    keep_persistence,
    persistence_notes,
)
from scheduler.engine.loop import Engine
from scheduler.engine.recovery import downtime
from scheduler.events import Hub
from scheduler.jobspec import JobSpec, Style, parse_job_input
from scheduler.maintenance import Maintenance
from scheduler.model import FINISHED, Source
from scheduler.runtime.registry import TaskRegistry
from scheduler.service import JobService

if TYPE_CHECKING:
    from scheduler.cluster.engine import ClusterEngine
    from scheduler.cluster.runtime import ClusterParts
    from scheduler.cluster.service import ClusterService
from scheduler.store import Store
from scheduler.views import iso

log = logging.getLogger("scheduler")

F = TypeVar("F", bound=Callable[..., Any])


#: Seconds the added services get to finish after they are closed, at a stop.
SERVICES_GRACE: Final = 10.0

#: What the log calls the periodic snapshots' task when it stops on its own.
SNAPSHOT_LOOP: Final = "snapshot loop"


class Service(Protocol):
    """A long-lived part that runs beside the engine (:meth:`Scheduler.add_service`)."""

    async def serve(self) -> None:
        """Run until :meth:`close` (or until cancelled)."""

    async def close(self) -> None:
        """Finish: :meth:`serve` returns soon after."""


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
        clustered = self.config.cluster is not None
        # A cluster node keeps its state in PostgreSQL: no state directory of its own.
        self.persistence_enabled = not clustered and (
            self.config.persistence.enabled if persistence is None else persistence
        )
        self.hub = Hub(relayed=clustered)
        self.store = Store(history=self.config.scheduler.history)
        self.tasks = TaskRegistry(self.environ)
        self.runtimes = self.tasks.runtimes
        self._library_jobs: list[tuple[str, dict[str, Any]]] = []
        self.engine: Engine | ClusterEngine = Engine(
            self.store,
            self.clock,
            tasks=self.runtimes,
            hub=self.hub,
            max_concurrency=self.config.scheduler.max_concurrency,
            scan_interval=self.config.scheduler.scan_interval,
            retention=self.config.scheduler.retention,
            default_timeout=self.config.default_timeout,
        )
        self.service: JobService | ClusterService = JobService(
            self.store, self.engine, self.clock, hub=self.hub, known_task=self.tasks.known
        )
        #: The node's parts in cluster mode (``[cluster]``), else None.
        self.cluster: ClusterParts | None = None
        if clustered:
            from scheduler.cluster import require_driver

            require_driver()
            from scheduler.cluster.runtime import build

            self.cluster = build(self)
            self.engine, self.service = self.cluster.engine, self.cluster.service
        #: The maintenance windows in force (``[[maintenance]]``), replaced on reload.
        self.maintenance = Maintenance(self.config.maintenance)
        self.engine.set_maintenance(self.maintenance)
        self.defaults = job_defaults(self.config)
        self._spec_cache: dict[tuple[str, str], JobSpec] = {}
        self._main: asyncio.Task[None] | None = None
        self._services: list[tuple[str, Service]] = []  # (name for the log, service)
        self._snapshots: asyncio.Task[None] | None = None
        #: The group's tasks, each with what the log calls it if it stops on its own.
        self._long_lived: dict[asyncio.Task[None], str] = {}
        #: Called if the engine stops on its own (a bug): the daemon then exits non-zero so
        #: systemd restarts it, instead of serving an API in front of a dead engine.
        self.on_engine_exit: Callable[[BaseException | None], None] | None = None
        self.persistence: Any = None
        self.tasks.install(self.config)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **kwargs: Any) -> Scheduler:
        return cls(load_config(path, known_tasks=()), **kwargs)

    # --- tasks ---------------------------------------------------------------------------

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
        self.tasks.register(
            name, handler, retries=retries, timeout=timeout, concurrency=concurrency
        )
        if schedule:
            raw = {"name": name, "task": name, "payload": payload, **schedule}
            self._spec(raw)  # validate now, where the caller can see the error
            self._library_jobs.append((name, raw))

    # --- jobs ----------------------------------------------------------------------------

    def _spec(self, raw: Mapping[str, Any]) -> JobSpec:
        return self.parse_input(self.tasks.with_retries(raw), style="snake")

    def parse_input(self, raw: Mapping[str, Any], *, style: Style = "camel") -> JobSpec:
        """Validate one job's input (API: camelCase; library: snake_case) against this
        scheduler's tasks and defaults, with its schedule tried at this scheduler's now."""
        return parse_job_input(
            raw,
            defaults=self.defaults,
            style=style,
            tasks=self.runtimes if style == "camel" else None,
            # To the millisecond: a job created from the spec is created at this instant
            # (its id holds milliseconds), so this compilation of its schedule is the one kept.
            created=to_datetime(math.floor(self.clock.time() * 1000) / 1000),
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

    def known_task(self, name: str) -> bool:
        """Whether ``name`` is a task of the config or registered."""
        return self.tasks.known(name)

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
            if self.cluster is not None:
                await self.cluster.start()
            await self._install_static_jobs()
        except BaseException:
            # Nothing started: let go of the state directory (or the cluster's connections
            # and node lock), so a retry (or another process) can have it.
            if self.persistence is not None:
                await self.persistence.close()
                self.persistence = None
            if self.cluster is not None:
                await self.cluster.close()
            raise
        started = asyncio.Event()
        self._main = asyncio.create_task(self._supervise(started), name="scheduler")
        self._main.add_done_callback(self._engine_done)
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({waiter, self._main}, return_when=asyncio.FIRST_COMPLETED)
        if self._main.done():
            waiter.cancel()
            self._main.result()  # raises what stopped the engine

    def add_service(self, service: Service, *, name: str | None = None) -> None:
        """Run ``service`` beside the engine, from :meth:`start` until :meth:`stop` (which
        closes it after the engine has stopped, in the reverse order of adding). ``name`` (by
        default the class's) is what the log calls it if it stops on its own."""
        self._services.append((name or type(service).__name__, service))

    async def _supervise(self, started: asyncio.Event) -> None:
        """Every long-lived task of the scheduler, in one TaskGroup: the engine, the periodic
        snapshots and the added services (the daemon's alert sender). If any of them fails,
        the others are cancelled and the scheduler stops (the daemon then exits non-zero)."""
        async with asyncio.TaskGroup() as group:
            engine = group.create_task(self.engine.serve(started), name="engine")
            self._long_lived = {engine: "engine"}
            if self.persistence is not None:
                self._snapshots = group.create_task(self.persistence.serve(), name="snapshots")
                self._long_lived[self._snapshots] = SNAPSHOT_LOOP
            for name, service in self._services:
                self._long_lived[group.create_task(service.serve(), name=name)] = name

    def _engine_done(self, task: asyncio.Task[None]) -> None:
        """The group ended on its own (a bug): say which of its tasks stopped it, since the
        group's error alone does not (the operator reads "the snapshot loop", not a group)."""
        if self.engine.stopping or task.cancelled():
            return
        error = task.exception()
        failed = {
            child: name
            for child, name in self._long_lived.items()
            if child.done() and not child.cancelled() and child.exception() is not None
        }
        names = " and the ".join(failed.values()) or "engine"
        shown = next(iter(failed)).exception() if len(failed) == 1 else error
        log.critical("the %s stopped unexpectedly: %r", names, shown)
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
        for _, service in reversed(self._services):
            await service.close()
        if self._snapshots is not None:
            self._snapshots.cancel()
            self._snapshots = None
        await asyncio.wait({main}, timeout=SERVICES_GRACE)
        main.cancel()  # a service that does not end when closed is not waited for longer
        # Bounded too: a task that swallowed its cancel must not keep the process from exiting
        # (a crash was reported when it happened).
        done, _ = await asyncio.wait({main}, timeout=SERVICES_GRACE)
        if not done:
            log.error("a long-lived task did not stop when cancelled; stopping without it")
        if self.cluster is not None:
            await self.cluster.close()
        if self.persistence is not None:
            await self.persistence.close(self.service.ids.last)
            self.persistence = None
        await self.tasks.close()

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
        # Explain tells runs missed while no process ran on this state (engine.recovery).
        self.service.downtime = downtime(state.last_recorded, state.last_written, self.clock.time())
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
            name: (spec, Source.CONFIG) for name, spec in static_jobs(self.config).items()
        }
        for name, raw in self._library_jobs:
            wanted[name] = (self._spec(raw), Source.LIBRARY)
        await self.sync_static_jobs(wanted)

    async def apply_config(self, new: Config) -> list[str]:
        """Apply a reloaded config in place; returns the changes that need a restart.

        Applied: tasks (a changed task gets a new executor; a run in flight keeps the one it
        started with), job defaults, ``max_concurrency`` (workers are added, or retire when
        idle), per-task limits, ``scan_interval`` (from the next scan), retention, history, the
        snapshot interval, the maintenance windows and the static jobs
        (:meth:`sync_static_jobs`: a changed schedule counts from now). Not applied, because
        the open journal depends on them: the persistence dir, fsync mode, batch interval and
        on/off switch; they keep their running values and each change is one returned note.
        Jobs created over the API are never touched; a removed task that such jobs still name
        is logged, as they will fail.
        """
        old = self.config
        notes = persistence_notes(old, new) + cluster_notes(old, new)
        new = replace(new, persistence=keep_persistence(old.persistence, new.persistence))
        new = keep_cluster(old, new)
        self._reinstall_tasks(old, new)
        self.config = new
        self.defaults = job_defaults(new)
        self._spec_cache.clear()
        self._apply_limits(new)
        if new.maintenance != old.maintenance:  # a window removed or shortened frees its jobs
            self.maintenance = Maintenance(new.maintenance)
            self.engine.set_maintenance(self.maintenance)
        await self._install_static_jobs()
        return notes

    def _reinstall_tasks(self, old: Config, new: Config) -> None:
        removed = self.tasks.reinstall(old, new)
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
        if self.cluster is not None:
            self.cluster.set_history(limits.history)
        if self.persistence is not None:
            self.persistence.snapshot_interval = config.persistence.snapshot_interval

    async def sync_static_jobs(self, wanted: Mapping[str, tuple[JobSpec, Source]]) -> None:
        """Make the stored static jobs match ``wanted``: add, change (next run computed from now,
        never retroactively) or remove by name. Jobs created over the API are never touched."""
        await self.service.sync_static(wanted)
