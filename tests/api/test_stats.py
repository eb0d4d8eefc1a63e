"""``GET /api/stats`` through the in-process API on a FakeClock: the hour buckets count what
the run histories hold (outcomes, lateness p50/p99) hour by hour, a restart counts the stored
runs again and exactly once, ``hours`` is checked, and the upcoming lanes are the jobs' own
next run times (the ones ``/next`` gives) across a DST day, soonest first and bounded."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator, FormatChecker

from scheduler.api.app import create_app
from scheduler.api.openapi import document
from scheduler.config import Config, PersistenceConfig, SchedulerConfig
from scheduler.model import FsyncMode, Outcome
from scheduler.observability.stats import MAX_LANES, bin_edge
from scheduler.runtime.library import Scheduler
from tests.api.harness import T0, Api, app_for, daemon_state
from tests.fakes import FakeClock

pytestmark = pytest.mark.timeout(30)

HOUR = 3600
EXECUTED = {"success", "error", "timeout", "cancelled", "interrupted"}
ALL = [outcome.value for outcome in Outcome]


def instant(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def all_runs(api: Api) -> list[dict[str, Any]]:
    status, page = await api.call("GET", "/api/jobs?limit=500")
    assert status == 200
    runs = []
    for job in page["items"]:
        status, body = await api.call("GET", f"/api/jobs/{job['id']}/runs")
        assert status == 200
        runs.extend(body["items"])
    return runs


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def expected_buckets(runs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """What each hour should show, from the run histories (``GET /api/jobs/{id}/runs``) by
    the documented rule: the hour a run started (or was due), lateness of scheduled first
    attempts that executed, percentiles read as their bin's upper edge."""
    counts: dict[int, Counter[str]] = {}
    late: dict[int, list[float]] = {}
    for run in runs:
        hour = int(instant(run["startedAt"] or run["scheduledTime"]) // HOUR)
        counts.setdefault(hour, Counter())[run["outcome"]] += 1
        if run["outcome"] in EXECUTED and run["attempt"] <= 1 and run["lateness"] is not None:
            late.setdefault(hour, []).append(run["lateness"])
    out = {}
    for hour, counted in counts.items():
        values = late.get(hour, [])
        out[hour] = {
            "outcomes": {outcome: counted[outcome] for outcome in ALL},
            "latenessP50": bin_edge(nearest_rank(values, 0.5)) if values else None,
            "latenessP99": bin_edge(nearest_rank(values, 0.99)) if values else None,
        }
    return out


async def stats(api: Api, query: str = "") -> dict[str, Any]:
    """The answer, checked against the OpenAPI document's schema of it."""
    status, body = await api.call("GET", f"/api/stats{query}")
    assert status == 200, body
    doc = document()
    schema = doc["paths"]["/api/stats"]["get"]["responses"]["200"]["content"]
    root = {"components": doc["components"], **schema["application/json"]["schema"]}
    Draft202012Validator(root, format_checker=FormatChecker()).validate(body)
    return dict(body)


def by_hour(body: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {
        int(instant(b["start"]) // HOUR): {k: v for k, v in b.items() if k != "start"}
        for b in body["buckets"]
    }


async def run_outcomes_over_four_hours(api: Api) -> None:
    """Hour 0: three successes and an error at once; hour 1: a timeout and a cancel; hour 2:
    four runs started late by a paused scheduler (6 to 9 minutes); hour 3: a run every
    minute skipped while the previous one still runs."""
    for _ in range(3):
        await api.create(task="work")
    await api.create(task="broken", maxRetries=0)
    await api.clock.advance(HOUR + 300)
    await api.create(task="gated", timeout="1m", maxRetries=0)
    await api.clock.advance(61)
    held = await api.create(task="gated", maxRetries=0)
    await api.run_until_running(held["id"])
    status, _ = await api.call("POST", f"/api/jobs/{held['id']}/cancel")
    assert status == 200
    await api.clock.advance_to(T0 + 2 * HOUR + 60)
    assert (await api.call("POST", "/api/scheduler/pause"))[0] == 200
    for minutes in (1, 2, 3, 4):
        await api.create(task="work", schedule={"delay": f"{minutes}m"})
    await api.clock.advance(600)
    assert (await api.call("POST", "/api/scheduler/resume"))[0] == 200
    await api.clock.advance_to(T0 + 3 * HOUR)
    overlapping = await api.create(task="gated", schedule={"every": "1m"}, maxRetries=0)
    await api.clock.advance(150)  # runs at +1m (and holds), skips the one at +2m
    assert (await api.call("POST", f"/api/jobs/{overlapping['id']}/cancel"))[0] == 200
    await api.clock.advance(1)


async def test_each_hour_counts_its_runs_by_outcome_and_reads_lateness_p50_p99(api: Api) -> None:
    await run_outcomes_over_four_hours(api)
    body = await stats(api)
    assert body["bucketSeconds"] == HOUR
    assert body["timezone"] == "Asia/Seoul"
    assert len(body["buckets"]) == 24
    assert body["buckets"][-1]["start"] == "2030-01-07T12:00:00.000+09:00"  # the hour of now
    assert body["buckets"][0]["start"] == "2030-01-06T13:00:00.000+09:00"
    got = by_hour(body)
    want = expected_buckets(await all_runs(api))
    first = int(T0 // HOUR)
    assert sorted(want) == [first, first + 1, first + 2, first + 3]
    nothing = {"outcomes": dict.fromkeys(ALL, 0), "latenessP50": None, "latenessP99": None}
    for hour, bucket in got.items():
        assert bucket == want.get(hour, nothing), hour
    # The scenario made what it meant to, and the numbers read as expected.
    assert got[first]["outcomes"]["success"] == 3
    assert got[first]["outcomes"]["error"] == 1
    assert got[first + 1]["outcomes"]["timeout"] == 1
    assert got[first + 1]["outcomes"]["cancelled"] == 1
    assert got[first + 2]["outcomes"]["success"] == 4
    assert got[first + 2]["latenessP50"] == bin_edge(420.0)  # lateness 360, 420, 480, 540
    assert got[first + 2]["latenessP99"] == bin_edge(540.0)
    assert 540.0 <= got[first + 2]["latenessP99"] < 540.0 * 1.26
    assert got[first + 3]["outcomes"]["skipped_overlap"] >= 1


async def test_a_shorter_window_shows_the_latest_hours(api: Api) -> None:
    await run_outcomes_over_four_hours(api)
    body = await stats(api, "?hours=2")
    assert [b["start"] for b in body["buckets"]] == [
        "2030-01-07T11:00:00.000+09:00",
        "2030-01-07T12:00:00.000+09:00",
    ]
    assert body["buckets"][0]["outcomes"]["success"] == 4
    week = await stats(api, "?hours=168")
    assert len(week["buckets"]) == 168


@pytest.mark.parametrize("value", ["0", "169", "-1", "24h", "", "1.5"])
async def test_hours_out_of_range_is_a_400_naming_the_field(api: Api, value: str) -> None:
    status, body = await api.call("GET", f"/api/stats?hours={value}")
    assert status == 400
    assert body["error"]["field"] == "hours"
    assert "hours" in body["error"]["message"]


async def test_an_unknown_parameter_is_refused(api: Api) -> None:
    status, body = await api.call("GET", "/api/stats?hour=24")
    assert status == 400
    assert body["error"]["field"] == "hour"


# --- restarts ---------------------------------------------------------------------------------


def persisted(tmp_path: Path) -> Config:
    return Config(
        scheduler=SchedulerConfig(timezone="Asia/Seoul"),
        persistence=PersistenceConfig(dir=str(tmp_path), fsync=FsyncMode.NEVER),
    )


async def ok(payload: Any) -> str:
    return "done"


async def fails(payload: Any) -> str:
    raise RuntimeError("no")


async def started_daemon(
    config: Config, clock: FakeClock
) -> tuple[Scheduler, TestClient[Any, Any]]:
    """A scheduler and its app built as the daemon does: the app first, then the start."""
    sched = Scheduler(config, clock=clock, environ={})
    sched.register_task("ok", ok)
    sched.register_task("fails", fails)
    client: TestClient[Any, Any] = TestClient(
        TestServer(create_app(sched, daemon_state()), host="127.0.0.1")
    )
    await sched.start()
    await client.start_server()
    return sched, client


async def outcomes_now(client: TestClient[Any, Any]) -> dict[str, int]:
    async with client.get("/api/stats?hours=3") as resp:
        assert resp.status == 200
        body = await resp.json()
    totals: Counter[str] = Counter()
    for bucket in body["buckets"]:
        totals.update(bucket["outcomes"])
    return {k: v for k, v in totals.items() if v}


async def test_a_restart_counts_the_stored_runs_once(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    config = persisted(tmp_path)
    sched, client = await started_daemon(config, clock)
    for task in ("ok", "ok", "fails"):
        await sched.create_task(task, None, max_retries=0)
    await clock.advance(HOUR)
    await sched.create_task("ok", None, max_retries=0)
    await clock.advance(1)
    before = await outcomes_now(client)
    assert before == {"success": 3, "error": 1}
    await client.close()
    await sched.stop(grace=0)

    again, client = await started_daemon(config, clock)
    try:
        await clock.advance(1)  # the service has counted the history
        assert await outcomes_now(client) == before
        await again.create_task("ok", None, max_retries=0)
        await clock.advance(1)
        assert await outcomes_now(client) == {"success": 4, "error": 1}
    finally:
        await client.close()
        await again.stop(grace=0)


async def test_an_app_built_around_a_running_scheduler_counts_its_history_at_once() -> None:
    clock = FakeClock(T0)
    sched = Scheduler(Config(), clock=clock, persistence=False, environ={})
    sched.register_task("ok", ok)
    await sched.start()
    client: TestClient[Any, Any] | None = None
    try:
        await sched.create_task("ok", None)
        await clock.advance(1)
        client = TestClient(TestServer(app_for(sched), host="127.0.0.1"))
        await client.start_server()
        assert await outcomes_now(client) == {"success": 1}
        await sched.create_task("ok", None)
        await clock.advance(1)
        assert await outcomes_now(client) == {"success": 2}
    finally:
        if client is not None:
            await client.close()
        await sched.stop(grace=0)


# --- upcoming runs -----------------------------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")
#: Noon before the night the clocks go back (2030-11-03, 02:00 EDT -> 01:00 EST).
EVE_OF_FALL_BACK = datetime(2030, 11, 2, 12, 0, tzinfo=NEW_YORK).timestamp()


async def next_times(api: Api, job_id: str, until: float) -> list[str]:
    status, body = await api.call("GET", f"/api/jobs/{job_id}/next?n=100")
    assert status == 200
    return [item["local"] for item in body["items"] if instant(item["local"]) <= until]


async def test_lanes_hold_each_jobs_next_runs_across_a_dst_night(api: Api) -> None:
    api.clock.step(EVE_OF_FALL_BACK - T0)
    zone = {"timezone": "America/New_York"}
    nightly = await api.create(workflowName="nightly", schedule={"cron": "30 1 * * *"}, **zone)
    hourly = await api.create(workflowName="hourly", schedule={"every": "1h"}, **zone)
    weekly = await api.create(workflowName="weekly", schedule={"cron": "0 9 * * 1"}, **zone)
    body = await stats(api)
    until = EVE_OF_FALL_BACK + 24 * HOUR
    lanes = {lane["name"]: lane for lane in body["upcoming"]}
    assert set(lanes) == {"nightly", "hourly"}  # Monday 09:00 is past the window
    assert body["upcomingTruncated"] is False
    assert lanes["nightly"]["runs"] == await next_times(api, nightly["id"], until)
    assert lanes["hourly"]["runs"] == await next_times(api, hourly["id"], until)
    # 01:30 comes twice that night; the cron rule fires at the first (EDT) one.
    assert lanes["nightly"]["runs"] == ["2030-11-03T01:30:00.000-04:00"]
    hourly_runs = lanes["hourly"]["runs"]
    assert len(hourly_runs) == 24
    assert "2030-11-03T01:00:00.000-04:00" in hourly_runs
    assert "2030-11-03T01:00:00.000-05:00" in hourly_runs
    assert hourly_runs[-1] == "2030-11-03T11:00:00.000-05:00"
    assert lanes["hourly"]["task"] == "work"
    assert lanes["hourly"]["timezone"] == "America/New_York"
    assert [lane["name"] for lane in body["upcoming"]] == ["hourly", "nightly"]  # soonest first
    later = await stats(api, "?hours=72")
    assert weekly["id"] in {lane["jobId"] for lane in later["upcoming"]}


async def test_many_jobs_due_at_once_fill_fifty_lanes_soonest_first(api: Api) -> None:
    for n in range(MAX_LANES + 10):
        await api.create(workflowName=f"batch-{n}", schedule={"delay": "2h"})
    soon = await api.create(workflowName="soon", schedule={"delay": "10m"})
    paused = await api.create(workflowName="paused", schedule={"delay": "5m"})
    assert (await api.call("POST", f"/api/jobs/{paused['id']}/pause"))[0] == 200
    every = await api.create(workflowName="busy", schedule={"every": "1m"})
    body = await stats(api)
    lanes = body["upcoming"]
    assert len(lanes) == MAX_LANES
    assert body["upcomingTruncated"] is True
    assert [lane["jobId"] for lane in lanes[:2]] == [every["id"], soon["id"]]
    assert paused["id"] not in {lane["jobId"] for lane in lanes}
    busy = lanes[0]
    assert len(busy["runs"]) == 200  # a run a minute: 1,440 in the day, cut at 200
    assert busy["truncated"] is True
    assert all(len(lane["runs"]) == 1 for lane in lanes[2:])
    assert {lane["runs"][0] for lane in lanes[2:]} == {"2030-01-07T11:00:00.000+09:00"}
