"""``[server]`` limits of the HTTP edge: read, checked, and which need a restart."""

from __future__ import annotations

from pathlib import Path

from scheduler.config import Config, ServerConfig, load_config
from scheduler.config.reload import server_notes
from scheduler.daemon.process import server_limits
from tests.config.files import problems_of, write


def test_the_edge_limits_are_read_from_server(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
[server]
idle_timeout = "30s"
header_timeout = "5s"
max_connections = 2048
max_streams = 10
cors_routes = ["/api/scheduler", "/api/jobs"]
""",
        )
    )
    limits = server_limits(config)
    assert (limits.idle_timeout, limits.header_timeout) == (30.0, 5.0)
    assert (limits.max_connections, limits.max_streams) == (2048, 10)
    assert limits.cors_routes == ("/api/scheduler", "/api/jobs")


def test_bad_edge_limits_name_the_key(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
[server]
idle_timeout = "2h"
header_timeout = 0
max_connections = 8
cors_routes = ["api/jobs"]
""",
    )
    text = "\n".join(problems)
    for key in ("server.idle_timeout", "server.header_timeout", "server.max_connections"):
        assert key in text
    assert "server.cors_routes[0]" in text


def test_more_streams_than_connections_is_refused(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "[server]\nmax_connections = 64\nmax_streams = 64\n")
    assert any("server.max_streams" in p and "fewer than" in p for p in problems)


def test_connection_limits_need_a_restart_but_streams_and_cors_routes_do_not() -> None:
    old = Config(server=ServerConfig())
    new = Config(
        server=ServerConfig(
            idle_timeout=1.0,
            header_timeout=2.0,
            max_connections=99,
            max_streams=7,
            cors_routes=("/x",),
        )
    )
    notes = " ".join(server_notes(old, new))
    for key in ("idle_timeout", "header_timeout", "max_connections"):
        assert key in notes
    assert "max_streams" not in notes
    assert "cors_routes" not in notes
