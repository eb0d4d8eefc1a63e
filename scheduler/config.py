"""config.toml -> a frozen, fully validated :class:`Config`.

Durations are seconds (floats) and schedules are compiled here, once, so that every later layer
receives values that are known to be good.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from scheduler.model import Policy, Priority, RetryPolicy, Schedule


class TaskKind(enum.StrEnum):
    HTTP = "http"
    COMMAND = "command"
    PYTHON = "python"


class FsyncMode(enum.StrEnum):
    ALWAYS = "always"
    BATCH = "batch"
    NEVER = "never"


class RateLimit(msgspec.Struct, frozen=True):
    """At most ``count`` starts in any ``per`` seconds (written ``"10/10s"``)."""

    count: int
    per: float


class ServerConfig(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8080
    token_env: str | None = "SCHEDULER_API_TOKEN"
    cors_origins: tuple[str, ...] = ()


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


class TaskConfig(msgspec.Struct, frozen=True, kw_only=True):
    kind: TaskKind
    # http
    url: str | None = None
    method: str = "POST"
    headers: dict[str, str] = {}
    max_response_bytes: int = 65536
    # command
    argv: tuple[str, ...] = ()
    cwd: str | None = None
    env: dict[str, str] = {}
    kill_grace: float = 5.0
    no_retry_exit_codes: tuple[int, ...] = ()
    # python
    callable: str | None = None
    # all kinds
    timeout: float | None = None
    concurrency: int | None = None
    rate_limit: RateLimit | None = None


class StaticJob(msgspec.Struct, frozen=True, kw_only=True):
    """A ``[[jobs]]`` entry: identified across reloads by ``name``."""

    name: str
    task: str
    payload: Any = None
    schedule: Schedule = Schedule()
    timezone: str
    priority: Priority = Priority.NORMAL
    policy: Policy = Policy()
    workflow_id: str | None = None
    workflow_name: str | None = None
    unique_key: str | None = None


class AlertsConfig(msgspec.Struct, frozen=True, kw_only=True):
    webhook_urls: tuple[str, ...] = ()
    window: float = 3600.0
    failure_rate: float = 0.10
    mean_run_time: float = 300.0
    waiting_jobs: int = 100
    slot_utilisation: float = 0.90


class Config(msgspec.Struct, frozen=True, kw_only=True):
    server: ServerConfig = ServerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    retry: RetryPolicy = RetryPolicy()
    default_timeout: float | None = None
    persistence: PersistenceConfig = PersistenceConfig()
    tasks: dict[str, TaskConfig] = {}
    jobs: tuple[StaticJob, ...] = ()
    alerts: AlertsConfig = AlertsConfig()
    path: str | None = None
