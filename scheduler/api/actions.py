"""What an operator does to one job: run now, cancel, pause, resume, retry; its runs and
next run times."""

from __future__ import annotations

from aiohttp import web

from scheduler.api.errors import json_response
from scheduler.api.inputs import (
    admitting,
    check_can_wait,
    expect_instant,
    expect_name,
    expect_reason,
    query_bool,
    query_int,
    read_fields,
    read_object,
)
from scheduler.api.keys import SCHEDULER
from scheduler.checks import Check, expect_bool
from scheduler.clock import to_datetime
from scheduler.views import iso, job_json, run_json

routes = web.RouteTableDef()

MAX_NEXT = 1000


@routes.post("/api/jobs/{id}/run")
async def run_job(request: web.Request) -> web.Response:
    """Run now, outside the schedule (which is left as it was). 202 with the job once queued;
    with ``?wait=true``, 200 with the finished run."""
    admitting(request)
    service = request.app[SCHEDULER].service
    job_id = request.match_info["id"]
    read_fields(await read_object(request, optional=True), {})  # no fields (yet)
    force = query_bool(request, "force")
    wait = query_bool(request, "wait")
    if wait:
        check_can_wait(request)
    done = await service.run_now(job_id, force=force)
    if not wait:
        return json_response(job_json(await service.fetch(job_id)), status=202)
    run = await done
    job = await service.fetch(job_id)
    return json_response({**job_json(job), "run": run_json(run, job.timezone)})


@routes.post("/api/jobs/{id}/cancel")
async def cancel_job(request: web.Request) -> web.Response:
    admitting(request)
    read_fields(await read_object(request, optional=True), {})
    job = await request.app[SCHEDULER].service.cancel(request.match_info["id"])
    return json_response(job_json(job))


@routes.post("/api/jobs/{id}/pause")
async def pause_job(request: web.Request) -> web.Response:
    """Body (optional): ``until`` (ISO 8601; local in the job's zone without an offset),
    ``reason`` and ``by`` (who pauses it: the API has one token, not users, so the client names
    the person; ``scheduler jobs pause`` sends the login name). Without ``until`` the job stays
    paused until resumed."""
    admitting(request)
    service = request.app[SCHEDULER].service
    job_id = request.match_info["id"]
    job = await service.fetch(job_id)
    raw = await read_object(request, optional=True)
    fields = read_fields(
        raw,
        {
            "until": _nullable(expect_instant(job.timezone)),
            "reason": _nullable(expect_reason),
            "by": _nullable(expect_name),
        },
    )
    job = await service.pause(
        job_id, until=fields.get("until"), reason=fields.get("reason"), by=fields.get("by")
    )
    return json_response(job_json(job))


@routes.post("/api/jobs/{id}/resume")
async def resume_job(request: web.Request) -> web.Response:
    """Body (optional): ``catchUp`` (default false: occurrences missed while paused are
    skipped; true: one catch-up run, by the job's misfire policy)."""
    admitting(request)
    raw = await read_object(request, optional=True)
    fields = read_fields(raw, {"catch_up": expect_bool})
    job = await request.app[SCHEDULER].service.resume(
        request.match_info["id"], catch_up=fields.get("catch_up", False)
    )
    return json_response(job_json(job))


@routes.post("/api/jobs/{id}/retry")
async def retry_job(request: web.Request) -> web.Response:
    admitting(request)
    read_fields(await read_object(request, optional=True), {})
    job = await request.app[SCHEDULER].service.retry(request.match_info["id"])
    return json_response(job_json(job))


@routes.get("/api/jobs/{id}/runs")
async def job_runs(request: web.Request) -> web.Response:
    """The kept run history, newest first."""
    service = request.app[SCHEDULER].service
    job = await service.fetch(request.match_info["id"])
    runs = service.runs(job)
    items = [run_json(run, job.timezone) for run in reversed(runs)]
    return json_response({"items": items, "total": len(items)})


@routes.get("/api/jobs/{id}/next")
async def job_next(request: web.Request) -> web.Response:
    """The next ``n`` run times, each in UTC and in the job's zone."""
    service = request.app[SCHEDULER].service
    job = await service.fetch(request.match_info["id"])
    n = query_int(request, "n", 10, minimum=1, maximum=MAX_NEXT)
    items = [
        {
            "utc": to_datetime(t).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "local": iso(t, job.timezone),
        }
        for t in await service.next_times(job, n)
    ]
    return json_response({"timezone": job.timezone, "items": items})


def _nullable(check: Check) -> Check:
    return lambda value, field: None if value is None else check(value, field)
