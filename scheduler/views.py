"""Records -> JSON documents (camelCase, ISO 8601 with the job zone's offset). The edge only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from scheduler.durations import format_duration
from scheduler.ids import encode
from scheduler.model import Job, Run, Schedule, fire_id
from scheduler.schedules import load_zone


def iso(instant: float | None, zone: str) -> str | None:
    if instant is None:
        return None
    return datetime.fromtimestamp(instant, load_zone(zone)).isoformat(timespec="milliseconds")


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.to_builtins(schedule)
    for key in ("delay", "every"):
        if key in doc:
            doc[key] = format_duration(doc[key])
    return doc


def job_json(job: Job) -> dict[str, Any]:
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
        "schedule": schedule_json(job.schedule),
        "timezone": zone,
        "priority": job.priority.value,
        "attempt": job.attempt,
        "maxRetries": retry.max,
        "retry": {
            "max": retry.max,
            "backoff": retry.backoff.value,
            "delay": format_duration(retry.delay),
            "maxDelay": format_duration(retry.max_delay),
            "jitter": retry.jitter,
        },
        "timeout": None if policy.timeout is None else format_duration(policy.timeout),
        "misfire": {
            "grace": None
            if policy.misfire.grace is None
            else format_duration(policy.misfire.grace),
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
    }


def run_json(run: Run, zone: str) -> dict[str, Any]:
    return {
        "fireId": fire_id(encode(run.job_id), run.fire),
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
