"""One job-input parser for the API (camelCase) and config [[jobs]] (snake_case)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from scheduler.config import Config, SchedulerConfig, job_defaults
from scheduler.errors import InvalidInput, InvalidSchedule, UnknownTask
from scheduler.jobspec import JobDefaults, JobSpec, parse_job_input, validate_job_input
from scheduler.model import (
    Backoff,
    Coalesce,
    MisfirePolicy,
    OnCrash,
    Overlap,
    Policy,
    Priority,
    RetryPolicy,
    Schedule,
)

DEFAULTS = JobDefaults(timezone="Asia/Seoul", retry=RetryPolicy())
CREATED = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)


def camel(raw: dict[str, Any], **kwargs: Any) -> JobSpec:
    return parse_job_input(raw, defaults=DEFAULTS, style="camel", created=CREATED, **kwargs)


def snake(raw: dict[str, Any], **kwargs: Any) -> JobSpec:
    return parse_job_input(raw, defaults=DEFAULTS, style="snake", created=CREATED, **kwargs)


def camel_error(raw: dict[str, Any], **kwargs: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        camel(raw, **kwargs)
    return caught.value


def snake_error(raw: dict[str, Any], **kwargs: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        snake(raw, **kwargs)
    return caught.value


def test_an_empty_api_job_is_immediate_with_every_default() -> None:
    assert camel({}) == JobSpec(timezone="Asia/Seoul")
    assert camel({}).policy == Policy()


def test_a_camel_case_job_reads_every_key() -> None:
    spec = camel(
        {
            "workflowId": "wf-1",
            "workflowName": "Welcome",
            "task": "send",
            "payload": {"email": "a@b.c"},
            "schedule": {"cron": "0 9 * * 1-5"},
            "timezone": "America/New_York",
            "priority": "critical",
            "retry": {"max": 5, "backoff": "fixed", "delay": "5s", "maxDelay": "1m", "jitter": 0},
            "timeout": "30s",
            "misfire": {"grace": "10m", "coalesce": "earliest"},
            "overlap": "allow",
            "onCrash": "abandon",
            "uniqueKey": "welcome:a@b.c",
        }
    )
    assert spec == JobSpec(
        task="send",
        payload={"email": "a@b.c"},
        schedule=Schedule(cron="0 9 * * 1-5"),
        timezone="America/New_York",
        priority=Priority.CRITICAL,
        policy=Policy(
            retry=RetryPolicy(max=5, backoff=Backoff.FIXED, delay=5, max_delay=60, jitter=0),
            timeout=30,
            misfire=MisfirePolicy(grace=600, coalesce=Coalesce.EARLIEST),
            overlap=Overlap.ALLOW,
            on_crash=OnCrash.ABANDON,
        ),
        workflow_id="wf-1",
        workflow_name="Welcome",
        unique_key="welcome:a@b.c",
    )


def test_a_snake_case_job_has_its_schedule_keys_inline() -> None:
    spec = snake(
        {
            "name": "nightly",
            "task": "backup",
            "workflow_id": "wf-2",
            "every": "1h",
            "timezone": "Europe/Berlin",
            "retry": {"max_delay": "1h"},
            "on_crash": "abandon",
            "unique_key": "k",
        }
    )
    assert spec.name == "nightly"
    assert spec.schedule == Schedule(every=3600)
    assert spec.timezone == "Europe/Berlin"
    assert spec.policy.retry == RetryPolicy(max_delay=3600)
    assert spec.policy.on_crash is OnCrash.ABANDON
    assert (spec.workflow_id, spec.unique_key) == ("wf-2", "k")


def test_omitted_policies_come_from_the_defaults() -> None:
    defaults = JobDefaults(timezone="Europe/Berlin", retry=RetryPolicy(max=9, delay=1.0))
    spec = parse_job_input(
        {"retry": {"jitter": 0.5}}, defaults=defaults, style="camel", created=CREATED
    )
    assert spec.timezone == "Europe/Berlin"
    assert spec.policy.retry == RetryPolicy(max=9, delay=1.0, jitter=0.5)
    assert spec.policy.timeout is None  # the task's, else [retry] timeout, when it runs


def test_a_null_timeout_is_the_same_as_none_given() -> None:
    spec = parse_job_input({"timeout": None}, defaults=DEFAULTS, style="camel")
    assert spec.policy.timeout is None


def test_max_retries_is_shorthand_for_retry_max() -> None:
    assert camel({"maxRetries": 0}).policy.retry == RetryPolicy(max=0)
    assert snake({"max_retries": 1}).policy.retry == RetryPolicy(max=1)


def test_max_retries_and_retry_max_together_are_an_error() -> None:
    error = camel_error({"maxRetries": 1, "retry": {"max": 2}})
    assert error.field == "maxRetries"
    assert error.message == "maxRetries: give either maxRetries or retry.max, not both"


def test_a_bad_enum_names_the_choices_and_the_value() -> None:
    error = camel_error({"priority": "urgent"})
    assert error.field == "priority"
    assert error.message == "priority: expected one of critical, high, normal, low, got 'urgent'"


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        pytest.param(
            {"retry": {"maxDelay": "soon"}},
            "retry.maxDelay",
            "retry.maxDelay: expected a duration like '90s', '15m', '2h' or '1d', got 'soon'",
            id="retry-max-delay",
        ),
        pytest.param(
            {"retry": {"delay": "1m", "maxDelay": "1s"}},
            "retry.maxDelay",
            "retry.maxDelay: expected at least the retry delay (60s), got 1s",
            id="retry-cap-below-delay",
        ),
        pytest.param(
            {"retry": {"max_delay": "1m"}},
            "retry.max_delay",
            "retry.max_delay: unknown key; did you mean 'maxDelay'?",
            id="retry-snake-key-in-camel",
        ),
        pytest.param(
            {"retry": 3},
            "retry",
            "retry: expected a table of keys and values, got 3",
            id="retry-not-a-table",
        ),
        pytest.param(
            {"maxRetries": True},
            "maxRetries",
            "maxRetries: expected an integer from 0 to 1000, got true",
            id="max-retries-bool",
        ),
        pytest.param(
            {"workflow_id": "x"},
            "workflow_id",
            "workflow_id: unknown key; did you mean 'workflowId'?",
            id="snake-key-in-camel",
        ),
        pytest.param(
            {"workflowId": ""},
            "workflowId",
            "workflowId: expected a non-empty string, got ''",
            id="empty-string",
        ),
        pytest.param(
            {"timeout": "never"},
            "timeout",
            "timeout: expected a duration like '90s', '15m', '2h' or '1d', got 'never'",
            id="timeout",
        ),
        pytest.param(
            {"misfire": {"grace": "-1s"}},
            "misfire.grace",
            "misfire.grace: expected a duration like '90s', '15m', '2h' or '1d', got '-1s'",
            id="misfire-grace",
        ),
        pytest.param(
            {"onCrash": "retry"},
            "onCrash",
            "onCrash: expected one of rerun, abandon, got 'retry'",
            id="on-crash",
        ),
        pytest.param(
            {"overlap": 1},
            "overlap",
            "overlap: expected one of skip, buffer_one, allow, cancel_other, got 1",
            id="overlap",
        ),
    ],
)
def test_a_bad_camel_key_names_its_path_and_what_was_expected(
    raw: dict[str, Any], field: str, message: str
) -> None:
    error = camel_error(raw)
    assert (error.field, error.message) == (field, message)


def test_a_bad_snake_key_names_its_path_under_the_prefix() -> None:
    error = snake_error({"retry": {"max_delay": "soon"}}, prefix="jobs[3].")
    assert error.field == "jobs[3].retry.max_delay"
    assert error.message.startswith("jobs[3].retry.max_delay: expected a duration")


def test_a_bad_schedule_names_the_schedule_key_in_each_style() -> None:
    api = camel_error({"schedule": {"cron": "61 * * * *"}})
    assert isinstance(api, InvalidSchedule)
    assert api.field == "schedule.cron"
    toml = snake_error({"cron": "61 * * * *"}, prefix="jobs[2].")
    assert isinstance(toml, InvalidSchedule)
    assert toml.field == "jobs[2].cron"
    assert toml.message.startswith("jobs[2].cron: ")


def test_a_schedule_object_is_not_a_snake_key() -> None:
    error = snake_error({"schedule": {"cron": "@daily"}}, prefix="jobs[0].")
    assert error.field == "jobs[0].schedule"
    assert "unknown key" in error.message


def test_inline_schedule_keys_are_not_camel_keys() -> None:
    error = camel_error({"cron": "@daily"})
    assert error.field == "cron"
    assert "unknown key" in error.message


def test_the_zone_may_be_named_inside_the_schedule_or_beside_it() -> None:
    inside = camel({"schedule": {"cron": "@daily", "timezone": "Europe/Berlin"}})
    beside = camel({"schedule": {"cron": "@daily"}, "timezone": "Europe/Berlin"})
    both = camel({"schedule": {"cron": "@daily", "timezone": "UTC"}, "timezone": "UTC"})
    assert (inside.timezone, beside.timezone, both.timezone) == ("Europe/Berlin",) * 2 + ("UTC",)


def test_two_different_zones_are_an_error() -> None:
    error = camel_error(
        {"schedule": {"cron": "@daily", "timezone": "Europe/Berlin"}, "timezone": "Asia/Seoul"}
    )
    assert error.field == "schedule.timezone"
    assert error.message == (
        "schedule.timezone: expected the same zone as timezone ('Asia/Seoul') or none,"
        " got 'Europe/Berlin'"
    )


def test_an_unknown_zone_names_the_timezone_key() -> None:
    error = camel_error({"timezone": "Mars/Olympus"})
    assert error.field == "timezone"
    assert "Mars/Olympus" in error.message


def test_with_known_tasks_an_unknown_task_is_rejected() -> None:
    error = camel_error({"task": "rm-rf"}, tasks={"hello", "workflow"})
    assert isinstance(error, UnknownTask)
    assert error.field == "task"
    assert error.message == (
        "task: expected a task defined in config or registered in code (hello, workflow),"
        " got 'rm-rf'"
    )


def test_with_known_tasks_no_task_means_the_workflow_task() -> None:
    assert camel({"workflowId": "wf"}, tasks={"workflow"}).task == "workflow"
    error = camel_error({"workflowId": "wf"}, tasks={"hello"})
    assert isinstance(error, UnknownTask)
    assert error.field == "task"


def test_without_known_tasks_the_task_is_left_for_the_caller() -> None:
    assert camel({}).task is None
    assert camel({"task": "anything"}).task == "anything"


def test_every_problem_of_a_job_is_collected() -> None:
    spec, problems = validate_job_input(
        {"priority": "urgent", "overlap": "never", "retry": {"jitter": 5}, "colour": "red"},
        defaults=DEFAULTS,
        style="camel",
    )
    assert spec is None
    assert sorted(p.field or "" for p in problems) == [
        "colour",
        "overlap",
        "priority",
        "retry.jitter",
    ]


def test_a_job_that_is_not_an_object_is_one_problem() -> None:
    spec, problems = validate_job_input(
        ["cron"], defaults=DEFAULTS, style="snake", prefix="jobs[4]."
    )
    assert spec is None
    assert [(p.field, p.message) for p in problems] == [
        ("jobs[4]", "jobs[4]: expected an object of job keys, got an array")
    ]


def test_job_defaults_are_built_from_a_config() -> None:
    config = Config(
        scheduler=SchedulerConfig(timezone="UTC"), retry=RetryPolicy(max=1), default_timeout=5.0
    )
    assert job_defaults(config) == JobDefaults(timezone="UTC", retry=RetryPolicy(max=1))


def test_a_null_key_is_omitted_unless_null_means_something() -> None:
    spec = camel(
        {"workflowName": None, "priority": None, "schedule": None, "misfire": {"grace": None}},
        tasks={"workflow"},
    )
    assert spec == JobSpec(task="workflow", timezone="Asia/Seoul")


def test_a_bad_task_is_reported_once_not_also_as_unknown() -> None:
    _, problems = validate_job_input(
        {"task": 7}, defaults=DEFAULTS, style="camel", tasks={"workflow"}
    )
    assert [p.message for p in problems] == ["task: expected a non-empty string, got 7"]


def test_a_schedule_is_compiled_in_the_jobs_own_zone() -> None:
    # The local end is after the start in UTC and in Berlin, but before it in Seoul.
    schedule = {"every": "1h", "start": "2026-01-01T10:00+09:00", "end": "2026-01-01T05:00"}
    assert camel({"schedule": schedule, "timezone": "Europe/Berlin"}).schedule.end is not None
    error = camel_error({"schedule": schedule, "timezone": "Asia/Seoul"})
    assert isinstance(error, InvalidSchedule)
    assert error.field == "schedule.end"


def test_without_a_prefix_inline_schedule_keys_are_named_as_written() -> None:
    error = snake_error({"cron": "61 * * * *"})
    assert error.field == "cron"
    assert error.message.startswith("cron: ")
