"""The operations of the OpenAPI document, path by path (assembled by :mod:`.openapi`).

Each route's summary, parameters, request body and responses; the error responses an operation
can give come from one table, so the descriptions of 401, 403, 415... read the same everywhere.
"""

from __future__ import annotations

from typing import Any

from scheduler.api.schemas import (
    DURATION,
    STRING,
    Schema,
    enum_of,
    nullable,
    obj,
    ref,
)
from scheduler.model import JobStatus, JobType

# --- operations ------------------------------------------------------------------------------

_ERROR_TEXT = {
    "400": "Invalid input: the message names the field and what was expected",
    "401": "Missing or invalid bearer token (also an Authorization header over 32 KiB)",
    "403": (
        "Host is not a loopback name (DNS rebinding guard), or a change sent by a browser "
        "from a page of another origin (Sec-Fetch-Site or Origin; CSRF guard)"
    ),
    "404": "No such job",
    "409": (
        "Conflict: duplicate unique key, the job's state does not allow this, or the job "
        "is defined in config.toml"
    ),
    "413": "Body larger than 1 MiB",
    "415": (
        "Not application/json: POST, PUT and PATCH need Content-Type: application/json even "
        "with an empty body"
    ),
    "503": "The daemon is starting or stopping",
    "507": "The disk is full: the change was not made",
}
_READ_ERRORS = ("401", "403", "404", "503")
_WRITE_ERRORS = ("400", "401", "403", "404", "409", "413", "415", "503", "507")


def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    errors: tuple[str, ...] = _READ_ERRORS,
    params: tuple[Schema, ...] = (),
    body: Schema | None = None,
    body_required: bool = True,
    open_: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": dict(responses)}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = list(params)
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    for code in errors:
        op["responses"].setdefault(code, _json(ref("Error"), _ERROR_TEXT[code]))
    if open_:
        op["security"] = []
    return op


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": STRING,
        "description": description,
    }


JOB_ID = _path("id", "the job's id")
WORKFLOW_ID = _path("workflowId", "the workflow's id")
FORCE = _query("force", {"type": "boolean"}, "run even if the overlap policy says not to")
WAIT = _query(
    "wait", {"type": "boolean"}, "answer only when the run has finished, with the run (test mode)"
)


def job_paths() -> dict[str, Any]:
    job = _json(ref("Job"), "The job")
    optional_empty = obj({})
    return {
        "/api/jobs": {
            "get": _op(
                "List jobs in creation order (oldest first)",
                {"200": _json(ref("JobPage"), "One page of jobs")},
                errors=("400", "401", "403", "503"),
                params=(
                    _query("status", enum_of(JobStatus), "only jobs in this status"),
                    _query("type", enum_of(JobType), "only jobs of this type"),
                    _query("workflowId", STRING, "only jobs of this workflow"),
                    _query("task", STRING, "only jobs that run this task"),
                    _query("page", {"type": "integer", "minimum": 1, "default": 1}, "page"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 20},
                        "page size",
                    ),
                ),
            ),
            "post": _op(
                "Create a job",
                {
                    "201": {
                        **_json(
                            {"anyOf": [ref("Job"), ref("JobWithRun")]},
                            "Created (with ?wait=true: with its finished run)",
                        ),
                        "headers": {"Location": {"schema": STRING}},
                    },
                },
                errors=_WRITE_ERRORS,
                params=(WAIT,),
                body=ref("JobInput"),
            ),
        },
        "/api/jobs/{id}": {
            "parameters": [JOB_ID],
            "get": _op("Read a job", {"200": job}),
            "patch": _op(
                "Change a job's schedule, payload, priority or policies",
                {"200": job},
                errors=_WRITE_ERRORS,
                body=ref("JobPatch"),
            ),
            "delete": _op(
                "Remove a job (stopping its run in flight)",
                {"204": {"description": "Removed"}},
                errors=_WRITE_ERRORS,
            ),
        },
        "/api/jobs/{id}/run": {
            "parameters": [JOB_ID],
            "post": _op(
                "Run now, outside the schedule",
                {
                    "202": _json(ref("Job"), "Queued"),
                    "200": _json(ref("JobWithRun"), "With ?wait=true: the finished run"),
                },
                errors=_WRITE_ERRORS,
                params=(FORCE, WAIT),
                body=optional_empty,
                body_required=False,
                description=(
                    "While the job runs its overlap policy decides unless force=true: allow runs "
                    "alongside, cancel_other stops the run in flight, buffer_one runs after it, "
                    "skip answers 409. Inside a maintenance window of the job's task it answers "
                    "409 with code maintenance, naming the window and its end."
                ),
            ),
        },
        "/api/jobs/{id}/cancel": {
            "parameters": [JOB_ID],
            "post": _op(
                "Cancel a pending job or stop a running one",
                {"200": job},
                errors=_WRITE_ERRORS,
                body=optional_empty,
                body_required=False,
            ),
        },
        "/api/jobs/{id}/pause": {
            "parameters": [JOB_ID],
            "post": _op(
                "Pause a pending or running job, optionally until an instant",
                {"200": job},
                errors=_WRITE_ERRORS,
                body=obj(
                    {
                        "until": nullable(STRING),
                        "reason": nullable(STRING),
                        "by": nullable(STRING),
                    }
                ),
                body_required=False,
                description=(
                    "until: ISO 8601, local in the job's zone unless it has an offset. by: who "
                    "pauses it (a name; the API has no users), shown by explain. A run in "
                    "flight finishes; the job then stays paused."
                ),
            ),
        },
        "/api/jobs/{id}/resume": {
            "parameters": [JOB_ID],
            "post": _op(
                "Resume a paused job",
                {"200": job},
                errors=_WRITE_ERRORS,
                body=obj({"catchUp": {"type": "boolean", "default": False}}),
                body_required=False,
                description="Missed occurrences are skipped unless catchUp is true.",
            ),
        },
        "/api/jobs/{id}/retry": {
            "parameters": [JOB_ID],
            "post": _op(
                "Re-queue a failed job now, attempt count reset",
                {"200": job},
                errors=_WRITE_ERRORS,
                body=optional_empty,
                body_required=False,
            ),
        },
        "/api/jobs/{id}/runs": {
            "parameters": [JOB_ID],
            "get": _op("Run history, newest first", {"200": _json(ref("RunList"), "Runs")}),
        },
        "/api/jobs/{id}/next": {
            "parameters": [JOB_ID],
            "get": _op(
                "The next n run times, in UTC and in the job's zone",
                {"200": _json(ref("NextTimes"), "Run times")},
                errors=("400", *_READ_ERRORS),
                params=(
                    _query(
                        "n",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
                        "how many",
                    ),
                ),
            ),
        },
        "/api/jobs/{id}/explain": {
            "parameters": [JOB_ID],
            "get": _op(
                "Why the job has not run, or will run late",
                {"200": _json(ref("Explanation"), "A summary and the reasons")},
                description=(
                    "summary: one sentence naming the first reason. reasons: each with a stable "
                    "code, a one-sentence message and its facts in details (instants ISO 8601 "
                    "in the job's zone); empty for a job simply waiting for its next run. "
                    "waiting_for_slot, rate_limited and daemonDown are known to a single box "
                    "only (a cluster node answers the others from the database)."
                ),
            ),
        },
    }


def other_paths() -> dict[str, Any]:
    status = _json(ref("Status"), "Scheduler status")
    empty = obj({})
    return {
        "/api/workflows/{workflowId}/schedule": {
            "parameters": [WORKFLOW_ID],
            "put": _op(
                "Register a workflow's schedule (one job per workflow, updated in place)",
                {
                    "200": _json(ref("Job"), "Updated in place"),
                    "201": {
                        **_json(ref("Job"), "Created"),
                        "headers": {"Location": {"schema": STRING}},
                    },
                },
                errors=_WRITE_ERRORS,
                body=ref("JobInput"),
            ),
            "delete": _op(
                "Remove the workflow's job",
                {"204": {"description": "Removed"}},
                errors=_WRITE_ERRORS,
            ),
        },
        "/api/scheduler": {
            "get": _op(
                "Status card",
                {"200": status, "304": {"description": "Not modified"}},
                errors=(),
                open_=True,
            ),
            "head": _op(
                "Status card headers",
                {"200": {"description": "Headers only"}, "304": {"description": "Not modified"}},
                errors=(),
                open_=True,
            ),
        },
        "/api/scheduler/pause": {
            "post": _op(
                "Stop dispatching (jobs are still accepted)",
                {"200": status},
                errors=_WRITE_ERRORS,
                body=empty,
                body_required=False,
            ),
        },
        "/api/scheduler/resume": {
            "post": _op(
                "Restart dispatching",
                {"200": status},
                errors=_WRITE_ERRORS,
                body=empty,
                body_required=False,
            ),
        },
        "/api/scheduler/clean": {
            "post": _op(
                "Remove finished jobs now",
                {
                    "200": _json(
                        obj({"removed": {"type": "integer", "minimum": 0}}, required=("removed",)),
                        "How many were removed",
                    )
                },
                errors=_WRITE_ERRORS,
                body=obj(
                    {
                        "status": {
                            "anyOf": [
                                {"type": "string", "enum": ["completed", "failed", "cancelled"]},
                                {
                                    "type": "array",
                                    "items": {
                                        "type": "string",
                                        "enum": ["completed", "failed", "cancelled"],
                                    },
                                },
                            ]
                        },
                        "olderThan": DURATION,
                    }
                ),
                body_required=False,
            ),
        },
        "/api/stats": {
            "get": _op(
                "Runs per hour by outcome, lateness p50/p99, and the runs due next, per job",
                {"200": _json(ref("Stats"), "The dashboard's chart data")},
                errors=("400", "401", "403", "503"),
                params=(
                    _query(
                        "hours",
                        {"type": "integer", "minimum": 1, "maximum": 168, "default": 24},
                        "hours back for the buckets and ahead for the upcoming runs",
                    ),
                ),
                description=(
                    "Buckets are whole hours, oldest first, the last one holding now; start is "
                    "in the scheduler's zone (timezone). Lateness percentiles are read from "
                    "fixed log-spaced bins (10 per decade): the upper edge of the bin, at most "
                    "26 % above the true value; null when no scheduled first attempt started "
                    "in the hour. upcoming: the jobs due soonest (at most 50), each with its "
                    "runs in the next hours (at most 200) in its own zone; upcomingTruncated "
                    "when anything was left out."
                ),
            ),
        },
        "/api/events": {
            "get": _op(
                "Live events (Server-Sent Events)",
                {
                    "200": {
                        "description": "An event stream",
                        "content": {"text/event-stream": {"schema": STRING}},
                    },
                    "503": {
                        **_json(
                            ref("Error"),
                            "Starting or stopping, or too many streams open (server.max_streams)",
                        ),
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    },
                },
                errors=("400", "401", "403"),
                params=(
                    _query("jobId", STRING, "only this job's events"),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": STRING,
                        "description": "resume after this event",
                    },
                ),
                description=(
                    "Event types: job-created, job-started, job-progress, job-completed, "
                    "job-failed, job-retry, job-cancelled, scheduler-status; data is JSON with "
                    "jobId and the event's fields. A comment line is sent every 15 s. A client "
                    "that falls behind gets one stream-overflow event and is disconnected. At "
                    "most server.max_streams streams are open at once (503 past that)."
                ),
            ),
        },
        "/api/maintenance": {
            "get": _op(
                "Maintenance windows: open now, next, and every opening in the coming hours",
                {"200": _json(ref("Maintenance"), "The windows")},
                errors=("400", "401", "403"),
                params=(
                    _query(
                        "hours",
                        {"type": "integer", "minimum": 1, "maximum": 168, "default": 24},
                        "how far ahead upcoming looks, in hours",
                    ),
                ),
                description=(
                    "Inside a window, runs of its tasks do not start (a run-now answers 409 with "
                    "code maintenance); start and end are ISO 8601 in the window's zone, tasks "
                    "is null for a window that holds every task."
                ),
            ),
        },
        "/healthz": {
            "get": _op(
                "Liveness",
                {
                    "200": _json(ref("Health"), "Alive and loaded"),
                    "503": _json(ref("Health"), "Starting or stopping"),
                },
                errors=(),
                open_=True,
            ),
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "Text exposition format",
                        "content": {"text/plain": {"schema": STRING}},
                    }
                },
                errors=("401", "403"),
            ),
        },
        "/api/openapi.json": {
            "get": _op(
                "This document",
                {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                errors=("401", "403"),
            ),
        },
        "/": {
            "get": _op(
                "The dashboard",
                {"200": {"description": "HTML", "content": {"text/html": {"schema": STRING}}}},
                errors=("404",),
                open_=True,
            ),
        },
        "/static/{path}": {
            "parameters": [_path("path", "a file of the dashboard")],
            "get": _op(
                "The dashboard's static files",
                {"200": {"description": "The file"}},
                errors=("404",),
                open_=True,
            ),
        },
    }
