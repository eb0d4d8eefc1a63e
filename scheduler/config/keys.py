"""The checks of config.toml, key by key: one checker per key and a table per section.

A checker takes ``(value, key path)`` and returns the converted value or raises
:class:`~scheduler.errors.InvalidInput` whose message is ``"<key path>: expected ..., got ..."``
(the generic ones are in :mod:`scheduler.checks`). The loader (:mod:`.load`) runs every key of a
section through its table and keeps every problem. Values that name something outside the file
are checked now, so that a typo fails at load rather than at 3 a.m.: a time zone must exist, a
python task's callable must import.
"""

from __future__ import annotations

import re
import socket
from urllib.parse import parse_qsl, urlsplit

from scheduler.checks import (
    Check,
    choice,
    expect_bool,
    expect_duration,
    expect_duration_or_zero,
    expect_fraction,
    expect_int,
    expect_str,
    expect_str_list,
    expect_str_map,
    invalid,
)
from scheduler.config.model import ServerConfig
from scheduler.errors import ExecutorError, InvalidInput, describe
from scheduler.executors.python import resolve_callable
from scheduler.executors.tasks import RateLimit, TaskKind
from scheduler.jobspec import RETRY_CHECKS
from scheduler.model import FsyncMode
from scheduler.schedules import load_zone

#: The values of ``[scheduler] log_format``.
LOG_FORMATS = ("text", "json")
#: Largest ``max_response_bytes``: a webhook's reply is kept with every run in the history.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: A task's name (``[tasks.NAME]``): short, and spelled the same in TOML, JSON and the log.
TASK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\S+)\s*")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: How a ``[cluster] url`` starts (libpq's URL forms).
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
#: A cluster node's id: it names the node in the database, the log and the status.
NODE_ID = re.compile(r"[A-Za-z0-9_.-]{1,63}")
#: A schema name that needs no quoting in SQL (PostgreSQL's identifiers are at most 63 bytes).
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Bounds of ``[cluster] lease``: below 2 s a busy database or a GC pause fences live nodes;
#: above 10 min a dead node's runs wait too long to move.
LEASE_MIN = 2.0
LEASE_MAX = 600.0


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


def _postgres_url(value: object, field: str) -> str:
    """A libpq URL without a password: the password comes from a credential file or a
    variable (``password_env``), never from a file that others read or a log quotes."""
    text = expect_str(value, field)
    try:
        parts = urlsplit(text)
        ok = text.startswith(POSTGRES_PREFIXES) and parts.port != 0
    except ValueError:  # a malformed port or IPv6 literal
        ok = False
    if not ok:
        raise invalid(field, "a URL like 'postgresql://scheduler@127.0.0.1:5432/scheduler'", value)
    if parts.password is not None or "password" in dict(parse_qsl(parts.query)):
        raise InvalidInput(
            f"{field}: expected a URL without a password; put the password in the systemd "
            "credential db_password or in the variable named by cluster.password_env",
            field=field,
        )
    return text


def _password_env(value: object, field: str) -> str | None:
    """The variable holding the database password; ``""`` means none (then the credential
    file, or libpq's own ways such as ``~/.pgpass``)."""
    if value == "":
        return None
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise invalid(field, "an environment variable name such as 'SCHEDULER_DB_PASSWORD'", value)
    return value


def _node_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not NODE_ID.fullmatch(value):
        raise invalid(field, "a node id of 1 to 63 letters, digits, '_', '.' and '-'", value)
    return value


def default_node_id(field: str = "cluster.node_id") -> str:
    """The host name, which names a node unless ``node_id`` is set; checked like one."""
    name = socket.gethostname()
    if not NODE_ID.fullmatch(name):
        raise InvalidInput(
            f"{field}: the host name {describe(name)} cannot name a node (1 to 63 letters, "
            "digits, '_', '.' and '-'); set cluster.node_id",
            field=field,
        )
    return name


def _lease(value: object, field: str) -> float:
    seconds = expect_duration(value, field)
    if not LEASE_MIN <= seconds <= LEASE_MAX:
        raise invalid(field, f"a duration from {LEASE_MIN:g} s to {LEASE_MAX:g} s", value)
    return seconds


def _schema(value: object, field: str) -> str:
    """A schema name that needs no quoting; ``pg_`` names belong to PostgreSQL itself."""
    if not isinstance(value, str) or not SCHEMA_NAME.fullmatch(value) or value.startswith("pg_"):
        raise invalid(
            field, "a schema name of lowercase letters, digits and '_' (not starting pg_)", value
        )
    return value


def check_server(server: ServerConfig) -> None:
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


# --- the tables: each section's keys (as written in the file) and their checkers ---------------

SERVER: dict[str, Check] = {
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
SCHEDULER: dict[str, Check] = {
    "timezone": _zone,
    "scan_interval": expect_duration,
    "max_concurrency": _at_least(1),
    "retention": expect_duration_or_zero,
    "history": _at_least(1),
    "shutdown_grace": expect_duration_or_zero,
    "log_format": _log_format,
}
RETRY: dict[str, Check] = {**RETRY_CHECKS, "timeout": expect_duration}
PERSISTENCE: dict[str, Check] = {
    "dir": expect_str,
    "snapshot_interval": expect_duration,
    "fsync": choice(FsyncMode),
    "batch_interval": expect_duration,
    "enabled": expect_bool,
}
CLUSTER: dict[str, Check] = {
    "url": _postgres_url,
    "password_env": _password_env,
    "node_id": _node_id,
    "lease": _lease,
    "schema": _schema,
}
ALERTS: dict[str, Check] = {
    "webhook_urls": _url_list,
    "window": expect_duration,
    "failure_rate": expect_fraction,
    "mean_run_time": expect_duration,
    "waiting_jobs": _at_least(1),
    "slot_utilisation": expect_fraction,
    "missed_runs": expect_bool,
}
#: The keys every task may have, whatever its kind.
TASK_COMMON: dict[str, Check] = {
    "timeout": expect_duration,
    "concurrency": _at_least(1),
    "rate_limit": _rate_limit,
}
#: The keys of one kind of task only (a command's ``url`` is named as such).
TASK_KEYS: dict[TaskKind, dict[str, Check]] = {
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
ALL_TASK_KEYS: dict[str, Check] = {k: c for keys in TASK_KEYS.values() for k, c in keys.items()}
#: The key each kind needs: (key, what it holds, the article for the kind's name).
REQUIRED = {
    TaskKind.HTTP: ("url", "an http:// or https:// URL", "an"),
    TaskKind.COMMAND: ("argv", "a non-empty list of strings", "a"),
    TaskKind.PYTHON: ("callable", "'module:function'", "a"),
}
