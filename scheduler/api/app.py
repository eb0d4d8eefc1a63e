"""The application factory.

Middlewares, outermost first: the error middleware (every error becomes the one JSON document),
then security (Host check, CORS preflight, bearer token). CORS headers are added in
``on_response_prepare`` so that streams get them too.
"""

from __future__ import annotations

from aiohttp import web

from scheduler.api import actions, control, dashboard, jobs, metrics, openapi, sse, status
from scheduler.api.errors import error_middleware
from scheduler.api.keys import SCHEDULER, SETTINGS, STATE, ApiSettings, DaemonState
from scheduler.api.security import add_cors_headers, is_loopback_bind, security_middleware
from scheduler.library import Scheduler

MAX_BODY = 1024 * 1024
#: Header lines up to 32 KiB reach the middleware, so an oversized token is a 401 like any
#: other bad token, not the HTTP parser's 400 (which would echo the header back).
MAX_FIELD_SIZE = 32 * 1024


def create_app(
    sched: Scheduler,
    state: DaemonState | None = None,
    *,
    token: str | None = None,
    heartbeat: float = 15.0,
) -> web.Application:
    """The API around ``sched``. ``token`` None turns authentication off; CORS origins and the
    loopback Host check follow ``sched.config.server``."""
    server = sched.config.server
    settings = ApiSettings(
        token=token or None,
        loopback=is_loopback_bind(server.host),
        cors_origins=tuple(server.cors_origins),
        heartbeat=heartbeat,
    )
    app = web.Application(
        middlewares=[error_middleware, security_middleware],
        client_max_size=MAX_BODY,
        handler_args={"max_field_size": MAX_FIELD_SIZE},
    )
    app[SCHEDULER] = sched
    app[STATE] = state or DaemonState()
    app[SETTINGS] = settings
    if settings.cors_origins:
        app.on_response_prepare.append(add_cors_headers)
    for module in (status, jobs, actions, control, sse, openapi, dashboard):
        app.add_routes(module.routes)
    metrics.setup(app)
    return app
