"""The application factory.

Middlewares, outermost first: the error middleware (every error becomes the one JSON document),
then security (Host check, CORS preflight, cross-site refusal, bearer token, JSON media type),
then the query check (a route that takes a query takes only its documented parameters), then
the state check (until the state is loaded, job reads answer 503, not an empty store). CORS
headers are added in ``on_response_prepare`` so that streams get them too.

The four run as one aiohttp middleware, :func:`edge_middleware`, which also gives the status
card (GET/HEAD ``/api/scheduler``, polled by widgets far more than anything else) a fast path:
of the four, only the error document and the Host check apply to it (it is open without a
token, safe, takes no query and answers before the state is loaded), so it runs those two
and skips the rest (issue 14: the four layers cost ~6 % of the card's rate). CORS headers and
the access log do not depend on middlewares, so the card keeps them.

What the transport itself bounds (connections, idle and header timeouts, oversized headers) is
set where the server is run: :mod:`scheduler.api.server`.
"""

from __future__ import annotations

import functools

from aiohttp import web
from aiohttp.typedefs import Handler

from scheduler.api import actions, control, dashboard, jobs, metrics, openapi, sse, status
from scheduler.api import explain as explain_routes
from scheduler.api import maintenance as maintenance_routes
from scheduler.api import stats as stats_routes
from scheduler.api.errors import error_middleware
from scheduler.api.keys import SCHEDULER, SETTINGS, STATE, ApiSettings, DaemonState
from scheduler.api.queries import query_middleware
from scheduler.api.security import (
    add_cors_headers,
    check_host,
    is_loopback_bind,
    security_middleware,
)
from scheduler.errors import NotReady
from scheduler.runtime.library import Scheduler

MAX_BODY = 1024 * 1024
#: Header lines up to 32 KiB reach the middleware, so an oversized token is a 401 like any
#: other bad token; past that the HTTP parser refuses the request (see ``api.server``).
MAX_FIELD_SIZE = 32 * 1024
#: Event streams open at once; past it ``GET /api/events`` answers 503 with ``Retry-After``.
MAX_STREAMS = 100
#: The routes another site may read when ``cors_origins`` lists it: the status card only.
CORS_ROUTES: tuple[str, ...] = ("/api/scheduler",)


#: Routes that read jobs: until recovery has loaded the state they would answer from an empty
#: store (a 404 for a job that exists, an empty list), so they answer 503 instead.
_STATE_ROUTES = ("/api/jobs", "/api/workflows/", "/api/stats")


@web.middleware
async def loaded_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.app[STATE].loaded and request.path.startswith(_STATE_ROUTES):
        raise NotReady("the scheduler is starting: its state is not loaded yet; try again shortly")
    return await handler(request)


#: The middlewares, outermost first (see the module's docstring).
MIDDLEWARES = (error_middleware, security_middleware, query_middleware, loaded_middleware)


def _chain(handler: Handler) -> Handler:
    """``handler`` inside :data:`MIDDLEWARES`."""
    for middleware in reversed(MIDDLEWARES):
        handler = functools.partial(middleware, handler=handler)
    return handler


#: :func:`_chain` built once per route handler, as aiohttp does for its own middleware list.
_chained = functools.lru_cache(maxsize=256)(_chain)


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """:data:`MIDDLEWARES` in one layer, with the status card's fast path.

    ``handler`` is the card's only when the route matched GET or HEAD ``/api/scheduler`` (any
    other method gets aiohttp's 405 handler). The card is open without a token and is a
    safe method (security checks nothing else), takes no query (:mod:`.queries`) and is not
    a state route (:func:`loaded_middleware`): that is pinned by tests/api/test_h14_card.py,
    which sends every kind of request both ways and compares the answers.

    The card's errors (a Host refused, a bug) go through the error middleware itself, by
    raising the same exception again inside it, so their documents and logs are the ones
    the chain gives; a card answered without error pays for no extra layer."""
    if handler is not status.scheduler_status:
        if request.match_info.http_exception is not None:  # aiohttp made this 404/405 handler
            return await _chain(handler)(request)  # for this request: not worth caching
        return await _chained(handler)(request)
    try:
        check_host(request, request.app[SETTINGS])
        return await handler(request)
    except Exception as exc:  # noqa: BLE001 - the error middleware maps, logs or re-raises it
        return await error_middleware(request, functools.partial(_raise, exc))


async def _raise(exc: Exception, _request: web.Request) -> web.StreamResponse:
    raise exc


def create_app(
    sched: Scheduler,
    state: DaemonState | None = None,
    *,
    token: str | None = None,
    heartbeat: float = 15.0,
    max_streams: int = MAX_STREAMS,
    cors_routes: tuple[str, ...] = CORS_ROUTES,
) -> web.Application:
    """The API around ``sched``. ``token`` None turns authentication off; CORS origins and the
    loopback Host check follow ``sched.config.server``."""
    server = sched.config.server
    settings = ApiSettings(
        token=token or None,
        loopback=is_loopback_bind(server.host),
        cors_origins=tuple(server.cors_origins),
        cors_routes=tuple(cors_routes),
        heartbeat=heartbeat,
        max_streams=max_streams,
    )
    app = web.Application(
        middlewares=[edge_middleware],
        client_max_size=MAX_BODY,
        handler_args={"max_field_size": MAX_FIELD_SIZE},
    )
    app[SCHEDULER] = sched
    app[STATE] = state or DaemonState()
    app[SETTINGS] = settings
    if settings.cors_origins:
        app.on_response_prepare.append(add_cors_headers)
    for module in (status, jobs, actions, control, sse, openapi, dashboard, maintenance_routes):
        app.add_routes(module.routes)
    app.add_routes(explain_routes.routes)
    metrics.setup(app)
    stats_routes.setup(app)
    return app
