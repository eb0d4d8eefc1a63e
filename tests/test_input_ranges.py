"""Out-of-range durations and instants, and JSON nested too deep, are a 400 naming the field at
every entry (API bodies, PATCH, PUT, pause ``until``, config.toml, the library), never a 500
with a traceback or a job that breaks every listing (issue 11).

The accepted ranges (scheduler.durations): a duration is at most 36500 days; a date-time, as
written, lies from 1970-01-02 to 8999-12-31.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.config import Config, load_config
from scheduler.durations import LATEST, MAX_DURATION, parse_duration
from scheduler.errors import ConfigError, InvalidInput
from scheduler.jobspec import JobDefaults, parse_job_input
from scheduler.runtime.library import Scheduler
from tests.api.harness import T0, Api
from tests.fakes import FakeClock

DEFAULTS = JobDefaults()
TOO_LONG = "36501d"


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [record for record in caplog.records if record.exc_info], caplog.text
    assert "Traceback" not in caplog.text


async def refused(api: Api, method: str, path: str, body: object, field: str) -> str:
    """Send ``body``; assert a 400 naming ``field`` that changed nothing; return the message."""
    before = api.state()
    status, answer = await api.call(method, path, json=body)
    assert status == 400, answer
    assert answer["error"]["field"] == field, answer
    assert field in answer["error"]["message"]
    assert api.state() == before
    return str(answer["error"]["message"])


_BAD_JOBS = [
    ({"schedule": {"delay": 1e300}}, "schedule.delay"),
    ({"schedule": {"delay": 10**400}}, "schedule.delay"),
    ({"schedule": {"delay": TOO_LONG}}, "schedule.delay"),
    ({"schedule": {"every": TOO_LONG}}, "schedule.every"),
    ({"schedule": {"cron": "@every 99999999d"}}, "schedule.cron"),
    ({"schedule": {"at": "0001-01-01T00:00"}}, "schedule.at"),
    ({"schedule": {"at": "0001-01-01T00:00+14:00"}}, "schedule.at"),
    ({"schedule": {"at": "1970-01-01T23:59:59+00:00"}}, "schedule.at"),
    ({"schedule": {"at": "9999-12-31T23:59"}}, "schedule.at"),
    ({"schedule": {"at": "9999-12-31T23:59:59-12:00"}}, "schedule.at"),
    ({"schedule": {"at": "9000-01-01T00:00"}}, "schedule.at"),
    ({"schedule": {"every": "1h", "start": "0001-01-01T00:00"}}, "schedule.start"),
    ({"schedule": {"every": "1h", "start": "9999-12-31T23:00"}}, "schedule.start"),
    ({"schedule": {"every": "1h", "end": "9999-12-31T23:00"}}, "schedule.end"),
    ({"schedule": {"repeat": {"freq": "daily", "until": "9999-12-31"}}}, "schedule.repeat.until"),
    (
        {"schedule": {"repeat": {"freq": "daily", "until": "0001-01-01T00:00+14:00"}}},
        "schedule.repeat.until",
    ),
    ({"schedule": {"rrule": "DTSTART:99991231T230000\nRRULE:FREQ=DAILY"}}, "schedule.rrule"),
    ({"schedule": {"rrule": "FREQ=DAILY;UNTIL=99991231T000000Z"}}, "schedule.rrule"),
    ({"retry": {"delay": 1e300, "maxDelay": 1e300}}, "retry.delay"),
    ({"retry": {"maxDelay": TOO_LONG}}, "retry.maxDelay"),
    ({"timeout": 1e300}, "timeout"),
    ({"timeout": "1e400"}, "timeout"),
    ({"misfire": {"grace": TOO_LONG}}, "misfire.grace"),
]


@pytest.mark.parametrize(("job", "field"), _BAD_JOBS)
async def test_an_out_of_range_value_is_a_400_naming_the_field(
    api: Api, caplog: pytest.LogCaptureFixture, job: dict[str, Any], field: str
) -> None:
    caplog.set_level(logging.DEBUG)
    await refused(api, "POST", "/api/jobs", {"task": "work", **job}, field)
    assert_no_traceback(caplog)


@pytest.mark.parametrize(("job", "field"), _BAD_JOBS[:12:3])
async def test_patch_and_put_refuse_them_too(api: Api, job: dict[str, Any], field: str) -> None:
    created = await api.create(schedule={"delay": "1h"})
    await refused(api, "PATCH", f"/api/jobs/{created['id']}", job, field)
    await refused(api, "PUT", "/api/workflows/wf/schedule", {"task": "work", **job}, field)


@pytest.mark.parametrize(
    "schedule",
    [
        {"delay": "36500d"},
        {"at": "8999-12-31T23:59"},
        {"at": "8999-12-31T23:59:59.999999-12:00"},
        {"every": "36500d", "start": "8999-12-31T00:00"},
        {"repeat": {"freq": "daily", "until": "8999-12-31"}},
        {"rrule": "FREQ=YEARLY;UNTIL=89991231T000000Z"},
    ],
)
async def test_the_edges_of_the_range_are_accepted_and_every_view_renders(
    api: Api, schedule: dict[str, Any]
) -> None:
    job = await api.create(schedule=schedule, retry={"delay": "36500d", "maxDelay": "36500d"})
    for path in (f"/api/jobs/{job['id']}", f"/api/jobs/{job['id']}/next?n=3", "/api/jobs"):
        status, _ = await api.call("GET", path)
        assert status == 200, path
    status, _ = await api.call("GET", "/api/scheduler")
    assert status == 200


@pytest.mark.parametrize(
    "until",
    [
        "9999-12-31T23:59-05:00",  # the instant past year 9999 that broke every listing
        "9999-12-31T23:59",
        "9000-01-01T00:00+09:00",
        "0001-01-01T00:00",
        "1970-01-01T00:00Z",
    ],
)
async def test_a_pause_until_out_of_range_is_a_400_and_the_job_still_renders(
    api: Api, caplog: pytest.LogCaptureFixture, until: str
) -> None:
    caplog.set_level(logging.DEBUG)
    job = await api.create(schedule={"delay": "1h"})
    message = await refused(api, "POST", f"/api/jobs/{job['id']}/pause", {"until": until}, "until")
    assert "1970-01-02 to 8999-12-31" in message
    for path in (f"/api/jobs/{job['id']}", "/api/jobs", "/api/scheduler"):
        status, _ = await api.call("GET", path)
        assert status == 200
    assert_no_traceback(caplog)


async def test_a_pause_until_late_in_the_range_is_taken(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"})
    status, body = await api.call(
        "POST", f"/api/jobs/{job['id']}/pause", json={"until": "8999-12-31T23:59-12:00"}
    )
    assert status == 200
    assert body["pausedUntil"] == "9000-01-01T20:59:00.000+09:00"


async def test_clean_older_than_out_of_range_is_a_400(api: Api) -> None:
    await refused(api, "POST", "/api/scheduler/clean", {"olderThan": TOO_LONG}, "olderThan")


# --- JSON nesting ---------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    """A job whose payload nests ``depth`` arrays (so the body nests ``depth + 1`` levels)."""
    return b'{"task": "work", "payload": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [64, 980, 5000])
async def test_a_body_nested_past_64_levels_is_a_400_on_body_without_a_traceback(
    api: Api, caplog: pytest.LogCaptureFixture, depth: int
) -> None:
    caplog.set_level(logging.DEBUG)
    before = api.state()
    for path in ("/api/jobs", "/api/workflows/wf/schedule"):
        method = "POST" if path == "/api/jobs" else "PUT"
        status, body = await api.call(
            method, path, data=nested(depth), headers={"Content-Type": "application/json"}
        )
        assert status == 400, body
        assert body["error"]["field"] == "body"
        assert "at most 64 levels" in body["error"]["message"]
    assert api.state() == before
    assert_no_traceback(caplog)


async def test_a_payload_nested_63_levels_is_kept(api: Api) -> None:
    status, body = await api.call(
        "POST", "/api/jobs", data=nested(63), headers={"Content-Type": "application/json"}
    )
    assert status == 201, body


@pytest.mark.parametrize("number", [b"123456789012345678901234567890", b"-9223372036854775809"])
async def test_a_payload_integer_past_64_bits_is_a_400_naming_payload(
    api: Api, caplog: pytest.LogCaptureFixture, number: bytes
) -> None:
    # JSON allows it, but the journal cannot hold it: it used to be a 500 with a traceback.
    caplog.set_level(logging.DEBUG)
    before = api.state()
    data = b'{"task": "work", "payload": {"n": [' + number + b"]}}"
    status, body = await api.call(
        "POST", "/api/jobs", data=data, headers={"Content-Type": "application/json"}
    )
    assert status == 400, body
    assert body["error"]["field"] == "payload"
    assert api.state() == before
    assert_no_traceback(caplog)


# --- config.toml ----------------------------------------------------------------------------


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "cfg.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, known_tasks=["work"])
    return [line.replace(f"{path}: ", "") for line in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[[jobs]]\nname = "a"\ntask = "work"\nat = 0001-01-01T00:00:00\n', "jobs[0].at"),
        ('[[jobs]]\nname = "a"\ntask = "work"\nat = 9999-12-31T23:59:00-05:00\n', "jobs[0].at"),
        ('[[jobs]]\nname = "a"\ntask = "work"\ndelay = nan\n', "jobs[0].delay"),
        ('[[jobs]]\nname = "a"\ntask = "work"\ndelay = inf\n', "jobs[0].delay"),
        ('[[jobs]]\nname = "a"\ntask = "work"\nevery = 1e300\n', "jobs[0].every"),
        ('[[jobs]]\nname = "a"\ntask = "work"\ntimeout = "36501d"\n', "jobs[0].timeout"),
        ('[[jobs]]\nname = "a"\ntask = "work"\nretry = {delay = inf}\n', "jobs[0].retry.delay"),
        (
            '[[jobs]]\nname = "a"\ntask = "work"\npayload = ' + "[" * 70 + "]" * 70 + "\n",
            "jobs[0].payload",
        ),
        ("[retry]\ndelay = 1e300\n", "retry.delay"),
        ("[retry]\nmax_delay = inf\n", "retry.max_delay"),
        ("[retry]\ntimeout = nan\n", "retry.timeout"),
        ('[scheduler]\nretention = "36501d"\n', "scheduler.retention"),
        ("[scheduler]\nshutdown_grace = inf\n", "scheduler.shutdown_grace"),
        (
            '[tasks.t]\nkind = "http"\nurl = "http://x"\nmax_response_bytes = 1000000000\n',
            "tasks.t.max_response_bytes",
        ),
    ],
)
def test_config_refuses_them_naming_the_key(tmp_path: Path, text: str, field: str) -> None:
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    assert found[0].startswith(f"{field}: expected"), found


# --- the library API ------------------------------------------------------------------------


async def test_the_library_refuses_them_naming_the_key() -> None:
    sched = Scheduler(Config(), clock=FakeClock(T0), persistence=False, environ={})

    async def handler(payload: Any) -> None:
        return None

    sched.register_task("work", handler)
    cases: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        ({"delay": 1e300}, {}, "delay"),
        ({"at": "0001-01-01T00:00"}, {}, "at"),
        ({}, {"timeout": math.inf}, "timeout"),
        ({}, {"retry": {"max_delay": TOO_LONG}}, "retry.max_delay"),
    ]
    for schedule, options, field in cases:
        with pytest.raises(InvalidInput) as caught:
            await sched.create_task("work", schedule=schedule, **options)
        assert caught.value.field == field
    with pytest.raises(InvalidInput) as caught:
        sched.register_task("daily", handler, at="9999-12-31T23:59")
    assert caught.value.field == "at"
    with pytest.raises(InvalidInput) as caught:
        sched.register_task("deep", handler, every="1h", payload=_deep(70))
    assert caught.value.field == "payload"


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# --- properties -----------------------------------------------------------------------------

_durations = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.from_regex(r"\s*[0-9]{1,30}(\.[0-9]{1,5})?(ms|s|m|h|d|w)?\s*", fullmatch=True)
    | st.text(max_size=80)
)


@settings(max_examples=300, deadline=None)
@given(_durations)
def test_any_duration_is_refused_or_finite_and_in_range(value: object) -> None:
    try:
        seconds = parse_duration(value, field="d", allow_zero=True)
    except InvalidInput as error:
        problem: InvalidInput | None = error
    else:
        problem = None
        assert 0 <= seconds <= MAX_DURATION
    if problem is not None:
        assert problem.field == "d"


_zones = st.sampled_from(
    ["UTC", "Asia/Seoul", "Pacific/Kiritimati", "Etc/GMT+12", "America/New_York"]
)


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)),
    st.sampled_from(["", "Z", "+14:00", "-12:00", "+09:00"]),
    _zones,
)
def test_any_at_time_is_refused_or_runs_at_a_representable_instant(
    wall: datetime, offset: str, zone: str
) -> None:
    raw = {"schedule": {"at": wall.isoformat() + offset}, "timezone": zone}
    created = datetime(2030, 1, 1, tzinfo=UTC)
    try:
        spec = parse_job_input(raw, defaults=DEFAULTS, style="camel", created=created)
    except InvalidInput as error:
        assert error.field == "schedule.at"  # noqa: PT017 - the property is about this field
        return
    assert wall < LATEST
    assert msgspec.json.encode(spec)  # a spec that was accepted can be stored
