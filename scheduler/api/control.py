"""Workflow registration (one job per workflow) and whole-scheduler controls."""

from __future__ import annotations

from aiohttp import web

from scheduler.api.errors import json_response
from scheduler.api.inputs import admitting, read_fields, read_object
from scheduler.api.keys import SCHEDULER, STATE
from scheduler.api.status import status_document
from scheduler.checks import expect_choice, expect_duration_or_zero, invalid
from scheduler.errors import InvalidInput
from scheduler.ids import encode
from scheduler.model import FINISHED, JobStatus
from scheduler.views import job_json

routes = web.RouteTableDef()


@routes.put("/api/workflows/{workflowId}/schedule")
async def put_workflow_schedule(request: web.Request) -> web.Response:
    """Register on save: the body is a job's input; the workflow's job is updated in place
    (200) or created (201). ``workflowId`` comes from the path; a different one in the body
    is a 400."""
    admitting(request)
    sched = request.app[SCHEDULER]
    workflow_id = request.match_info["workflowId"]
    raw = await read_object(request)
    given = raw.get("workflowId", workflow_id)
    if given != workflow_id:
        raise invalid("workflowId", f"the workflow id of the path ({workflow_id!r})", given)
    raw = {**raw, "workflowId": workflow_id}
    spec = sched.parse_input(raw)
    job, created = await sched.service.upsert_workflow(workflow_id, spec)
    if created:
        return json_response(
            job_json(job), status=201, headers={"Location": f"/api/jobs/{encode(job.id)}"}
        )
    return json_response(job_json(job))


@routes.delete("/api/workflows/{workflowId}/schedule")
async def delete_workflow_schedule(request: web.Request) -> web.Response:
    admitting(request)
    await request.app[SCHEDULER].service.delete_workflow(request.match_info["workflowId"])
    return web.Response(status=204)


@routes.post("/api/scheduler/pause")
async def pause_scheduler(request: web.Request) -> web.Response:
    """Stop dispatching; jobs are still accepted. Answers with the status document."""
    return await _set_paused(request, paused=True)


@routes.post("/api/scheduler/resume")
async def resume_scheduler(request: web.Request) -> web.Response:
    return await _set_paused(request, paused=False)


async def _set_paused(request: web.Request, *, paused: bool) -> web.Response:
    admitting(request)
    read_fields(await read_object(request, optional=True), {})
    sched = request.app[SCHEDULER]
    await sched.service.set_paused(paused)
    return json_response(status_document(sched, request.app[STATE].phase))


@routes.post("/api/scheduler/clean")
async def clean(request: web.Request) -> web.Response:
    """Remove finished jobs now. Body (optional): ``status`` (one finished status, or a list;
    default all three) and ``olderThan`` (a duration since they finished; default 0)."""
    admitting(request)
    raw = await read_object(request, optional=True)
    fields = read_fields(raw, {"status": _statuses, "older_than": expect_duration_or_zero})
    removed = await request.app[SCHEDULER].service.clean(
        fields.get("status", FINISHED), fields.get("older_than", 0.0)
    )
    return json_response({"removed": removed})


def _statuses(value: object, field: str) -> frozenset[JobStatus]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise invalid(field, "a finished status or a non-empty list of them", value)
    out = set()
    for i, item in enumerate(values):
        where = field if not isinstance(value, list) else f"{field}[{i}]"
        status = expect_choice(JobStatus, item, where)
        if status not in FINISHED:
            raise InvalidInput(
                f"{where}: expected completed, failed or cancelled, got {status.value!r}",
                field=where,
            )
        out.add(status)
    return frozenset(out)
