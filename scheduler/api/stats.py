"""``GET /api/stats``: what the dashboard's charts draw.

Runs per hour by outcome and lateness p50/p99 for the last ``hours`` hours (from
:class:`~scheduler.observability.stats.RunStats`, fixed memory), and the runs due in the next
``hours`` hours, one lane per job (at most 50 lanes of 200 runs, soonest first). Hour starts
are in the scheduler's zone (``[scheduler] timezone``, also in the answer), each lane's runs
in its job's zone, all with their offsets.

:func:`setup` builds one :class:`RunStats` per application. The history the store holds must
be counted once the state is loaded: if the scheduler is running already (an app built
around a started scheduler) that happens at once; otherwise a service of the scheduler does
it when the scheduler starts, after recovery (the daemon builds its app before that).
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from scheduler.api.errors import json_response
from scheduler.api.inputs import query_int
from scheduler.api.keys import SCHEDULER
from scheduler.ids import encode
from scheduler.observability.stats import (
    BUCKET_SECONDS,
    RING,
    Bucket,
    Lane,
    RunStats,
    StatsService,
    upcoming,
)
from scheduler.views import iso

STATS = web.AppKey("stats", RunStats)
#: Hours a request may ask for: the ring's length (a week).
MAX_HOURS: Final = RING

routes = web.RouteTableDef()


@routes.get("/api/stats")
async def stats(request: web.Request) -> web.Response:
    hours = query_int(request, "hours", 24, minimum=1, maximum=MAX_HOURS)
    sched = request.app[SCHEDULER]
    now = sched.clock.time()
    zone = sched.config.scheduler.timezone
    buckets = request.app[STATS].window(now, hours)
    lanes, cut = await upcoming(
        sched.store, sched.service.engine.triggers, now, now + hours * BUCKET_SECONDS
    )
    return json_response(
        {
            "bucketSeconds": BUCKET_SECONDS,
            "timezone": zone,
            "buckets": [_bucket_json(bucket, zone) for bucket in buckets],
            "upcoming": [_lane_json(lane) for lane in lanes],
            "upcomingTruncated": cut,
        },
        headers={"Cache-Control": "no-store"},
    )


def _bucket_json(bucket: Bucket, zone: str) -> dict[str, Any]:
    return {
        "start": iso(bucket.start, zone),
        "outcomes": {outcome.value: n for outcome, n in bucket.outcomes.items()},
        "latenessP50": bucket.p50,
        "latenessP99": bucket.p99,
    }


def _lane_json(lane: Lane) -> dict[str, Any]:
    job = lane.job
    return {
        "jobId": encode(job.id),
        "name": job.display_name,
        "task": job.task,
        "timezone": job.timezone,
        "runs": [iso(t, job.timezone) for t in lane.runs],
        "truncated": lane.truncated,
    }


def setup(app: web.Application) -> RunStats:
    """Register ``/api/stats`` on ``app`` (which must already hold the scheduler)."""
    sched = app[SCHEDULER]
    collected = RunStats()
    app[STATS] = collected
    if sched.running:
        collected.count_history(collected.attach(sched.hub, sched.store.all_runs()))
    else:
        sched.add_service(StatsService(collected, sched.store, sched.hub), name="run stats")

    async def detach(_app: web.Application) -> None:
        collected.detach()

    app.on_cleanup.append(detach)
    app.add_routes(routes)
    return collected
