"""Errors: one document shape from one middleware, the right status for each kind of bad
request, never a 500 or a traceback, and never a change of state."""

from __future__ import annotations

import io
import itertools

import pytest

from scheduler.api.keys import Phase
from tests.api.harness import Api


def assert_error(body: object, code: str, field: str | None = None) -> None:
    assert isinstance(body, dict)
    assert set(body) == {"error"}
    error = body["error"]
    assert {"code", "message", "field"} <= set(error)
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["field"] == field


@pytest.mark.parametrize(
    ("job", "code", "field"),
    [
        ({"task": "work", "priority": 3}, "invalid", "priority"),
        ({"task": "work", "payload": 1, "colour": "red"}, "invalid", "colour"),
        ({"task": "work", "workflow_id": "x"}, "invalid", "workflow_id"),
        ({"task": "work", "schedule": {"cron": "61 * * * *"}}, "invalid_schedule", "schedule.cron"),
        ({"task": "work", "schedule": {"delay": "1h", "cron": "@daily"}}, None, None),
        ({"task": "work", "schedule": "daily"}, None, "schedule"),
        ({"task": "work", "timezone": "Mars/Base"}, None, "timezone"),
        ({"task": "nope"}, "unknown_task", "task"),
        ({"task": 5}, None, "task"),
        ({"payload": {}}, "unknown_task", "task"),  # no task and no 'workflow' task
        ({"task": "work", "retry": {"max": -1}}, "invalid", "retry.max"),
        ({"task": "work", "timeout": "forever"}, "invalid", "timeout"),
    ],
)
async def test_bad_job_input_is_a_400_naming_the_field(
    api: Api, job: dict[str, object], code: str | None, field: str | None
) -> None:
    status, body = await api.call("POST", "/api/jobs", json=job)
    assert status == 400, body
    assert isinstance(body, dict)
    if code is not None:
        assert body["error"]["code"] == code
    if field is not None:
        assert body["error"]["field"] == field
        assert field in body["error"]["message"]
    assert len(api.sched.store) == 0


@pytest.mark.parametrize(
    "data", [b"{", b"{'task': 'work'}", b"", b"\xff\xfe", b"[1, 2", b"nul", b'{"a": 1}x']
)
async def test_malformed_json_is_a_400_on_the_body(api: Api, data: bytes) -> None:
    status, body = await api.call(
        "POST", "/api/jobs", data=data, headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert_error(body, "invalid", "body")


@pytest.mark.parametrize("data", [b"[]", b"1", b'"job"', b"null"])
async def test_a_body_that_is_not_an_object_is_a_400(api: Api, data: bytes) -> None:
    status, body = await api.call(
        "POST", "/api/jobs", data=data, headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert_error(body, "invalid", "body")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_non_json_body_is_a_415(api: Api, content_type: str) -> None:
    status, body = await api.call(
        "POST", "/api/jobs", data=b'{"task": "work"}', headers={"Content-Type": content_type}
    )
    assert status == 415
    assert_error(body, "unsupported_media_type")


async def test_a_body_over_one_mebibyte_is_a_413(api: Api) -> None:
    data = io.BytesIO(b'{"task": "work", "payload": "' + b"x" * (1024 * 1024) + b'"}')
    status, body = await api.call(
        "POST", "/api/jobs", data=data, headers={"Content-Type": "application/json"}
    )
    assert status == 413
    assert_error(body, "too_large")
    assert len(api.sched.store) == 0


async def test_a_duplicate_unique_key_is_a_409_naming_the_holder(api: Api) -> None:
    first = await api.create(schedule={"delay": "1h"}, uniqueKey="k1")
    status, body = await api.call(
        "POST", "/api/jobs", json={"task": "work", "schedule": {"delay": "2h"}, "uniqueKey": "k1"}
    )
    assert status == 409
    assert_error(body, "duplicate", "uniqueKey")
    assert body["error"]["existingId"] == first["id"]
    status, body = await api.call(
        "POST", "/api/jobs", json={"task": "work", "workflowId": "w", "schedule": {"delay": "1h"}}
    )
    status, body = await api.call(
        "POST", "/api/jobs", json={"task": "work", "workflowId": "w", "schedule": {"delay": "1h"}}
    )
    assert status == 409
    assert len(api.sched.store) == 2


async def test_an_unknown_route_is_a_404_and_a_wrong_method_a_405(api: Api) -> None:
    status, body = await api.call("GET", "/api/nothing")
    assert status == 404
    assert_error(body, "not_found")
    status, body = await api.call("PUT", "/api/jobs")
    assert status == 405
    assert_error(body, "method_not_allowed")


@pytest.mark.parametrize("phase", [Phase.STARTING, Phase.STOPPING])
async def test_changes_are_refused_with_503_while_starting_or_stopping(
    api: Api, phase: Phase
) -> None:
    job = await api.create(schedule={"delay": "1h"})
    api.daemon_state.phase = phase
    before = api.state()
    for method, path in [
        ("POST", "/api/jobs"),
        ("PATCH", f"/api/jobs/{job['id']}"),
        ("DELETE", f"/api/jobs/{job['id']}"),
        ("POST", f"/api/jobs/{job['id']}/cancel"),
        ("POST", "/api/scheduler/pause"),
        ("PUT", "/api/workflows/w/schedule"),
        ("GET", "/api/events"),
    ]:
        status, body = await api.call(method, path, json={"task": "work"})
        assert status == 503, (method, path)
        assert_error(body, "unavailable")
    assert api.state() == before
    status, body = await api.call("GET", "/api/scheduler")
    assert status == 200
    assert body["isRunning"] is False


# --- a sweep: garbage at every route never gives a 500 or changes state ------------------------

_ROUTES = [
    ("GET", "/api/jobs"),
    ("POST", "/api/jobs"),
    ("GET", "/api/jobs/{id}"),
    ("PATCH", "/api/jobs/{id}"),
    ("POST", "/api/jobs/{id}/run"),
    ("POST", "/api/jobs/{id}/pause"),
    ("POST", "/api/jobs/{id}/resume"),
    ("POST", "/api/jobs/{id}/retry"),
    ("GET", "/api/jobs/{id}/next"),
    ("PUT", "/api/workflows/{id}/schedule"),
    ("POST", "/api/scheduler/clean"),
]
_BODIES: list[object] = [
    [],
    "x",
    0,
    {"schedule": {"every": -1}},
    {"schedule": {"repeat": {"freq": "hourly"}}},
    {"schedule": {"rrule": "FREQ=SECONDLY;COUNT=0"}},
    {"schedule": {"at": "2030-13-45T99:00"}},
    {"until": {"a": 1}, "catchUp": "yes", "status": 7, "olderThan": -5},
    {"retry": {"maxDelay": "1s", "delay": "1m"}},
    {"payload": "\u0000", "task": "work", "priority": "none"},
    {"task": "work", "schedule": {"cron": "0 0 30 2 *"}},
    {"task": "work", "misfire": {"grace": "x"}},
    # out of range: instants past year 9999, durations past 100 years, integers past 64 bits
    {
        "task": "work",
        "schedule": {"at": "9999-12-31T23:59-05:00"},
        "until": "9999-12-31T23:59-05:00",
        "olderThan": "99999999d",
    },
    {"task": "work", "schedule": {"delay": 1e300}, "payload": 10**30, "timeout": 1e300},
]
_QUERIES = ["", "?force=maybe&wait=perhaps&n=-1&page=x"]


async def test_no_garbage_request_gives_a_500_or_changes_state(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"}, workflowId="wf")
    before = api.state()
    for (method, template), body, query in itertools.product(_ROUTES, _BODIES, _QUERIES):
        path = template.format(id=job["id"]) + query
        status, answer = await api.call(method, path, json=body)
        if status < 300:
            assert method == "GET", (method, path, body, status)  # reads ignore a body
            continue
        assert 400 <= status < 500, (method, path, body, status, answer)
        assert_error(answer, answer["error"]["code"])
        assert "Traceback" not in str(answer)
    assert api.state() == before
