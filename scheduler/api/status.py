"""``GET /api/scheduler`` (the homepage card contract) and ``GET /healthz``.

The card's document never loses or renames a key and never has a top-level ``error``. Counts
come from the store's incremental counters and ``nextJob`` from the top of the due heap, so the
answer is O(1) however many jobs are stored.

Keys added to the first contract (never renamed or removed either): ``cancelledJobs``,
``pausedJobs``, ``state``, ``delayedJobs`` (pending one-off jobs with a delay or a date whose
time has not come, see :meth:`Store.delayed`) and ``jobsByType`` (stored jobs by type, any
status; the four values sum to ``totalJobs``).

The card must not fail because of one job: rendering clamps what it cannot show (see
:mod:`scheduler.views`), and should anything else go wrong the card still answers 200 with its
counts and ``nextJob: null`` (the failure is logged), never a 500 with an ``error`` key that
widgets would read as "down".
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import msgspec
from aiohttp import web

from scheduler.api.keys import SCHEDULER, STATE, Phase
from scheduler.ids import encode
from scheduler.model import Job, JobStatus, JobType
from scheduler.runtime.library import Scheduler
from scheduler.views import iso

log = logging.getLogger("scheduler.api")

routes = web.RouteTableDef()


def status_document(sched: Scheduler, phase: Phase) -> dict[str, Any]:
    store = sched.store
    counts = store.counts
    running = phase is Phase.RUNNING and sched.running and not store.paused
    doc: dict[str, Any] = {
        "isRunning": running,
        "totalJobs": len(store),
        "pendingJobs": counts[JobStatus.PENDING],
        "runningJobs": counts[JobStatus.RUNNING],
        "completedJobs": counts[JobStatus.COMPLETED],
        "failedJobs": counts[JobStatus.FAILED],
        "cancelledJobs": counts[JobStatus.CANCELLED],
        "pausedJobs": counts[JobStatus.PAUSED],
        "delayedJobs": store.delayed(),
        "jobsByType": {kind.value: store.type_counts[kind] for kind in JobType},
        "state": "paused" if phase is Phase.RUNNING and store.paused else phase.value,
        "nextJob": None,
    }
    try:
        doc["nextJob"] = _next_job(store.next_job())
    except Exception:  # one job must not take the card down: show the counts without it
        log.exception("status card: cannot show the next job")
    if sched.cluster is not None:  # this node, the live nodes, how far its replica lags
        doc["cluster"] = sched.cluster.status()
    return doc


def _next_job(job: Job | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {
        "id": encode(job.id),
        "workflowName": job.display_name,
        "scheduledTime": iso(job.scheduled, job.timezone),
        "type": job.type.value,
    }


@routes.route("GET", "/api/scheduler", allow_head=True)
async def scheduler_status(request: web.Request) -> web.StreamResponse:
    app = request.app
    body = msgspec.json.encode(status_document(app[SCHEDULER], app[STATE].phase))
    etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ok = state.loaded and state.phase is Phase.RUNNING
    return web.json_response({"ok": ok, "state": state.phase.value}, status=200 if ok else 503)
