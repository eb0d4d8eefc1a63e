"""``GET /api/jobs/{id}/explain``: why a job has not run, or will run late (issue 15).

The reasons come from :mod:`scheduler.engine.explain`; this route hands the service the
maintenance windows in force and renders the answer."""

from __future__ import annotations

from aiohttp import web

from scheduler.api.errors import json_response
from scheduler.api.keys import SCHEDULER

routes = web.RouteTableDef()


@routes.get("/api/jobs/{id}/explain")
async def explain_job(request: web.Request) -> web.Response:
    """A one-sentence summary, the last expected and the next run, and the reasons, each with
    a stable code, a message and its details (see docs/api.md)."""
    sched = request.app[SCHEDULER]
    explanation = await sched.service.explain(request.match_info["id"], windows=sched.maintenance)
    return json_response(explanation.document())
