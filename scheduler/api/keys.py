"""Typed keys for what the app shares with its handlers."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from aiohttp import web

from scheduler.runtime.library import Scheduler


class Phase(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


class DaemonState:
    """What the daemon tells the API about its life cycle."""

    def __init__(self) -> None:
        self.phase = Phase.STARTING
        self.loaded = False


@dataclass(slots=True)
class ApiSettings:
    """How the API guards itself (see :mod:`scheduler.api.security`). Mutable: a reload
    updates the token in place, and handlers read it on every request.

    ``token`` None turns authentication off (only allowed on a loopback bind). ``loopback``
    turns on the Host check against DNS rebinding. ``cors_origins`` may read the routes listed
    in ``cors_routes`` (the status card by default) from another site. ``heartbeat`` is the
    seconds between SSE comment lines (tests shorten it); ``max_streams`` caps the event
    streams open at once (past it, 503 with ``Retry-After``).
    """

    token: str | None = None
    loopback: bool = True
    cors_origins: tuple[str, ...] = ()
    cors_routes: tuple[str, ...] = ("/api/scheduler",)
    heartbeat: float = 15.0
    max_streams: int = 100


SCHEDULER = web.AppKey("scheduler", Scheduler)
STATE = web.AppKey("state", DaemonState)
SETTINGS = web.AppKey("settings", ApiSettings)
