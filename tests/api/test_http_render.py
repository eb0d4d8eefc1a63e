"""Rendering never fails: one stored job with an absurd instant, duration or zone must not turn
the job, the list or the status card into a 500 (nor the card into an ``error`` document)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from scheduler.model import Job, JobStatus, Outcome, Policy, RetryPolicy, Run, Schedule
from scheduler.views import iso, job_json, run_json
from tests.api.harness import Api

ABSURD = [1e18, -1e18, math.inf, -math.inf, math.nan, 253402300800.0, 1e308]


def stored(api: Api, **fields: Any) -> Job:
    """A job put straight into the store, as recovery or a remote system could leave it."""
    job_id = api.sched.service.ids.next(api.clock.time())
    job = Job(id=job_id, task="work", timezone="Asia/Seoul", **fields)
    api.sched.store.put(job)
    return job


@pytest.mark.parametrize("instant", ABSURD, ids=repr)
async def test_an_absurd_instant_renders_in_the_card_the_job_and_the_list(
    api: Api, instant: float
) -> None:
    job = stored(
        api,
        schedule=Schedule(at="2030-01-08T09:00"),
        scheduled=instant,
        executed=instant,
        completed=instant,
        paused_until=instant,
    )
    api.sched.store.add_run(
        Run(job_id=job.id, fire=instant, attempt=1, outcome=Outcome.ERROR, started=instant)
    )
    status, card = await api.call("GET", "/api/scheduler")
    assert status == 200, card
    assert "error" not in card
    assert card["totalJobs"] == 1
    ident = format(job.id, "016x")
    for path in (f"/api/jobs/{ident}", "/api/jobs", f"/api/jobs/{ident}/runs"):
        status, body = await api.call("GET", path)
        assert status == 200, (path, body)


async def test_a_job_past_year_9999_is_shown_at_the_end_of_time(api: Api) -> None:
    job = stored(api, schedule=Schedule(at="2030-01-08T09:00"), scheduled=1e18)
    _, card = await api.call("GET", "/api/scheduler")
    assert card["nextJob"]["scheduledTime"].startswith("9999-12-")
    _, body = await api.call("GET", f"/api/jobs/{format(job.id, '016x')}")
    assert body["scheduledTime"] == card["nextJob"]["scheduledTime"]


async def test_absurd_durations_and_a_vanished_zone_render(api: Api) -> None:
    policy = Policy(retry=RetryPolicy(delay=math.inf, max_delay=math.nan), timeout=-1.0)
    job = stored(api, schedule=Schedule(delay=1e300), policy=policy, scheduled=1e18)
    job = replace(job, timezone="Mars/Olympus_Mons")
    api.sched.store.put(job)
    status, body = await api.call("GET", f"/api/jobs/{format(job.id, '016x')}")
    assert status == 200, body
    assert body["scheduledTime"].endswith("+00:00")  # an unknown zone renders in UTC
    assert body["retry"]["delay"] == "infs"
    status, card = await api.call("GET", "/api/scheduler")
    assert (status, "error" in card) == (200, False)


@settings(max_examples=300, deadline=None)
@given(
    instant=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    zone=st.sampled_from(["Asia/Seoul", "Pacific/Kiritimati", "Etc/GMT+12", "UTC", "Nope/Nope"]),
)
def test_iso_renders_any_float_in_any_zone(instant: float | None, zone: str) -> None:
    text = iso(instant, zone)
    if instant is None or math.isnan(instant):
        assert text is None
        return
    assert text is not None
    assert 1969 <= datetime.fromisoformat(text).year <= 9999


@settings(max_examples=100, deadline=None)
@given(
    value=st.floats(allow_nan=True, allow_infinity=True),
    status=st.sampled_from(list(JobStatus)),
)
def test_a_job_and_its_run_render_whatever_floats_they_hold(
    value: float, status: JobStatus
) -> None:
    job = Job(
        id=1,
        task="t",
        timezone="Asia/Seoul",
        status=status,
        schedule=Schedule(every=abs(value) if not math.isnan(value) else 1.0),
        scheduled=value,
        executed=value,
        policy=Policy(retry=RetryPolicy(delay=value, max_delay=value), timeout=value),
    )
    doc = job_json(job)
    assert doc["status"] == status.value
    run = Run(job_id=1, fire=value, attempt=1, outcome=Outcome.SUCCESS, started=value, ended=value)
    assert run_json(run, "Asia/Seoul")["outcome"] == "success"
