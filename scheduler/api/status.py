"""``GET /api/scheduler`` (the homepage card contract) and ``GET /healthz``.

The card's document never loses or renames a key and never has a top-level ``error``. Counts
come from the store's incremental counters and ``nextJob`` from the top of the due heap, so the
answer is O(1) however many jobs are stored.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from aiohttp import web

from scheduler.api.keys import SCHEDULER, STATE, Phase
from scheduler.ids import encode
from scheduler.library import Scheduler
from scheduler.model import JobStatus
from scheduler.views import iso

routes = web.RouteTableDef()


def status_document(sched: Scheduler, phase: Phase) -> dict[str, Any]:
    store = sched.store
    counts = store.counts
    running = phase is Phase.RUNNING and sched.running and not store.paused
    nxt = store.next_job()
    return {
        "isRunning": running,
        "totalJobs": len(store),
        "pendingJobs": counts[JobStatus.PENDING],
        "runningJobs": counts[JobStatus.RUNNING],
        "completedJobs": counts[JobStatus.COMPLETED],
        "failedJobs": counts[JobStatus.FAILED],
        "cancelledJobs": counts[JobStatus.CANCELLED],
        "pausedJobs": counts[JobStatus.PAUSED],
        "state": "paused" if phase is Phase.RUNNING and store.paused else phase.value,
        "nextJob": None
        if nxt is None
        else {
            "id": encode(nxt.id),
            "workflowName": nxt.display_name,
            "scheduledTime": iso(nxt.scheduled, nxt.timezone),
            "type": nxt.type.value,
        },
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
