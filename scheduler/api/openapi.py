"""``GET /api/openapi.json``: the OpenAPI 3.1 description of the whole HTTP API.

Operations are written in :mod:`.paths` and their schemas in :mod:`.schemas`; this module
names them, links them and serves the whole. Tests check that the document validates, that
every served route is in it, and that real responses (including a schemathesis run and a
stateful fuzz against a live daemon) conform to it. :mod:`.queries` reads the query parameters
each operation takes from it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aiohttp import web

from scheduler.api.errors import json_response
from scheduler.api.keys import SCHEDULER
from scheduler.api.paths import job_paths, other_paths
from scheduler.api.schemas import Schema, components, nullable

routes = web.RouteTableDef()

#: operationId of each operation (also the target names of response links).
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("/api/jobs", "get"): "listJobs",
    ("/api/jobs", "post"): "createJob",
    ("/api/jobs/{id}", "get"): "getJob",
    ("/api/jobs/{id}", "patch"): "updateJob",
    ("/api/jobs/{id}", "delete"): "deleteJob",
    ("/api/jobs/{id}/run", "post"): "runJob",
    ("/api/jobs/{id}/cancel", "post"): "cancelJob",
    ("/api/jobs/{id}/pause", "post"): "pauseJob",
    ("/api/jobs/{id}/resume", "post"): "resumeJob",
    ("/api/jobs/{id}/retry", "post"): "retryJob",
    ("/api/jobs/{id}/runs", "get"): "listJobRuns",
    ("/api/jobs/{id}/next", "get"): "listNextRunTimes",
    ("/api/jobs/{id}/explain", "get"): "explainJob",
    ("/api/workflows/{workflowId}/schedule", "put"): "putWorkflowSchedule",
    ("/api/workflows/{workflowId}/schedule", "delete"): "deleteWorkflowSchedule",
    ("/api/scheduler", "get"): "getStatus",
    ("/api/scheduler", "head"): "headStatus",
    ("/api/scheduler/pause", "post"): "pauseScheduler",
    ("/api/scheduler/resume", "post"): "resumeScheduler",
    ("/api/scheduler/clean", "post"): "cleanJobs",
    ("/api/stats", "get"): "getStats",
    ("/api/events", "get"): "streamEvents",
    ("/api/maintenance", "get"): "getMaintenance",
    ("/healthz", "get"): "health",
    ("/metrics", "get"): "metrics",
    ("/api/openapi.json", "get"): "openapi",
    ("/", "get"): "dashboard",
    ("/static/{path}", "get"): "dashboardFile",
}

_JOB_LINK_TARGETS = (
    "getJob",
    "updateJob",
    "runJob",
    "cancelJob",
    "pauseJob",
    "resumeJob",
    "retryJob",
    "listJobRuns",
    "listNextRunTimes",
    "explainJob",
    "deleteJob",
)


def _job_links() -> dict[str, Any]:
    """Where a new job's id can be used next (clients and stateful testers follow these)."""
    return {
        target[0].upper() + target[1:]: {
            "operationId": target,
            "parameters": {"id": "$response.body#/id"},
        }
        for target in _JOB_LINK_TARGETS
    }


def _finish(paths: dict[str, Any]) -> dict[str, Any]:
    for path, item in paths.items():
        for method, op in item.items():
            if method == "parameters":
                continue
            op["operationId"] = OPERATION_IDS[(path, method)]
            for status in ("200", "201"):
                response = op["responses"].get(status)
                if (
                    response
                    and path in ("/api/jobs", "/api/workflows/{workflowId}/schedule")
                    and (method in ("post", "put"))
                ):
                    response["links"] = _job_links()
    return paths


@lru_cache(maxsize=8)
def document(tasks: tuple[str, ...] = ()) -> dict[str, Any]:
    """The document; with ``tasks`` (the known task names) ``task`` lists them."""
    schemas = components()
    if tasks:
        task: Schema = {"type": "string", "enum": list(tasks)}
        schemas["JobInput"]["properties"]["task"] = task
        schemas["JobPatch"]["properties"]["task"] = nullable(task)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "scheduler",
            "version": "1",
            "description": (
                'Job scheduler API. Errors are {"error": {"code", "message", "field"}}. '
                "Times are ISO 8601 with the offset of the job's time zone. A route that "
                "takes query parameters answers 400 naming any other one. Before any route: "
                "a request whose headers are too large is answered 431 (401 when it is the "
                "Authorization header), a malformed one 400, and a connection past "
                "server.max_connections 503."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": _finish({**job_paths(), **other_paths()}),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


@routes.get("/api/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return json_response(document(tuple(sorted(request.app[SCHEDULER].runtimes))))
