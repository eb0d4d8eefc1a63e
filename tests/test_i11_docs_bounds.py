"""Issue 11, "the README's security section says what is bounded and where the limits are set":
the table of docs/operations.md#security-bounds (which the README's Security section points to)
names, for each bound, the ``[server]`` key or the constant that sets it. Each one named must
exist, and the figures the table gives must be the code's, so that the table cannot drift."""

from __future__ import annotations

import importlib
import re

import pytest

from scheduler.config.model import ServerConfig
from tests import ROOT

OPERATIONS = ROOT / "docs" / "operations.md"
README = ROOT / "README.md"
_NAMED = re.compile(r"`([A-Z][A-Z0-9_]+|[A-Za-z_]+)` in `(scheduler/[a-z_/]+\.py)`")
_SERVER_KEY = re.compile(r"`\[server\] ([a-z_]+)`")


def table() -> str:
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text.split("## Security bounds", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert len(rows) > 20, "the bounds table is missing"
    return "\n".join(rows)


def module_of(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def test_every_constant_the_table_names_exists_where_it_says() -> None:
    named = _NAMED.findall(table())
    assert len(named) >= 25, named
    missing = [
        f"{name} in {path}"
        for name, path in named
        if not hasattr(importlib.import_module(module_of(path)), name)
    ]
    assert not missing, missing


def test_every_server_key_the_table_names_is_a_key_with_that_default() -> None:
    keys = set(_SERVER_KEY.findall(table()))
    assert keys >= {"idle_timeout", "header_timeout", "max_connections", "max_streams"}, keys
    defaults = ServerConfig()
    assert all(hasattr(defaults, key) for key in keys), keys - set(dir(defaults))


@pytest.mark.parametrize(
    ("module", "name", "value", "shown"),
    [
        ("scheduler.api.app", "MAX_FIELD_SIZE", 32 * 1024, "32 KiB"),
        ("scheduler.api.app", "MAX_BODY", 1024 * 1024, "1 MiB"),
        ("scheduler.api.inputs", "LARGE_BODY", 64 * 1024, "64 KiB or more"),
        ("scheduler.api.server", "BACKLOG", 128, "| 128 |"),
        ("scheduler.api.server", "FD_RESERVE", 256, "kept 256 under"),
        ("scheduler.api.sse", "SEND_TIMEOUT", 10.0, "cut off after | 10 s"),
        ("scheduler.api.sse", "RETRY_AFTER", 5, "`Retry-After: 5`"),
        ("scheduler.api.errors", "MAX_MESSAGE_CHARS", 500, "| 500 characters |"),
        ("scheduler.api.jobs", "MAX_PAGE_SIZE", 500, "`limit` 1 .. 500"),
        ("scheduler.api.actions", "MAX_NEXT", 1000, "`n` 1 .. 1,000"),
        ("scheduler.checks", "MAX_JSON_DEPTH", 64, "64 levels"),
        ("scheduler.checks", "MIN_INT", -(2**63), "-2^63"),
        ("scheduler.checks", "MAX_INT", 2**64 - 1, "2^64-1"),
        ("scheduler.checks", "MAX_UNKNOWN_REPORTED", 5, "the first 5"),
        ("scheduler.checks", "MAX_KEY_CHARS", 64, "key 64 characters"),
        ("scheduler.durations", "MAX_DURATION", 36500 * 86400.0, "36,500 days"),
        ("scheduler.durations", "MAX_DURATION_CHARS", 64, "at most 64 characters"),
        ("scheduler.schedules", "MAX_CRON_CHARS", 1000, "cron 1,000"),
        ("scheduler.schedules", "MAX_RRULE_CHARS", 2000, "RRULE 2,000"),
        ("scheduler.schedules", "MAX_DATETIME_CHARS", 64, "date-time 64"),
        ("scheduler.schedules", "MAX_LIST_ITEMS", 100, "lists 100 items"),
        ("scheduler.triggers.zones", "MAX_ZONE_CHARS", 64, "zone name 64"),
        ("scheduler.triggers.recur", "QUERY_STEPS", 20_000, "20,000 steps"),
        ("scheduler.engine.misfire", "ALL_LIMIT", 1000, "| 1,000 (more:"),
        ("scheduler.executors.base", "MAX_RETRY_AFTER", 86400.0, "clamped to 1 day"),
        ("scheduler.executors.base", "MAX_RESULT_BYTES", 64 * 1024, "| 64 KiB"),
        ("scheduler.executors.base", "MAX_ERROR_CHARS", 2000, "/ 2,000 /"),
        ("scheduler.executors.python", "MAX_PROGRESS_CHARS", 500, "/ 500 characters"),
        ("scheduler.config.keys", "MAX_RESPONSE_BYTES", 16 * 1024 * 1024, "at most 16 MiB"),
    ],
)
def test_each_figure_in_the_table_is_the_codes(
    module: str, name: str, value: object, shown: str
) -> None:
    assert getattr(importlib.import_module(module), name) == value
    assert shown in table(), f"{name} = {value}: the table should say {shown!r}"


def test_the_server_defaults_in_the_table_are_the_configs() -> None:
    defaults = ServerConfig()
    rows = table()
    assert f"| {defaults.idle_timeout:g} s (at most 1 h) | `[server] idle_timeout`" in rows
    assert f"| {defaults.header_timeout:g} s (at most 10 min) | `[server] header_timeout`" in rows
    assert f"| {defaults.max_connections:,}, kept" in rows
    assert f"| {defaults.max_streams} | `[server] max_streams`" in rows
    assert defaults.cors_routes == ("/api/scheduler",)


def test_the_readme_security_section_points_at_the_table() -> None:
    readme = README.read_text(encoding="utf-8")
    section = readme.split("## Security\n", 1)[1].split("\n## ", 1)[0]
    assert "(docs/operations.md#security-bounds)" in section
    assert "/healthz" in section  # says how the loop-stall bound is checked
