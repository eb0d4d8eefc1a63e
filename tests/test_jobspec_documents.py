"""A job's document is written in one place (views.job_document): the API's job and the input
that recreates a job (what a PATCH merges over) are both that rendering, and the input, read
back by the one job parser, gives the job's definition exactly."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.api.inputs import INPUT_KEYS, READ_ONLY, WRITABLE, job_input, merge_patch
from scheduler.jobspec import JobDefaults, JobSpec, parse_job_input
from scheduler.model import (
    Backoff,
    Coalesce,
    Job,
    JobStatus,
    MisfirePolicy,
    OnCrash,
    Overlap,
    Policy,
    Priority,
    RetryPolicy,
    Schedule,
)
from scheduler.views import JOB_KEYS, job_json

#: Defaults unlike any job below, so that one creeping back in would show.
DEFAULTS = JobDefaults(
    timezone="Pacific/Chatham", retry=RetryPolicy(max=9, delay=7.0, max_delay=7.0)
)
seconds = st.floats(min_value=0.001, max_value=86400.0 * 400, allow_nan=False)
names = st.one_of(st.none(), st.text("abcxyz-", min_size=1, max_size=8))
schedules = st.sampled_from(
    [
        Schedule(),
        Schedule(delay=0.0),
        Schedule(delay=1.0 / 3),
        Schedule(at="2027-03-01T09:00:00"),
        Schedule(every=12345.678),
        Schedule(every=3600.0, start="2026-11-01T00:00:00"),
        Schedule(cron="0 9 * * 1-5"),
        Schedule(rrule="FREQ=DAILY;COUNT=3"),
    ]
)


@st.composite
def retries(draw: st.DrawFn) -> RetryPolicy:
    delay = draw(seconds)
    return RetryPolicy(
        max=draw(st.integers(0, 1000)),
        backoff=draw(st.sampled_from(Backoff)),
        delay=delay,
        max_delay=delay + draw(st.floats(0, 1e6)),
        jitter=draw(st.floats(0, 1)),
    )


policies = st.builds(
    Policy,
    retry=retries(),
    timeout=st.one_of(st.none(), seconds),
    misfire=st.builds(
        MisfirePolicy,
        grace=st.one_of(st.none(), st.just(0.0), seconds),
        coalesce=st.sampled_from(Coalesce),
    ),
    overlap=st.sampled_from(Overlap),
    on_crash=st.sampled_from(OnCrash),
)
jobs = st.builds(
    Job,
    id=st.integers(1, 2**62),
    task=st.sampled_from(["work", "other"]),
    payload=st.one_of(st.none(), st.integers(-(2**63), 2**63), st.lists(st.text(max_size=3))),
    schedule=schedules,
    timezone=st.sampled_from(["Asia/Seoul", "America/New_York", "UTC"]),
    workflow_id=names,
    workflow_name=names,
    name=names,
    status=st.sampled_from(JobStatus),
    priority=st.sampled_from(Priority),
    policy=policies,
    unique_key=names,
)


def definition(value: Job | JobSpec) -> dict[str, Any]:
    return {field: getattr(value, field) for field in JobSpec.__struct_fields__}


@settings(max_examples=150, deadline=None)
@given(job=jobs)
def test_a_jobs_input_read_back_is_its_definition_to_the_last_digit(job: Job) -> None:
    spec = parse_job_input(
        job_input(job), defaults=DEFAULTS, style="camel", tasks=["work", "other"]
    )
    assert definition(spec) == definition(job)


@settings(max_examples=50, deadline=None)
@given(job=jobs)
def test_an_empty_patch_changes_nothing(job: Job) -> None:
    spec = parse_job_input(merge_patch(job, {}), defaults=DEFAULTS, style="camel")
    assert definition(spec) == definition(job)


@settings(max_examples=50, deadline=None)
@given(job=jobs)
def test_the_document_and_the_input_are_the_same_rendering(job: Job) -> None:
    doc, given_input = job_json(job), job_input(job)
    assert tuple(doc) == JOB_KEYS
    assert set(given_input) <= set(INPUT_KEYS) <= set(JOB_KEYS)
    for key in ("task", "payload", "timezone", "priority", "overlap", "onCrash", "uniqueKey"):
        if key in given_input:
            assert given_input[key] == doc[key]


def test_every_key_of_the_document_is_either_writable_or_read_only() -> None:
    assert set(JOB_KEYS) == READ_ONLY | WRITABLE
    assert not READ_ONLY & WRITABLE
