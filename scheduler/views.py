"""Records -> JSON documents (camelCase, ISO 8601 with the job zone's offset). The edge only.

Rendering never fails, whatever a stored record holds: one job with an instant past year 9999,
a duration of infinity or a zone that tzdata no longer lists must not turn the job, the list
or the status card into a 500. Inputs are refused at the edge (jobspec) and what remote systems
send is clamped there; this module is the last line: instants are clamped to what a datetime
can show in every zone, a NaN is no instant (null), an unknown zone renders in UTC, and a
duration that is not a finite non-negative number is spelled in plain seconds.

A job's document is written in one place, :func:`job_document`: the API's job (durations as
text) and the input that would recreate a job (durations in seconds, for a PATCH to merge over:
:func:`scheduler.api.inputs.job_input`) are both that rendering, and :data:`JOB_KEYS` is read
off it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any, Final

import msgspec

from scheduler.durations import format_duration
from scheduler.errors import SchedulerError
from scheduler.ids import encode
from scheduler.model import Job, Run, Schedule, fire_id
from scheduler.schedules import load_zone

#: The instants every zone can show: from the epoch (nothing a scheduler stores is older) to
#: 9999-12-30 UTC (a day short of ``datetime.max``, so that no zone's offset overflows it).
EARLIEST: Final = 0.0
LATEST: Final = datetime(9999, 12, 30, tzinfo=UTC).timestamp()


def clamp_instant(instant: float) -> float | None:
    """``instant`` within [EARLIEST, LATEST]; None for a NaN (it names no instant)."""
    if math.isnan(instant):
        return None
    return min(max(instant, EARLIEST), LATEST)


@lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo:
    """The job's zone, or UTC when it cannot be loaded (cached: a lookup that fails is slow)."""
    try:
        return load_zone(name)
    except (SchedulerError, OSError, ValueError):
        return UTC


def iso(instant: float | None, zone: str) -> str | None:
    if instant is None:
        return None
    clamped = clamp_instant(instant)
    if clamped is None:
        return None
    return datetime.fromtimestamp(clamped, _zone(zone)).isoformat(timespec="milliseconds")


def duration_text(seconds: float) -> str:
    """``format_duration`` for any float: a value it cannot spell (infinite, NaN, negative)
    is written as plain seconds rather than raising."""
    if math.isfinite(seconds) and seconds >= 0:
        return format_duration(seconds)
    return f"{seconds}s"


Spell = Callable[[float], Any]
"""How a document writes a duration (seconds): :func:`duration_text` for people, or the number
itself where the document is read back as input (text would round it)."""


def schedule_json(schedule: Schedule, spell: Spell = duration_text) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.to_builtins(schedule)
    for key in ("delay", "every"):
        if key in doc:
            doc[key] = spell(doc[key])
    return doc


def job_json(job: Job) -> dict[str, Any]:
    """A job as the API shows it."""
    return job_document(job, duration_text)


def job_document(job: Job, spell: Spell) -> dict[str, Any]:
    """The one rendering of a job: every key of :data:`JOB_KEYS`, in that order, instants in
    the job's zone and durations written by ``spell``."""
    zone = job.timezone
    policy = job.policy
    retry = policy.retry
    return {
        "id": encode(job.id),
        "workflowId": job.workflow_id,
        "workflowName": job.display_name,
        "name": job.name,
        "type": job.type.value,
        "status": job.status.value,
        "scheduledTime": iso(job.scheduled, zone),
        "createdAt": iso(job.created, zone),
        "executedAt": iso(job.executed, zone),
        "completedAt": iso(job.completed, zone),
        "error": job.error,
        "result": job.result,
        "task": job.task,
        "payload": job.payload,
        "schedule": schedule_json(job.schedule, spell),
        "timezone": zone,
        "priority": job.priority.value,
        "attempt": job.attempt,
        "maxRetries": retry.max,
        "retry": {
            "max": retry.max,
            "backoff": retry.backoff.value,
            "delay": spell(retry.delay),
            "maxDelay": spell(retry.max_delay),
            "jitter": retry.jitter,
        },
        "timeout": None if policy.timeout is None else spell(policy.timeout),
        "misfire": {
            "grace": None if policy.misfire.grace is None else spell(policy.misfire.grace),
            "coalesce": policy.misfire.coalesce.value,
        },
        "overlap": policy.overlap.value,
        "onCrash": policy.on_crash.value,
        "uniqueKey": job.unique_key,
        "progress": None
        if job.progress is None
        else {"percent": job.progress.percent, "message": job.progress.message},
        "runs": job.runs,
        "source": job.source.value,
        "pausedUntil": iso(job.paused_until, zone),
        "pauseReason": job.pause_reason,
        "pausedBy": job.paused_by,
    }


#: Every key of a job's document, in order: read off a rendering, so it cannot drift from it.
JOB_KEYS: Final = tuple(job_json(Job(id=0, task="-", timezone="UTC")))


def run_json(run: Run, zone: str) -> dict[str, Any]:
    return {
        "fireId": fire_id(encode(run.job_id), clamp_instant(run.fire) or 0.0),
        "scheduledTime": iso(run.fire, zone),
        "attempt": run.attempt,
        "outcome": run.outcome.value,
        "startedAt": iso(run.started, zone),
        "endedAt": iso(run.ended, zone),
        "duration": run.duration,
        "lateness": run.lateness,
        "error": run.error,
        "reason": run.reason,
        "result": run.result,
    }
