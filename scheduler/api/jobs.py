"""Job routes: list, create, read, modify, delete."""

from __future__ import annotations

import asyncio

from aiohttp import web

from scheduler.api.errors import json_response
from scheduler.api.inputs import (
    admitting,
    check_can_wait,
    merge_patch,
    query_bool,
    query_int,
    read_object,
)
from scheduler.api.keys import SCHEDULER
from scheduler.checks import expect_choice
from scheduler.ids import encode
from scheduler.jobspec import JobSpec
from scheduler.model import Job, JobStatus, JobType, Run, Source
from scheduler.views import job_json, run_json

routes = web.RouteTableDef()

MAX_PAGE_SIZE = 500


@routes.get("/api/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    """A page of jobs in creation order (oldest first), with the number that match in all.
    Filters (any combination): ``status``, ``type``, ``workflowId``, ``task``; a query
    parameter the route does not take is a 400 naming it (see :mod:`.queries`)."""
    query = request.query
    status = query.get("status")
    kind = query.get("type")
    page = query_int(request, "page", 1, minimum=1, maximum=1_000_000)
    limit = query_int(request, "limit", 20, minimum=1, maximum=MAX_PAGE_SIZE)
    items, total = request.app[SCHEDULER].service.list(
        status=None if status is None else expect_choice(JobStatus, status, "status"),
        type_=None if kind is None else expect_choice(JobType, kind, "type"),
        workflow_id=query.get("workflowId"),
        task=query.get("task"),
        page=page,
        limit=limit,
    )
    return json_response(
        {"items": [job_json(job) for job in items], "total": total, "page": page, "limit": limit}
    )


@routes.post("/api/jobs")
async def create_job(request: web.Request) -> web.Response:
    admitting(request)
    sched = request.app[SCHEDULER]
    raw = await read_object(request)
    spec = sched.parse_input(raw)
    # Most creates carry no query: do not build one to find ?wait absent (~2 us).
    wait = bool(request.query_string) and query_bool(request, "wait")
    if wait:
        check_can_wait(request)
    done: asyncio.Future[Run] | None
    if wait and spec.schedule.type is JobType.IMMEDIATE:
        # Test mode: watch the job's own first run (it is due now) instead of adding a second.
        job = sched.service.build(spec, source=Source.API)
        done = sched.service.next_record(job.id)
        try:
            job = await sched.service.add(job)
        except BaseException:
            done.cancel()  # its listener goes with it: a refused create leaves nothing behind
            raise
    else:
        job = await sched.service.create(spec)
        done = await sched.service.run_now(encode(job.id)) if wait else None
    location = {"Location": f"/api/jobs/{encode(job.id)}"}
    if done is None:
        return json_response(job_json(job), status=201, headers=location)
    run = await done
    job = await sched.service.fetch(encode(job.id))
    return json_response(
        {**job_json(job), "run": run_json(run, job.timezone)}, status=201, headers=location
    )


@routes.get("/api/jobs/{id}")
async def get_job(request: web.Request) -> web.Response:
    sched = request.app[SCHEDULER]
    return json_response(job_json(await sched.service.fetch(request.match_info["id"])))


@routes.patch("/api/jobs/{id}")
async def patch_job(request: web.Request) -> web.Response:
    """Change a job's definition; the merged input is validated whole before anything changes."""
    admitting(request)
    sched = request.app[SCHEDULER]
    job_id = request.match_info["id"]
    await sched.service.fetch(job_id)  # 404 before the body is read
    patch = await read_object(request)

    def merged(job: Job) -> JobSpec:  # applied to the job as it is when the change is made
        return sched.parse_input(merge_patch(job, patch))

    return json_response(job_json(await sched.service.modify(job_id, merged)))


@routes.delete("/api/jobs/{id}")
async def delete_job(request: web.Request) -> web.Response:
    admitting(request)
    await request.app[SCHEDULER].service.delete(request.match_info["id"])
    return web.Response(status=204)
