"""``GET /api/jobs/{id}/explain``: each reason set up for real over the API on the FakeClock,
then asked about the way an operator would (issue 15, part 1). Restarts (the daemon down,
quarantine) are in test_explain_restart.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from scheduler.api.openapi import document
from scheduler.config import Config, SchedulerConfig
from scheduler.engine.queue import TaskRuntime
from scheduler.maintenance import WindowSpec
from scheduler.runtime.library import Scheduler
from tests.api.harness import T0, Api, seoul, serving
from tests.fakes import FakeClock

MINUTE = 60.0
HOUR = 3600.0
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@asynccontextmanager
async def explain_api(clock: FakeClock | None = None, **settings: Any) -> AsyncIterator[Api]:
    """The API around a scheduler with ``settings`` ([scheduler] keys, ``maintenance``), on
    ``clock``: tasks ``work`` (returns), ``gated`` (until ``api.gate`` is set), ``broken``
    (raises) and ``single`` (gated, one at a time)."""
    clock = clock or FakeClock(T0)
    windows = settings.pop("maintenance", ())
    config = Config(scheduler=SchedulerConfig(**settings), maintenance=windows)
    sched = Scheduler(config, clock=clock, persistence=False, environ={})

    def single(api: Api) -> None:
        async def gated(payload: Any) -> Any:
            await api.gate.wait()
            return {"gated": True}

        sched.register_task("single", gated, concurrency=1)

    async with serving(sched, before_start=single) as api:
        yield api


async def explain(api: Api, job_id: str) -> dict[str, Any]:
    """The answer, checked against the OpenAPI document as every answer of the API is."""
    status, body = await api.call("GET", f"/api/jobs/{job_id}/explain")
    assert status == 200, body
    doc = document()
    schema = doc["paths"]["/api/jobs/{id}/explain"]["get"]["responses"]["200"]["content"]
    root = {"components": doc["components"], **schema["application/json"]["schema"]}
    Draft202012Validator(root, format_checker=FormatChecker()).validate(body)
    assert body["jobId"] == job_id
    summary = body["summary"]
    assert summary.endswith("."), summary
    assert ". " not in summary, summary  # one sentence
    assert "\n" not in summary, summary
    return dict(body)


def codes(body: dict[str, Any]) -> list[str]:
    return [reason["code"] for reason in body["reasons"]]


def reason(body: dict[str, Any], code: str) -> dict[str, Any]:
    found = [r for r in body["reasons"] if r["code"] == code]
    assert found, (code, body)
    return dict(found[0])


# --- a job simply waiting, and an unknown one ------------------------------------------------


async def test_a_job_waiting_for_its_next_time_has_no_reason_and_the_summary_says_when(
    api: Api,
) -> None:
    job = await api.create(schedule={"every": "1h"})
    body = await explain(api, job["id"])
    assert body == {
        "jobId": job["id"],
        "status": "pending",
        "summary": f"Job 'work' runs next at {seoul(T0 + HOUR)}.",
        "lastExpected": None,
        "nextRun": seoul(T0 + HOUR),
        "timezone": "Asia/Seoul",
        "reasons": [],
    }
    await api.clock.advance(HOUR)
    body = await explain(api, job["id"])
    assert (body["lastExpected"], body["nextRun"]) == (seoul(T0 + HOUR), seoul(T0 + 2 * HOUR))
    assert body["reasons"] == []


async def test_an_unknown_or_malformed_id_is_a_404_like_every_job_route(api: Api) -> None:
    for job_id in ("0000000000000001", "nope"):
        status, body = await api.call("GET", f"/api/jobs/{job_id}/explain")
        assert status == 404
        assert body["error"]["code"] == "not_found"
        assert body["error"]["field"] == "id"


# --- what holds a job now --------------------------------------------------------------------


async def test_a_paused_job_says_who_why_and_until_when(api: Api) -> None:
    job = await api.create(schedule={"every": "1h"})
    until = datetime.fromtimestamp(T0 + 150 * MINUTE, ZoneInfo("Asia/Seoul"))
    status, paused_job = await api.call(
        "POST",
        f"/api/jobs/{job['id']}/pause",
        json={"until": until.isoformat(), "reason": "deploy", "by": "  alice  "},
    )
    assert status == 200
    assert paused_job["pausedBy"] == "alice"
    body = await explain(api, job["id"])
    assert body["status"] == "paused"
    assert codes(body) == ["paused"]
    paused = reason(body, "paused")
    assert paused["details"] == {
        "by": "alice",
        "reason": "deploy",
        "until": seoul(T0 + 150 * MINUTE),
    }
    assert body["nextRun"] == seoul(T0 + 3 * HOUR)  # the first occurrence at or after until
    assert body["summary"] == (
        f"Job 'work' runs next at {seoul(T0 + 3 * HOUR)} because it was paused by alice until "
        f"{seoul(T0 + 150 * MINUTE)} (reason: 'deploy')."
    )
    status, _ = await api.call("POST", f"/api/jobs/{job['id']}/pause", json={})
    body = await explain(api, job["id"])
    assert body["nextRun"] is None
    assert reason(body, "paused")["details"]["by"] is None  # a new pause, by nobody named
    assert body["summary"] == ("Job 'work' will not run until it is resumed because it was paused.")
    status, resumed = await api.call("POST", f"/api/jobs/{job['id']}/resume", json={})
    assert (status, resumed["pausedBy"], resumed["pauseReason"]) == (200, None, None)


@pytest.mark.parametrize("by", ["", "   ", "x" * 101, "two\nlines", 7])
async def test_a_pause_by_that_is_not_a_short_name_is_refused_naming_the_field(
    api: Api, by: object
) -> None:
    job = await api.create(schedule={"every": "1h"})
    status, body = await api.call("POST", f"/api/jobs/{job['id']}/pause", json={"by": by})
    assert status == 400, body
    assert body["error"]["field"] == "by"


async def test_a_due_job_of_a_paused_scheduler_says_the_scheduler_is_paused(api: Api) -> None:
    status, _ = await api.call("POST", "/api/scheduler/pause")
    assert status == 200
    job = await api.create()
    await api.clock.advance(MINUTE)
    body = await explain(api, job["id"])
    assert codes(body) == ["scheduler_paused"]
    assert body["summary"] == (
        f"Job 'work' was due at {seoul(T0)} and has not started because the whole scheduler "
        "is paused."
    )
    await api.call("POST", "/api/scheduler/resume")
    await api.clock.advance(0)
    body = await explain(api, job["id"])
    assert body["status"] == "completed"
    assert codes(body) == ["no_next_run"]


async def test_runs_due_at_one_instant_under_the_global_limit_say_how_many_are_ahead() -> None:
    async with explain_api(max_concurrency=1) as api:
        holder = await api.create(task="gated")
        await api.run_until_running(holder["id"])
        jobs = [await api.create(schedule={"delay": "1m"}) for _ in range(3)]
        await api.clock.advance(MINUTE)
        for ahead, job in enumerate(jobs):
            body = await explain(api, job["id"])
            assert codes(body) == ["waiting_for_slot"]
            waiting = reason(body, "waiting_for_slot")
            assert waiting["details"] == {"limit": "global", "ahead": ahead, "running": 1, "max": 1}
            assert f"{ahead} run{'' if ahead == 1 else 's'} ahead of it" in body["summary"]
            assert "max_concurrency" in body["summary"]
        holder_body = await explain(api, holder["id"])
        assert holder_body["status"] == "running"
        assert holder_body["summary"] == "Job 'gated' is running."
        api.gate.set()
        await api.clock.advance(0)
        assert [(await explain(api, job["id"]))["status"] for job in jobs] == ["completed"] * 3
        assert len(api.calls) == 3


async def test_runs_held_by_their_tasks_concurrency_say_so_with_their_place() -> None:
    async with explain_api() as api:
        jobs = [await api.create(task="single", schedule={"delay": "1m"}) for _ in range(3)]
        await api.clock.advance(MINUTE)
        assert (await explain(api, jobs[0]["id"]))["status"] == "running"
        for ahead, job in enumerate(jobs[1:]):
            body = await explain(api, job["id"])
            waiting = reason(body, "waiting_for_slot")
            assert waiting["details"] == {
                "limit": "task",
                "task": "single",
                "ahead": ahead,
                "running": 1,
                "max": 1,
            }
            assert "task 'single'" in body["summary"]


async def test_a_run_held_by_its_tasks_rate_limit_says_until_when() -> None:
    async with explain_api() as api:
        executor = api.sched.runtimes["work"].executor
        api.sched.runtimes["limited"] = TaskRuntime(executor, rate_limit=(1, MINUTE))
        first = await api.create(task="limited", schedule={"delay": "1m"})
        second = await api.create(task="limited", schedule={"delay": "1m"})
        await api.clock.advance(MINUTE)
        assert (await explain(api, first["id"]))["status"] == "completed"
        body = await explain(api, second["id"])
        assert codes(body) == ["rate_limited"]
        limited = reason(body, "rate_limited")
        assert limited["details"] == {
            "task": "limited",
            "until": seoul(T0 + 2 * MINUTE),
            "count": 1,
            "per": MINUTE,
            "ahead": 0,
        }
        assert body["summary"] == (
            f"Job 'limited' was due at {seoul(T0 + MINUTE)} and has not started because task "
            f"'limited' has reached its rate limit until {seoul(T0 + 2 * MINUTE)}."
        )
        await api.clock.advance(MINUTE + 1)  # the window frees a hair after a minute
        assert (await explain(api, second["id"]))["status"] == "completed"


async def test_a_job_due_inside_a_maintenance_window_names_it_and_its_end() -> None:
    backup = WindowSpec(
        name="backup", cron="0 10 * * *", duration=HOUR, timezone="Asia/Seoul", tasks=("work",)
    )
    async with explain_api(maintenance=(backup,)) as api:
        job = await api.create(schedule={"at": "2030-01-07T10:30:00"})
        window = {"window": "backup", "from": seoul(T0 + HOUR), "until": seoul(T0 + 2 * HOUR)}
        body = await explain(api, job["id"])  # 09:00: its run will fall in the window
        assert codes(body) == ["maintenance"]
        assert reason(body, "maintenance")["details"] == window
        assert "falls in maintenance window 'backup'" in body["summary"]
        await api.clock.advance(90 * MINUTE)  # 10:30: due, held
        body = await explain(api, job["id"])
        assert codes(body) == ["maintenance"]
        assert reason(body, "maintenance")["details"] == window
        assert body["summary"] == (
            f"Job 'work' was due at {seoul(T0 + 90 * MINUTE)} and has not started because "
            f"maintenance window 'backup' is open until {seoul(T0 + 2 * HOUR)}."
        )
        assert api.calls == []
        await api.clock.advance(30 * MINUTE)  # 11:00: the window closes, the job runs
        await api.clock.advance(0)
        body = await explain(api, job["id"])
        assert body["status"] == "completed"
        assert codes(body) == ["no_next_run"]


async def test_a_failed_attempt_waiting_for_its_retry_says_which_attempt_and_when(api: Api) -> None:
    retry = {"max": 3, "backoff": "fixed", "delay": "1m", "jitter": 0}
    job = await api.create(task="broken", retry=retry)
    await api.clock.advance(0)
    body = await explain(api, job["id"])
    assert codes(body) == ["retry_backoff"]
    backoff = reason(body, "retry_backoff")["details"]
    assert backoff == {
        "attempt": 2,
        "at": seoul(T0 + MINUTE),
        "fire": seoul(T0),
        "maxRetries": 3,
        "error": "RuntimeError: broken on purpose",
    }
    assert body["lastExpected"] == seoul(T0)
    assert body["summary"] == (
        f"Job 'broken' runs next at {seoul(T0 + MINUTE)} because attempt 1 failed and attempt 2 "
        f"waits for its backoff until {seoul(T0 + MINUTE)}."
    )


# --- what happened to runs that were due --------------------------------------------------------


async def test_an_occurrence_skipped_by_overlap_is_told_until_a_later_one_runs(api: Api) -> None:
    job = await api.create(task="gated", schedule={"every": "1m"})
    await api.clock.advance(MINUTE)
    await api.run_until_running(job["id"])
    await api.clock.advance(MINUTE)
    body = await explain(api, job["id"])
    assert codes(body) == ["overlap_skipped"]
    assert reason(body, "overlap_skipped")["details"] == {
        "at": seoul(T0 + 2 * MINUTE),
        "overlap": "skip",
    }
    assert body["summary"] == (
        f"Job 'gated' is running, but its run of {seoul(T0 + 2 * MINUTE)} was skipped because "
        "the previous run was still running (overlap=skip)."
    )
    api.gate.set()
    await api.clock.advance(MINUTE)
    await api.clock.advance(0)
    assert (await explain(api, job["id"]))["reasons"] == []


async def test_runs_missed_past_their_grace_while_the_scheduler_was_paused(api: Api) -> None:
    job = await api.create(schedule={"every": "1m"}, misfire={"grace": "10s"})
    await api.call("POST", "/api/scheduler/pause")
    await api.clock.advance(5.5 * MINUTE)
    await api.call("POST", "/api/scheduler/resume")
    await api.clock.advance(0)
    body = await explain(api, job["id"])
    assert codes(body) == ["misfired"]
    details = reason(body, "misfired")["details"]
    assert details == {
        "from": seoul(T0 + MINUTE),
        "to": seoul(T0 + 5 * MINUTE),
        "count": 5,
        "daemonDown": False,
        "grace": 10.0,
        "coalesce": "latest",
        "recordedAt": seoul(T0 + 5.5 * MINUTE),
    }
    assert body["summary"].startswith(
        f"Job 'work' runs next at {seoul(T0 + 6 * MINUTE)}, but 5 runs from "
        f"{seoul(T0 + MINUTE)} to {seoul(T0 + 5 * MINUTE)} were missed because"
    )
    assert api.calls == []


DST_CASES = [
    pytest.param(
        datetime(2026, 3, 28, 12, tzinfo=BERLIN),
        "Europe/Berlin",
        {"cron": "30 2 * * *"},
        {"kind": "gap", "rule": "next", "at": "2026-03-29T03:00:00.000+02:00", "skipped": False},
        "2026-03-29T03:00:00.000+02:00",
        id="berlin-cron-gap-runs-when-the-gap-ends",
    ),
    pytest.param(
        datetime(2026, 3, 28, 12, tzinfo=BERLIN),
        "Europe/Berlin",
        {"rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=30;BYSECOND=0"},
        {"kind": "gap", "rule": "shift", "at": "2026-03-29T03:30:00.000+02:00", "skipped": False},
        "2026-03-29T03:30:00.000+02:00",
        id="berlin-rrule-gap-shifts-by-the-gap",
    ),
    pytest.param(
        datetime(2026, 3, 28, 12, tzinfo=BERLIN),
        "Europe/Berlin",
        {"cron": "30 2 * * *", "dst": {"gap": "skip"}},
        {"kind": "gap", "rule": "skip", "at": "2026-03-29T03:00:00.000+02:00", "skipped": True},
        "2026-03-30T02:30:00.000+02:00",
        id="berlin-cron-gap-skip-skips-that-day",
    ),
    pytest.param(
        datetime(2026, 10, 31, 12, tzinfo=NEW_YORK),
        "America/New_York",
        {"cron": "30 1 * * *"},
        {"kind": "fold", "rule": "first", "at": "2026-11-01T01:30:00.000-04:00", "skipped": False},
        "2026-11-01T01:30:00.000-04:00",
        id="new-york-cron-fold-runs-the-first",
    ),
]


@pytest.mark.parametrize(("start", "zone", "schedule", "details", "next_run"), DST_CASES)
async def test_a_run_on_a_dst_change_says_which_rule_moved_it(
    start: datetime, zone: str, schedule: dict[str, Any], details: dict[str, Any], next_run: str
) -> None:
    async with explain_api(FakeClock(start), timezone=zone) as api:
        job = await api.create(schedule=schedule, timezone=zone)
        body = await explain(api, job["id"])
        assert body["nextRun"] == next_run
        assert codes(body) == ["dst_shifted"]
        shifted = reason(body, "dst_shifted")
        assert shifted["details"] == details
        way = "back" if details["kind"] == "fold" else "forward"
        assert f"the clocks go {way}" in shifted["message"]
        assert f"in {zone}" in shifted["message"]
        assert f"{details['kind']}={details['rule']}" in body["summary"]


# --- jobs with nothing left to run -------------------------------------------------------------


async def test_a_rule_ended_by_its_count_says_so_with_its_last_run(api: Api) -> None:
    job = await api.create(schedule={"repeat": {"freq": "daily", "time": "10:00", "count": 2}})
    await api.clock.advance(26 * HOUR)
    body = await explain(api, job["id"])
    assert body["status"] == "completed"
    assert body["nextRun"] is None
    assert codes(body) == ["rule_ended"]
    last = seoul(T0 + 25 * HOUR)
    assert reason(body, "rule_ended")["details"] == {"count": 2, "until": None, "last": last}
    assert body["summary"] == (
        "Job 'work' will not run again because its rule has ended (its count of 2 runs)."
    )
    assert len(api.calls) == 2


async def test_a_cancelled_or_finished_one_off_job_has_no_next_run(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"})
    await api.call("POST", f"/api/jobs/{job['id']}/cancel")
    body = await explain(api, job["id"])
    assert codes(body) == ["no_next_run"]
    assert reason(body, "no_next_run")["details"] == {"status": "cancelled", "at": seoul(T0)}
    assert (
        body["summary"] == f"Job 'work' will not run again because it was cancelled at {seoul(T0)}."
    )
    done = await api.create()
    await api.clock.advance(0)
    body = await explain(api, done["id"])
    assert reason(body, "no_next_run")["details"] == {"status": "completed", "at": seoul(T0)}
    assert "a one-off job runs once" in body["summary"]
