"""What defines a task: its kind and the settings of that kind (config's ``[tasks.NAME]``).

The definitions live with the executors that read them, so that nothing imports upward: config
checks a file's tables into these records, and the executors take them as they are. This module
imports no executor, so loading the config never loads aiohttp.
"""

from __future__ import annotations

import enum

import msgspec


class TaskKind(enum.StrEnum):
    HTTP = "http"
    COMMAND = "command"
    PYTHON = "python"


class RateLimit(msgspec.Struct, frozen=True):
    """At most ``count`` starts in any ``per`` seconds (written ``"10/10s"``)."""

    count: int
    per: float


class TaskConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One task; the keys of the other kinds keep their defaults (config refuses them)."""

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
