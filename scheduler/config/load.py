"""config.toml -> a frozen, fully validated :class:`Config`.

Durations are seconds (floats) and schedules are compiled here, once, so that every later layer
receives values that are known to be good.

Validation policy: every section, task and job is checked key by key and ALL problems are
reported together, one line each, ``FILE: key.path: expected ..., got ...`` (a TOML syntax error:
``FILE:LINE:COL: message``), raised as one :class:`~scheduler.errors.ConfigError`. Unknown keys are
errors, because a misspelt key silently falling back to its default is the worst kind of mistake
in a file nobody reads until 3 a.m. Relative paths (``persistence.dir``, a command's ``cwd``) are
relative to the config file's directory, so the file means the same from any working directory.
"""

from __future__ import annotations

import enum
import os
import re
import tomllib
from collections.abc import Collection, Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from scheduler.checks import (
    Check,
    choice,
    expect_bool,
    expect_choice,
    expect_duration,
    expect_duration_or_zero,
    expect_fraction,
    expect_int,
    expect_str,
    expect_str_list,
    expect_str_map,
    expect_table,
    invalid,
    read_keys,
    unknown_keys,
)
from scheduler.errors import ConfigError, ExecutorError, InvalidInput, SchedulerError
from scheduler.executors.python import resolve_callable
from scheduler.jobspec import RETRY_CHECKS, JobDefaults, JobSpec, merge_retry, validate_job_input
from scheduler.model import Policy, Priority, RetryPolicy, Schedule
from scheduler.schedules import load_zone


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

    def spec(self) -> JobSpec:
        """The job input this entry stands for (what the API would have parsed)."""
        return JobSpec(**msgspec.structs.asdict(self))


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


# --- loading ---------------------------------------------------------------------------------

SECTIONS = ("server", "scheduler", "retry", "persistence", "tasks", "jobs", "alerts")
LOG_FORMATS = ("text", "json")


def load_config(path: str | os.PathLike[str], *, known_tasks: Collection[str] = ()) -> Config:
    """Read and validate a config file; raise :class:`ConfigError` listing every problem.

    ``known_tasks`` are task names registered in code (library use), which static jobs may name
    besides the file's ``[tasks]``. A file that cannot be read is one problem naming it.
    """
    source = os.fspath(path)
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: expected UTF-8 text, got byte {exc.start}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([syntax_problem(source, text, exc)]) from None
    except RecursionError:  # tomllib recurses once per level of nested arrays and tables
        raise ConfigError(
            [f"{source}: expected arrays and tables nested a few levels deep, got too many"]
        ) from None
    base_dir = file.absolute().parent
    config = parse_config(data, source=source, known_tasks=known_tasks, base_dir=base_dir)
    return msgspec.structs.replace(config, path=str(file.absolute()))


_AT_LINE = re.compile(r" \(at line (\d+), column (\d+)\)$")
_AT_END = " (at end of document)"


def syntax_problem(source: str, text: str, exc: tomllib.TOMLDecodeError) -> str:
    """``FILE:LINE:COL: message`` for a TOML syntax error (tomllib puts the place in its text)."""
    message = str(exc)
    found = _AT_LINE.search(message)
    if found:
        line, col = int(found[1]), int(found[2])
        message = message[: found.start()]
    else:
        message = message.removesuffix(_AT_END)
        line = text.count("\n") + 1
        col = len(text.rsplit("\n", 1)[-1]) + 1
    return f"{source}:{line}:{col}: {message}"


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str,
    known_tasks: Collection[str] = (),
    base_dir: Path | None = None,
) -> Config:
    """Validate a parsed TOML document. ``source`` names it in problem lines; relative paths
    are resolved against ``base_dir`` (kept relative when it is None)."""
    loader = _Loader(base_dir)
    config = loader.load(data, known_tasks)
    if loader.problems:
        # Sections are checked in dependency order and reported in the file's order.
        order = {key: i for i, key in enumerate(data)}
        problems = sorted(loader.problems, key=lambda p: order.get(_section_of(p), len(order)))
        raise ConfigError([problem_line(source, problem) for problem in problems])
    return config


def _section_of(problem: SchedulerError) -> str:
    return re.split(r"[.\[]", problem.field or "", maxsplit=1)[0]


def problem_line(source: str, exc: SchedulerError) -> str:
    """``FILE: key.path: what was expected``; messages already start with their key path."""
    message = exc.message
    if exc.field and not message.startswith(f"{exc.field}:"):
        message = f"{exc.field}: {message}"
    return f"{source}: {message}"


class _Loader:
    """Checks a document section by section, each task and job on its own, keeping every
    problem. A bad value is replaced by its default so later checks still run."""

    def __init__(self, base_dir: Path | None) -> None:
        self.base_dir = base_dir
        self.problems: list[InvalidInput] = []

    def load(self, data: Mapping[str, Any], known_tasks: Collection[str]) -> Config:
        self.problems.extend(unknown_keys(data, SECTIONS, "", where="(top level)"))
        scheduler = SchedulerConfig(**self.section(data, "scheduler", _SCHEDULER))
        retry, timeout = self.retry(data)
        persistence = PersistenceConfig(**self.section(data, "persistence", _PERSISTENCE))
        if persistence.dir is not None:
            persistence = msgspec.structs.replace(persistence, dir=self.resolve(persistence.dir))
        raw_tasks = data.get("tasks", {})
        tasks = self.tasks(raw_tasks)
        # Jobs may name a task whose definition has a problem: that is reported once, there.
        names = set(raw_tasks if isinstance(raw_tasks, Mapping) else ()) | set(known_tasks)
        defaults = JobDefaults(timezone=scheduler.timezone, retry=retry, timeout=timeout)
        return Config(
            server=self.server(data),
            scheduler=scheduler,
            retry=retry,
            default_timeout=timeout,
            persistence=persistence,
            tasks=tasks,
            jobs=self.jobs(data.get("jobs", []), defaults, names),
            alerts=AlertsConfig(**self.section(data, "alerts", _ALERTS)),
        )

    def server(self, data: Mapping[str, Any]) -> ServerConfig:
        server = ServerConfig(**self.section(data, "server", _SERVER))
        try:
            _check_server(server)
        except InvalidInput as exc:
            self.problems.append(exc)
            return ServerConfig()
        return server

    def section(
        self, data: Mapping[str, Any], name: str, checks: Mapping[str, Check]
    ) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, Mapping):
            self.problems.append(invalid(name, f"a table ([{name}])", value))
            return {}
        return read_keys(value, checks, f"{name}.", self.problems)

    def resolve(self, path: str) -> str:
        if self.base_dir is None or Path(path).is_absolute():
            return path
        return str(self.base_dir / path)

    def retry(self, data: Mapping[str, Any]) -> tuple[RetryPolicy, float | None]:
        values = self.section(data, "retry", _RETRY)
        timeout = values.pop("timeout", None)
        try:
            return merge_retry(RetryPolicy(), values, prefix="retry.", style="snake"), timeout
        except InvalidInput as exc:
            self.problems.append(exc)
            return RetryPolicy(), timeout

    def tasks(self, value: object) -> dict[str, TaskConfig]:
        if not isinstance(value, Mapping):
            self.problems.append(invalid("tasks", "a table of tasks ([tasks.NAME])", value))
            return {}
        tasks = {name: self.task(name, table) for name, table in value.items()}
        return {name: task for name, task in tasks.items() if task is not None}

    def task(self, name: str, value: object) -> TaskConfig | None:
        before = len(self.problems)
        prefix = f"tasks.{name}."
        if not _TASK_NAME.fullmatch(name):
            self.problems.append(
                invalid(f"tasks.{name}", "a task name of letters, digits, '_', '.' and '-'", name)
            )
        try:
            table = expect_table(value, f"tasks.{name}")
        except InvalidInput as exc:
            self.problems.append(exc)
            return None
        kind = self.task_kind(table, prefix)
        values = self.task_keys(table, kind, prefix)
        if "cwd" in values:
            values["cwd"] = self.resolve(values["cwd"])
        if len(self.problems) > before or kind is None:
            return None
        return TaskConfig(kind=kind, **values)

    def task_kind(self, table: Mapping[str, Any], prefix: str) -> TaskKind | None:
        field = f"{prefix}kind"
        if "kind" not in table:
            message = f"{field}: expected one of http, command, python; every task needs one"
            self.problems.append(InvalidInput(message, field=field))
            return None
        try:
            return expect_choice(TaskKind, table["kind"], field)
        except InvalidInput as exc:
            self.problems.append(exc)
            return None

    def task_keys(
        self, table: Mapping[str, Any], kind: TaskKind | None, prefix: str
    ) -> dict[str, Any]:
        """Check each key; a key of another kind is named as such (``url`` on a command task)."""
        own = _TASK_COMMON | (_TASK_KEYS[kind] if kind else _ALL_TASK_KEYS)
        values: dict[str, Any] = {}
        for key, item in table.items():
            field = f"{prefix}{key}"
            if key in own:
                try:
                    values[key] = own[key](item, field)
                except InvalidInput as exc:
                    self.problems.append(exc)
            elif key in _ALL_TASK_KEYS:
                owner = next(k for k, keys in _TASK_KEYS.items() if key in keys)
                self.problems.append(
                    InvalidInput(f"{field}: applies to {owner} tasks only, not {kind}", field=field)
                )
        others = (key for key in table if key not in _ALL_TASK_KEYS)  # named above
        self.problems.extend(unknown_keys(others, ["kind", *own], prefix))
        if kind is not None:
            self.require(table, kind, prefix)
        return values

    def require(self, table: Mapping[str, Any], kind: TaskKind, prefix: str) -> None:
        key, expected, article = _REQUIRED[kind]
        if key not in table:
            field = f"{prefix}{key}"
            message = f"{field}: expected {expected}; {article} {kind} task needs it"
            self.problems.append(InvalidInput(message, field=field))

    def jobs(
        self, value: object, defaults: JobDefaults, tasks: Collection[str]
    ) -> tuple[StaticJob, ...]:
        if not isinstance(value, list):
            self.problems.append(invalid("jobs", "an array of tables ([[jobs]])", value))
            return ()
        seen: dict[str, int] = {}
        jobs = (self.job(i, raw, defaults, tasks, seen) for i, raw in enumerate(value))
        return tuple(job for job in jobs if job is not None)

    def job(
        self,
        i: int,
        raw: object,
        defaults: JobDefaults,
        tasks: Collection[str],
        seen: dict[str, int],
    ) -> StaticJob | None:
        """One [[jobs]] entry, through the same parser as the HTTP API, plus a unique name."""
        spec, problems = validate_job_input(
            _json_values(raw), defaults=defaults, style="snake", prefix=f"jobs[{i}].", tasks=tasks
        )
        self.problems.extend(problems)
        if not isinstance(raw, Mapping):
            return None
        field = f"jobs[{i}].name"
        name = raw.get("name")
        if name is None:
            self.problems.append(
                InvalidInput(
                    f"{field}: expected a unique name; every static job needs one", field=field
                )
            )
        elif isinstance(name, str) and name in seen:
            self.problems.append(
                invalid(field, f"a unique name (jobs[{seen[name]}] has it too)", name)
            )
            return None
        elif isinstance(name, str):
            seen[name] = i
        if spec is None or spec.name is None or spec.task is None:
            return None
        return StaticJob(**msgspec.structs.asdict(spec))


def _json_values(value: object) -> Any:
    """TOML dates and times as ISO strings, so a TOML job reads like its JSON twin
    (``at = 2026-12-24T09:00:00`` works as well as the quoted form)."""
    if isinstance(value, Mapping):
        return {key: _json_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_values(item) for item in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


# --- key checks --------------------------------------------------------------------------------

#: Largest ``max_response_bytes``: a webhook's reply is kept with every run in the history.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_TASK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\S+)\s*")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _at_least(minimum: int) -> Check:
    return lambda value, field: expect_int(value, field, minimum=minimum)


def _zone(value: object, field: str) -> str:
    name = expect_str(value, field)
    load_zone(name, field=field)
    return name


def _log_format(value: object, field: str) -> str:
    if value not in LOG_FORMATS:
        raise invalid(field, f"one of {', '.join(LOG_FORMATS)}", value)
    return str(value)


def _token_env(value: object, field: str) -> str | None:
    """The variable holding the API token; ``""`` means none (use the credential file only)."""
    if value == "":
        return None
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise invalid(field, "an environment variable name such as 'SCHEDULER_API_TOKEN'", value)
    return value


def _http_url(value: object, field: str) -> str:
    text = expect_str(value, field)
    try:
        parts = urlsplit(text)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a malformed port or IPv6 literal
        ok = False
    if not ok:
        raise invalid(field, "an http:// or https:// URL", value)
    return text


def _url_list(value: object, field: str) -> tuple[str, ...]:
    urls = expect_str_list(value, field)
    return tuple(_http_url(url, f"{field}[{i}]") for i, url in enumerate(urls))


def _origins(value: object, field: str) -> tuple[str, ...]:
    """``"*"`` or origins (``scheme://host[:port]``, no path): what a browser sends as Origin."""
    origins = []
    for i, given in enumerate(expect_str_list(value, field)):
        origin = given.removesuffix("/")
        if origin != "*" and urlsplit(_http_url(origin, f"{field}[{i}]")).path:
            raise invalid(f"{field}[{i}]", "'*' or an origin like 'http://host:3000'", given)
        origins.append(origin)
    return tuple(origins)


def _paths(value: object, field: str) -> tuple[str, ...]:
    paths = expect_str_list(value, field)
    for i, path in enumerate(paths):
        if not path.startswith("/"):
            raise invalid(f"{field}[{i}]", "a route path starting with '/'", path)
    return paths


def _duration_at_most(value: object, field: str, most: float) -> float:
    seconds = expect_duration(value, field)
    if seconds > most:
        raise invalid(field, f"a duration of at most {most:g} s", value)
    return seconds


def _check_server(server: ServerConfig) -> None:
    if server.max_streams >= server.max_connections:
        raise InvalidInput(
            f"server.max_streams: expected fewer than server.max_connections "
            f"({server.max_connections}), got {server.max_streams}",
            field="server.max_streams",
        )


def _method(value: object, field: str) -> str:
    method = value.upper() if isinstance(value, str) else value
    if method not in _METHODS:
        raise invalid(field, f"one of {', '.join(_METHODS)}", value)
    return str(method)


def _headers(value: object, field: str) -> dict[str, str]:
    headers = expect_str_map(value, field)
    for name, text in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise invalid(f"{field}.{name}", "a header name of letters, digits and '-'", name)
        if "\r" in text or "\n" in text:
            raise InvalidInput(
                f"{field}.{name}: expected a value on one line", field=f"{field}.{name}"
            )
    return headers


def _argv(value: object, field: str) -> tuple[str, ...]:
    """The program and its arguments, run directly: a shell string is refused on purpose."""
    return expect_str_list(value, field, non_empty=True)


def _env(value: object, field: str) -> dict[str, str]:
    env = expect_str_map(value, field)
    for name, text in env.items():
        if not name or "=" in name or "\0" in name or "\0" in text:
            raise invalid(
                f"{field}.{name}", "a variable name without '=' and values without NUL", name
            )
    return env


def _exit_codes(value: object, field: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise invalid(field, "a list of exit codes from 1 to 255", value)
    return tuple(
        expect_int(code, f"{field}[{i}]", minimum=1, maximum=255) for i, code in enumerate(value)
    )


def _callable(value: object, field: str) -> str:
    """``module:function``, imported now so a typo fails at load, not at 3 a.m."""
    spec = expect_str(value, field)
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise invalid(field, "'module:function'", value)
    try:
        resolve_callable(spec)
    except ExecutorError as exc:
        raise InvalidInput(f"{field}: {exc.message}", field=field) from None
    return spec


def _rate_limit(value: object, field: str) -> RateLimit:
    """``"10/10s"``: at most 10 starts in any 10 s (``"10/s"`` reads as per 1 s)."""
    found = _RATE.fullmatch(value) if isinstance(value, str) else None
    if found is None or int(found[1]) < 1:
        raise invalid(field, "a rate like '10/10s' (at most 10 starts in any 10 s)", value)
    per = found[2] if found[2][0].isdigit() else f"1{found[2]}"
    return RateLimit(count=int(found[1]), per=expect_duration(per, field))


_SERVER: dict[str, Check] = {
    "host": expect_str,
    "port": lambda value, field: expect_int(value, field, minimum=1, maximum=65535),
    "token_env": _token_env,
    "cors_origins": _origins,
    "cors_routes": _paths,
    "idle_timeout": lambda value, field: _duration_at_most(value, field, 3600.0),
    "header_timeout": lambda value, field: _duration_at_most(value, field, 600.0),
    "max_connections": lambda value, field: expect_int(value, field, minimum=16, maximum=65536),
    "max_streams": lambda value, field: expect_int(value, field, minimum=1, maximum=65535),
}
_SCHEDULER: dict[str, Check] = {
    "timezone": _zone,
    "scan_interval": expect_duration,
    "max_concurrency": _at_least(1),
    "retention": expect_duration_or_zero,
    "history": _at_least(1),
    "shutdown_grace": expect_duration_or_zero,
    "log_format": _log_format,
}
_RETRY: dict[str, Check] = {**RETRY_CHECKS, "timeout": expect_duration}
_PERSISTENCE: dict[str, Check] = {
    "dir": expect_str,
    "snapshot_interval": expect_duration,
    "fsync": choice(FsyncMode),
    "batch_interval": expect_duration,
    "enabled": expect_bool,
}
_ALERTS: dict[str, Check] = {
    "webhook_urls": _url_list,
    "window": expect_duration,
    "failure_rate": expect_fraction,
    "mean_run_time": expect_duration,
    "waiting_jobs": _at_least(1),
    "slot_utilisation": expect_fraction,
}
_TASK_COMMON: dict[str, Check] = {
    "timeout": expect_duration,
    "concurrency": _at_least(1),
    "rate_limit": _rate_limit,
}
_TASK_KEYS: dict[TaskKind, dict[str, Check]] = {
    TaskKind.HTTP: {
        "url": _http_url,
        "method": _method,
        "headers": _headers,
        "max_response_bytes": lambda value, field: expect_int(
            value, field, minimum=1, maximum=MAX_RESPONSE_BYTES
        ),
    },
    TaskKind.COMMAND: {
        "argv": _argv,
        "cwd": expect_str,
        "env": _env,
        "kill_grace": expect_duration_or_zero,
        "no_retry_exit_codes": _exit_codes,
    },
    TaskKind.PYTHON: {"callable": _callable},
}
_ALL_TASK_KEYS: dict[str, Check] = {k: c for keys in _TASK_KEYS.values() for k, c in keys.items()}
_REQUIRED = {
    TaskKind.HTTP: ("url", "an http:// or https:// URL", "an"),
    TaskKind.COMMAND: ("argv", "a non-empty list of strings", "a"),
    TaskKind.PYTHON: ("callable", "'module:function'", "a"),
}
