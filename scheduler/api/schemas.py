"""JSON Schemas of the API's documents, for the OpenAPI description (:mod:`.openapi`).

The schedule's calendar parts (``Repeat``, ``DstPolicy`` and their enums) are generated from the
msgspec records that hold them; the rest mirrors :mod:`scheduler.views` (responses) and
:mod:`scheduler.jobspec` (requests), and tests check real responses against it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from scheduler.engine.explain import Code
from scheduler.model import (
    Backoff,
    Coalesce,
    DstPolicy,
    JobStatus,
    JobType,
    OnCrash,
    Outcome,
    Overlap,
    Priority,
    Repeat,
    Source,
)

Schema = dict[str, Any]

_REF = "#/components/schemas/{name}"


def ref(name: str) -> Schema:
    return {"$ref": _REF.format(name=name)}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def enum_of(kind: type[Any]) -> Schema:
    return {"type": "string", "enum": [member.value for member in kind]}


def obj(
    properties: dict[str, Schema],
    *,
    required: tuple[str, ...] = (),
    closed: bool = True,
    description: str | None = None,
) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


STRING: Schema = {"type": "string"}
INSTANT: Schema = {"type": "string", "format": "date-time"}
ANY: Schema = {}
DURATION: Schema = {
    "description": "A duration: '90s', '15m', '2h', '1d', '1h30m', or seconds as a number.",
    "anyOf": [
        {
            "type": "string",
            "pattern": r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+$",
            "examples": ["90s", "15m", "2h", "1d"],
        },
        {"type": "number", "exclusiveMinimum": 0},
    ],
}


def _generated() -> dict[str, Schema]:
    _, generated = msgspec.json.schema_components([Repeat, DstPolicy], ref_template=_REF)
    defs: dict[str, Schema] = msgspec.json.decode(msgspec.json.encode(generated))  # tuples -> lists
    for schema in defs.values():
        schema.pop("description", None)  # docstrings written for Python readers
    return defs


def _schedule_in() -> Schema:
    return obj(
        {
            "delay": DURATION,
            "at": {"type": "string", "description": "local in the job's zone, or with an offset"},
            "every": DURATION,
            "start": STRING,
            "end": STRING,
            "cron": {"type": "string", "examples": ["0 9 * * 1-5", "@daily", "@every 1h"]},
            "repeat": ref("Repeat"),
            "rrule": {"type": "string", "examples": ["FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9"]},
            "timezone": {"type": "string", "examples": ["Asia/Seoul"]},
            "dst": ref("DstPolicy"),
        },
        description="At most one of delay, at, every, cron, repeat, rrule; none: immediate.",
    )


def _schedule_out() -> Schema:
    return obj(
        {
            "delay": STRING,
            "at": STRING,
            "every": STRING,
            "start": STRING,
            "end": STRING,
            "cron": STRING,
            "repeat": ref("Repeat"),
            "rrule": STRING,
            "dst": ref("DstPolicy"),
        },
        description="As submitted, normalised: durations spelled like '1h30m'.",
    )


def _policies_in() -> dict[str, Schema]:
    return {
        "retry": obj(
            {
                "max": {"type": "integer", "minimum": 0, "maximum": 1000},
                "backoff": enum_of(Backoff),
                "delay": DURATION,
                "maxDelay": DURATION,
                "jitter": {"type": "number", "minimum": 0, "maximum": 1},
            }
        ),
        "maxRetries": {"type": "integer", "minimum": 0, "maximum": 1000},
        "timeout": nullable(DURATION),
        "misfire": obj({"grace": nullable(DURATION), "coalesce": enum_of(Coalesce)}),
        "overlap": enum_of(Overlap),
        "onCrash": enum_of(OnCrash),
    }


def _job_in() -> Schema:
    return obj(
        {
            "task": {"type": "string", "description": "a task from config or registered in code"},
            "payload": ANY,
            "schedule": ref("ScheduleInput"),
            "timezone": {"type": "string", "examples": ["Asia/Seoul"]},
            "priority": enum_of(Priority),
            "workflowId": STRING,
            "workflowName": STRING,
            "uniqueKey": STRING,
            "name": STRING,
            **_policies_in(),
        },
        description="A new job. Without task, the config's 'workflow' task runs it.",
    )


def _job_patch() -> Schema:
    def opt(schema: Schema) -> Schema:
        return nullable(schema)

    fields = {
        "task": STRING,
        "payload": ANY,
        "schedule": ref("ScheduleInput"),
        "timezone": STRING,
        "priority": enum_of(Priority),
        "workflowName": STRING,
        "name": STRING,
        **_policies_in(),
    }
    return obj(
        {key: opt(schema) for key, schema in fields.items()},
        description=(
            "Keys to change. retry and misfire merge key by key; other keys are replaced "
            "whole; null restores the default. Changing schedule or timezone recomputes "
            "scheduledTime from now. id, status, attempt and the other server fields, "
            "workflowId and uniqueKey are not writable (400 naming the field)."
        ),
    )


def _job_out() -> Schema:
    props: dict[str, Schema] = {
        "id": STRING,
        "workflowId": nullable(STRING),
        "workflowName": STRING,
        "name": nullable(STRING),
        "type": enum_of(JobType),
        "status": enum_of(JobStatus),
        "scheduledTime": nullable(INSTANT),
        "createdAt": INSTANT,
        "executedAt": nullable(INSTANT),
        "completedAt": nullable(INSTANT),
        "error": nullable(STRING),
        "result": ANY,
        "task": STRING,
        "payload": ANY,
        "schedule": ref("Schedule"),
        "timezone": STRING,
        "priority": enum_of(Priority),
        "attempt": {"type": "integer", "minimum": 0},
        "maxRetries": {"type": "integer", "minimum": 0},
        "retry": obj(
            {
                "max": {"type": "integer"},
                "backoff": enum_of(Backoff),
                "delay": STRING,
                "maxDelay": STRING,
                "jitter": {"type": "number"},
            },
            required=("max", "backoff", "delay", "maxDelay", "jitter"),
        ),
        "timeout": nullable(STRING),
        "misfire": obj(
            {"grace": nullable(STRING), "coalesce": enum_of(Coalesce)},
            required=("grace", "coalesce"),
        ),
        "overlap": enum_of(Overlap),
        "onCrash": enum_of(OnCrash),
        "uniqueKey": nullable(STRING),
        "progress": nullable(
            obj(
                {"percent": {"type": "number"}, "message": nullable(STRING)},
                required=("percent", "message"),
            )
        ),
        "runs": {"type": "integer", "minimum": 0},
        "source": enum_of(Source),
        "pausedUntil": nullable(INSTANT),
        "pauseReason": nullable(STRING),
        "pausedBy": nullable(STRING),
    }
    return obj(props, required=tuple(props))


def _run_out() -> Schema:
    props: dict[str, Schema] = {
        "fireId": {"type": "string", "description": "job id and scheduled instant (ms)"},
        "scheduledTime": INSTANT,
        "attempt": {"type": "integer", "minimum": 0},
        "outcome": enum_of(Outcome),
        "startedAt": nullable(INSTANT),
        "endedAt": nullable(INSTANT),
        "duration": nullable({"type": "number"}),
        "lateness": nullable({"type": "number"}),
        "error": nullable(STRING),
        "reason": nullable(STRING),
        "result": ANY,
    }
    return obj(props, required=tuple(props))


def _status() -> Schema:
    count: Schema = {"type": "integer", "minimum": 0}
    return obj(
        {
            "isRunning": {"type": "boolean"},
            "totalJobs": count,
            "pendingJobs": count,
            "runningJobs": count,
            "completedJobs": count,
            "failedJobs": count,
            "cancelledJobs": count,
            "pausedJobs": count,
            "delayedJobs": {
                **count,
                "description": (
                    "one-off jobs with a delay or a date (type delayed or scheduled) that are "
                    "pending: created, or waiting for a retry, and not yet started"
                ),
            },
            "jobsByType": obj(
                {kind.value: count for kind in JobType},
                required=tuple(kind.value for kind in JobType),
                description="stored jobs by type, whatever their status (they sum to totalJobs)",
            ),
            "state": {"type": "string", "enum": ["starting", "running", "paused", "stopping"]},
            "nextJob": nullable(
                obj(
                    {
                        "id": STRING,
                        "workflowName": STRING,
                        "scheduledTime": INSTANT,
                        "type": enum_of(JobType),
                    },
                    required=("id", "workflowName", "scheduledTime", "type"),
                )
            ),
        },
        required=(
            "isRunning",
            "totalJobs",
            "pendingJobs",
            "runningJobs",
            "completedJobs",
            "failedJobs",
            "nextJob",
        ),
        closed=False,
        description="The homepage card contract: keys are never removed or renamed.",
    )


def _stats() -> Schema:
    count: Schema = {"type": "integer", "minimum": 0}
    seconds = nullable({"type": "number", "minimum": 0})
    bucket = obj(
        {
            "start": INSTANT,
            "outcomes": obj(
                {outcome.value: count for outcome in Outcome},
                required=tuple(outcome.value for outcome in Outcome),
            ),
            "latenessP50": seconds,
            "latenessP99": seconds,
        },
        required=("start", "outcomes", "latenessP50", "latenessP99"),
    )
    lane = obj(
        {
            "jobId": STRING,
            "name": STRING,
            "task": STRING,
            "timezone": STRING,
            "runs": {"type": "array", "items": INSTANT, "maxItems": 200},
            "truncated": {"type": "boolean", "description": "more runs in the window"},
        },
        required=("jobId", "name", "task", "timezone", "runs", "truncated"),
    )
    return obj(
        {
            "bucketSeconds": {"type": "integer", "const": 3600},
            "timezone": STRING,
            "buckets": {"type": "array", "items": bucket},
            "upcoming": {"type": "array", "items": lane, "maxItems": 50},
            "upcomingTruncated": {"type": "boolean"},
        },
        required=("bucketSeconds", "timezone", "buckets", "upcoming", "upcomingTruncated"),
    )


def _explanation() -> Schema:
    reason = obj(
        {
            "code": enum_of(Code),
            "message": STRING,
            "details": {"type": "object", "description": "the reason's facts (docs/api.md)"},
        },
        required=("code", "message", "details"),
    )
    props: dict[str, Schema] = {
        "jobId": STRING,
        "status": enum_of(JobStatus),
        "summary": {"type": "string", "description": "one sentence"},
        "lastExpected": nullable(INSTANT),
        "nextRun": nullable(INSTANT),
        "timezone": STRING,
        "reasons": {"type": "array", "items": reason},
    }
    return obj(props, required=tuple(props))


def _error() -> Schema:
    return obj(
        {
            "error": obj(
                {
                    "code": STRING,
                    "message": STRING,
                    "field": nullable(STRING),
                    "existingId": STRING,
                },
                required=("code", "message", "field"),
            )
        },
        required=("error",),
    )


def components() -> dict[str, Schema]:
    schemas = {
        **_generated(),
        "ScheduleInput": _schedule_in(),
        "Schedule": _schedule_out(),
        "JobInput": _job_in(),
        "JobPatch": _job_patch(),
        "Job": _job_out(),
        "Run": _run_out(),
        "JobPage": obj(
            {
                "items": {"type": "array", "items": ref("Job")},
                "total": {"type": "integer", "minimum": 0},
                "page": {"type": "integer", "minimum": 1},
                "limit": {"type": "integer", "minimum": 1},
            },
            required=("items", "total", "page", "limit"),
        ),
        "RunList": obj(
            {
                "items": {"type": "array", "items": ref("Run"), "description": "newest first"},
                "total": {"type": "integer", "minimum": 0},
            },
            required=("items", "total"),
        ),
        "NextTimes": obj(
            {
                "timezone": STRING,
                "items": {
                    "type": "array",
                    "items": obj({"utc": INSTANT, "local": INSTANT}, required=("utc", "local")),
                },
            },
            required=("timezone", "items"),
        ),
        "Stats": _stats(),
        "Explanation": _explanation(),
        "Status": _status(),
        "Health": obj({"ok": {"type": "boolean"}, "state": STRING}, required=("ok", "state")),
        "Window": obj(
            {
                "name": STRING,
                "start": INSTANT,
                "end": INSTANT,
                "timezone": STRING,
                "tasks": nullable({"type": "array", "items": STRING}),
            },
            required=("name", "start", "end", "timezone", "tasks"),
        ),
        "Maintenance": obj(
            {
                "current": {"type": "array", "items": ref("Window")},
                "next": {"type": "array", "items": ref("Window")},
                "upcoming": {"type": "array", "items": ref("Window")},
            },
            required=("current", "next", "upcoming"),
        ),
        "Error": _error(),
    }
    # A job with its run: Job plus "run" (allOf over a closed Job would forbid the extra key).
    job_with_run = dict(schemas["Job"])
    job_with_run["properties"] = {**job_with_run["properties"], "run": ref("Run")}
    job_with_run["required"] = [*job_with_run["required"], "run"]
    schemas["JobWithRun"] = job_with_run
    return schemas
