"""config.toml -> a frozen, fully validated :class:`~.model.Config`: the loader.

The records are in :mod:`.model`, the check of each key in :mod:`.keys`; this module reads the
TOML, walks the sections and turns problems into lines. A ``[[jobs]]`` entry goes through the
job parser of the HTTP API, which compiles its schedule and keeps the trigger with the spec, so
every later layer receives values known to be good.

Validation policy: every section, task and job is checked key by key and ALL problems are
reported together, one line each, ``FILE: key.path: expected ..., got ...`` (a TOML syntax error:
``FILE:LINE:COL: message``), raised as one :class:`~scheduler.errors.ConfigError`. Unknown keys are
errors, because a misspelt key silently falling back to its default is the worst kind of mistake
in a file nobody reads until 3 a.m. Relative paths (``persistence.dir``, a command's ``cwd``) are
relative to the config file's directory, so the file means the same from any working directory.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection, Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import msgspec

from scheduler.checks import Check, expect_choice, expect_table, invalid, read_keys, unknown_keys
from scheduler.config import keys
from scheduler.config.model import (
    AlertsConfig,
    ClusterConfig,
    Config,
    PersistenceConfig,
    SchedulerConfig,
    ServerConfig,
    StaticJob,
)
from scheduler.errors import ConfigError, InvalidInput, SchedulerError
from scheduler.executors.tasks import RateLimit, TaskConfig, TaskKind
from scheduler.jobspec import JobDefaults, JobSpec, merge_retry, validate_job_input
from scheduler.maintenance import parse_windows
from scheduler.model import FsyncMode, RetryPolicy

__all__ = [  # the records are re-exported for the code that imports them from here
    "AlertsConfig",
    "ClusterConfig",
    "Config",
    "FsyncMode",
    "PersistenceConfig",
    "RateLimit",
    "SchedulerConfig",
    "ServerConfig",
    "StaticJob",
    "TaskConfig",
    "TaskKind",
    "load_config",
    "parse_config",
    "problem_line",
    "syntax_problem",
]

SECTIONS = (
    "server",
    "scheduler",
    "retry",
    "persistence",
    "tasks",
    "jobs",
    "alerts",
    "cluster",
    "maintenance",
)


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
        scheduler = SchedulerConfig(**self.section(data, "scheduler", keys.SCHEDULER))
        retry, timeout = self.retry(data)
        persistence = PersistenceConfig(**self.section(data, "persistence", keys.PERSISTENCE))
        if persistence.dir is not None:
            persistence = msgspec.structs.replace(persistence, dir=self.resolve(persistence.dir))
        raw_tasks = data.get("tasks", {})
        tasks = self.tasks(raw_tasks)
        # Jobs may name a task whose definition has a problem: that is reported once, there.
        names = set(raw_tasks if isinstance(raw_tasks, Mapping) else ()) | set(known_tasks)
        defaults = JobDefaults(timezone=scheduler.timezone, retry=retry)
        return Config(
            server=self.server(data),
            scheduler=scheduler,
            retry=retry,
            default_timeout=timeout,
            persistence=persistence,
            tasks=tasks,
            jobs=self.jobs(data.get("jobs", []), defaults, names),
            alerts=AlertsConfig(**self.section(data, "alerts", keys.ALERTS)),
            cluster=self.cluster(data),
            maintenance=parse_windows(
                data.get("maintenance", []),
                timezone=scheduler.timezone,
                tasks=names,
                problems=self.problems,
            ),
        )

    def cluster(self, data: Mapping[str, Any]) -> ClusterConfig | None:
        """``[cluster]``, or None without one (the single box). It needs a ``url``; a missing
        ``node_id`` is the host name, checked like a written one."""
        table = data.get("cluster")
        if table is None:
            return None
        before = len(self.problems)
        values = self.section(data, "cluster", keys.CLUSTER)
        if not isinstance(table, Mapping):
            return None  # reported by section()
        if "url" not in table:
            message = "cluster.url: expected a postgresql:// URL; [cluster] needs one"
            self.problems.append(InvalidInput(message, field="cluster.url"))
        if "node_id" not in table:
            try:
                values["node_id"] = keys.default_node_id()
            except InvalidInput as exc:
                self.problems.append(exc)
        return None if len(self.problems) > before else ClusterConfig(**values)

    def server(self, data: Mapping[str, Any]) -> ServerConfig:
        server = ServerConfig(**self.section(data, "server", keys.SERVER))
        try:
            keys.check_server(server)
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
        values = self.section(data, "retry", keys.RETRY)
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
        if not keys.TASK_NAME.fullmatch(name):
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
        own = keys.TASK_COMMON | (keys.TASK_KEYS[kind] if kind else keys.ALL_TASK_KEYS)
        values: dict[str, Any] = {}
        for key, item in table.items():
            field = f"{prefix}{key}"
            if key in own:
                try:
                    values[key] = own[key](item, field)
                except InvalidInput as exc:
                    self.problems.append(exc)
            elif key in keys.ALL_TASK_KEYS:
                owner = next(k for k, names in keys.TASK_KEYS.items() if key in names)
                self.problems.append(
                    InvalidInput(f"{field}: applies to {owner} tasks only, not {kind}", field=field)
                )
        others = (key for key in table if key not in keys.ALL_TASK_KEYS)  # named above
        self.problems.extend(unknown_keys(others, ["kind", *own], prefix))
        if kind is not None:
            self.require(table, kind, prefix)
        return values

    def require(self, table: Mapping[str, Any], kind: TaskKind, prefix: str) -> None:
        key, expected, article = keys.REQUIRED[kind]
        if key not in table:
            field = f"{prefix}{key}"
            message = f"{field}: expected {expected}; {article} {kind} task needs it"
            self.problems.append(InvalidInput(message, field=field))

    def jobs(
        self, value: object, defaults: JobDefaults, tasks: Collection[str]
    ) -> tuple[JobSpec, ...]:
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
    ) -> JobSpec | None:
        """One [[jobs]] entry, through the same parser as the HTTP API, plus a unique name and
        a task: the job the API would create from the same keys."""
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
        return spec


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
