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
import weakref
from typing import Any, NamedTuple

import msgspec
from aiohttp import web
from multidict import CIMultiDict

from scheduler.api.keys import SCHEDULER, STATE, Phase
from scheduler.ids import encode
from scheduler.model import Job, JobStatus, JobType
from scheduler.runtime.library import Scheduler
from scheduler.store import Store
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


class _Card(NamedTuple):
    """The card as sent, and what it was rendered from: valid while ``key`` is unchanged.
    ``headers`` are the 200 answer's, built once with the card (each answer copies them)."""

    key: tuple[int, Phase, bool, bool]
    body: bytes
    etag: str
    headers: CIMultiDict[str]


#: The last card rendered for each store. Widgets poll the card far more often than the store
#: changes, and rendering it (counts, the next job's time in its zone, encoding, hashing) costs
#: more than the rest of the request, so it is rendered once per change of what it shows.
_cards: weakref.WeakKeyDictionary[Store, _Card] = weakref.WeakKeyDictionary()


def _card(sched: Scheduler, phase: Phase) -> tuple[bytes, str, CIMultiDict[str]]:
    """The card's body and ETag. Everything the document shows comes from the store (whose
    ``version`` moves with each change, including jobs handed out as due), the daemon's phase,
    whether the engine runs, and the pause flag: that is the cache key, so a change shows at
    once. Nothing in it depends on the clock. A cluster node's card carries the live cluster
    status, so it is rendered each time."""
    if sched.cluster is not None:
        return _render(sched, phase)
    store = sched.store
    key = (store.version, phase, sched.running, store.paused)
    card = _cards.get(store)
    if card is None or card.key != key:
        card = _Card(key, *_render(sched, phase))
        _cards[store] = card
    return card.body, card.etag, card.headers


def _render(sched: Scheduler, phase: Phase) -> tuple[bytes, str, CIMultiDict[str]]:
    body = msgspec.json.encode(status_document(sched, phase))
    etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
    headers = CIMultiDict(_validators(etag))
    headers["Content-Type"] = "application/json"
    return body, etag, headers


def _validators(etag: str) -> dict[str, str]:
    """What a client revalidates the card with (200 and 304 answers alike)."""
    return {"ETag": etag, "Cache-Control": "no-cache"}


@routes.route("GET", "/api/scheduler", allow_head=True)
async def scheduler_status(request: web.Request) -> web.StreamResponse:
    app = request.app
    body, etag, headers = _card(app[SCHEDULER], app[STATE].phase)
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=_validators(etag))
    return web.Response(body=body, headers=headers)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ok = state.loaded and state.phase is Phase.RUNNING
    return web.json_response({"ok": ok, "state": state.phase.value}, status=200 if ok else 503)
