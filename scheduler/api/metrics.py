"""``GET /metrics``: the Prometheus exposition of the app's scheduler.

:func:`setup` builds one :class:`SchedulerMetrics` per application, attached to the engine's
run listeners, and detaches it when the application is cleaned up (so building several apps
around one scheduler, as tests do, never double-counts). Like every route but the status card,
``/metrics`` needs the bearer token when one is configured; Prometheus sends it with
``authorization: {credentials_file: ...}`` in the scrape config.
"""

from __future__ import annotations

from aiohttp import web

from scheduler.api.keys import SCHEDULER
from scheduler.observability.metrics import SchedulerMetrics

METRICS = web.AppKey("metrics", SchedulerMetrics)

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS].render(request.headers.get("Accept"))
    response = web.Response(body=body, headers={"Cache-Control": "no-store"})
    # Set whole: the type carries a version parameter that aiohttp's content_type= rejects.
    response.headers["Content-Type"] = content_type
    return response


def setup(app: web.Application) -> SchedulerMetrics:
    """Register ``/metrics`` on ``app`` (which must already hold the scheduler)."""
    sched = app[SCHEDULER]
    collected = SchedulerMetrics(sched.store, sched.engine, cluster=sched.cluster)
    app[METRICS] = collected

    async def detach(_app: web.Application) -> None:
        collected.detach()

    app.on_cleanup.append(detach)
    app.add_routes(routes)
    return collected
