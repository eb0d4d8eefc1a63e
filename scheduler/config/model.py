"""What a loaded config.toml is: frozen records, every value checked and converted.

Durations are seconds (floats), relative paths are resolved, and each ``[[jobs]]`` entry is a
:class:`~scheduler.jobspec.JobSpec` with its ``name`` set (the same record the HTTP API parses a
job into), so every later layer receives values that are known to be good. The records are
built by :mod:`.load`; what a reload may change is :mod:`.reload`. A task's definition
(:class:`~scheduler.executors.tasks.TaskConfig`) lives with the executors that read it.
"""

from __future__ import annotations

import socket

import msgspec

from scheduler.errors import InvalidInput
from scheduler.executors.tasks import TaskConfig
from scheduler.jobspec import JobDefaults, JobSpec
from scheduler.maintenance import WindowSpec
from scheduler.model import FsyncMode, RetryPolicy


class ServerConfig(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8080
    token_env: str | None = "SCHEDULER_API_TOKEN"  # noqa: S105 - a variable's name, not a secret
    cors_origins: tuple[str, ...] = ()
    #: Routes other sites may read with CORS (``cors_origins``): the status card by default.
    cors_routes: tuple[str, ...] = ("/api/scheduler",)
    idle_timeout: float = 15.0  # an idle keep-alive connection is closed after this
    header_timeout: float = 10.0  # a request's headers, then its body, must arrive within this
    max_connections: int = 1024  # open connections; kept below the open-files limit
    max_streams: int = 100  # live event streams (SSE); past it 503 with Retry-After


class SchedulerConfig(msgspec.Struct, frozen=True, kw_only=True):
    timezone: str = "Asia/Seoul"
    scan_interval: float = 60.0
    max_concurrency: int = 10
    retention: float = 86400.0
    history: int = 20
    shutdown_grace: float = 30.0
    log_format: str = "text"


class PersistenceConfig(msgspec.Struct, frozen=True, kw_only=True):
    dir: str | None = None  # None: $STATE_DIRECTORY, else ./var
    snapshot_interval: float = 60.0
    fsync: FsyncMode = FsyncMode.ALWAYS
    batch_interval: float = 0.01
    enabled: bool = True


class AlertsConfig(msgspec.Struct, frozen=True, kw_only=True):
    webhook_urls: tuple[str, ...] = ()
    window: float = 3600.0
    failure_rate: float = 0.10
    mean_run_time: float = 300.0
    waiting_jobs: int = 100
    slot_utilisation: float = 0.90
    missed_runs: bool | None = None  # None: on when webhook_urls are set


class ClusterConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``[cluster]``: several daemons share one job set in PostgreSQL (``None``: the single box).

    ``url`` holds no password: it comes from ``$CREDENTIALS_DIRECTORY/db_password``, else from
    the variable named by ``password_env`` (see :func:`scheduler.cluster.db.cluster_password`),
    so that it is never in a file others read nor in a log. ``lease`` is in seconds: a node
    that has not renewed for that long is dead and its runs move. Every key needs a restart.
    """

    url: str
    password_env: str | None = "SCHEDULER_DB_PASSWORD"  # noqa: S105 - a variable's name
    node_id: str = msgspec.field(default_factory=socket.gethostname)
    lease: float = 10.0
    schema: str = "scheduler"


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """The whole file. ``jobs`` are the ``[[jobs]]`` entries, each with a unique ``name`` (by
    which a reload matches it to the stored job) and a ``task``; ``maintenance`` the
    ``[[maintenance]]`` windows (see :mod:`scheduler.maintenance`)."""

    server: ServerConfig = ServerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    retry: RetryPolicy = RetryPolicy()
    default_timeout: float | None = None
    persistence: PersistenceConfig = PersistenceConfig()
    tasks: dict[str, TaskConfig] = {}
    jobs: tuple[JobSpec, ...] = ()
    alerts: AlertsConfig = AlertsConfig()
    cluster: ClusterConfig | None = None
    maintenance: tuple[WindowSpec, ...] = ()
    path: str | None = None


#: The old name of a ``[[jobs]]`` entry, which is a :class:`JobSpec` with its ``name`` set.
StaticJob = JobSpec


def static_jobs(config: Config) -> dict[str, JobSpec]:
    """The ``[[jobs]]`` by name, the key a reload matches them by. The loader gives each a
    unique name; a config built in code without one is refused here, naming the entry."""
    named: dict[str, JobSpec] = {}
    for i, job in enumerate(config.jobs):
        if job.name is None:
            field = f"jobs[{i}].name"
            message = f"{field}: expected a unique name; every static job needs one"
            raise InvalidInput(message, field=field)
        named[job.name] = job
    return named


def job_defaults(config: Config) -> JobDefaults:
    """What a job gets for the keys it leaves out: ``[scheduler] timezone`` and ``[retry]``."""
    return JobDefaults(timezone=config.scheduler.timezone, retry=config.retry)
