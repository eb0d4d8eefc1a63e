"""Operator actions over HTTP: run now, cancel, pause/resume, retry, runs, next, and the
scheduler-wide pause, resume and clean."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.config import TaskConfig, TaskKind
from scheduler.engine.queue import TaskRuntime
from scheduler.executors.command import CommandExecutor
from tests.api.harness import T0, Api, seoul

HOUR = 3600.0


# --- run now ---------------------------------------------------------------------------------


async def test_run_now_runs_at_once_and_leaves_the_schedule_alone(api: Api) -> None:
    job = await api.create(schedule={"cron": "0 12 * * *"})
    status, body = await api.call("POST", f"/api/jobs/{job['id']}/run")
    assert status == 202
    assert body["id"] == job["id"]
    await api.clock.advance(0)
    assert len(api.calls) == 1
    after = await api.get(job["id"])
    assert after["scheduledTime"] == job["scheduledTime"] == seoul(T0 + 3 * HOUR)
    assert after["status"] == "pending"
    assert after["runs"] == 1


async def test_run_now_with_wait_answers_with_the_run(api: Api) -> None:
    job = await api.create(schedule={"cron": "0 12 * * *"})
    request = asyncio.create_task(api.call("POST", f"/api/jobs/{job['id']}/run?wait=true"))
    while not request.done():
        await api.clock.advance(0)
    status, body = request.result()
    assert status == 200
    assert body["run"]["outcome"] == "success"
    assert body["run"]["lateness"] is None  # a manual run is never late


async def test_run_now_of_a_running_job_with_overlap_skip_is_a_409(api: Api) -> None:
    job = await api.create(task="gated", schedule={"every": "1h"})
    await api.clock.advance(HOUR)
    await api.run_until_running(job["id"])
    status, body = await api.call("POST", f"/api/jobs/{job['id']}/run")
    assert status == 409
    assert "force=true" in body["error"]["message"]
    status, _ = await api.call("POST", f"/api/jobs/{job['id']}/run?force=true")
    assert status == 202
    await api.clock.advance(0)
    assert len(api.sched.engine.running[api.sched.service.get(job["id"]).id]) == 2


async def test_run_now_with_overlap_cancel_other_replaces_the_run(api: Api) -> None:
    job = await api.create(task="gated", schedule={"every": "1h"}, overlap="cancel_other")
    await api.clock.advance(HOUR)
    await api.run_until_running(job["id"])
    status, _ = await api.call("POST", f"/api/jobs/{job['id']}/run")
    assert status == 202
    await api.clock.advance(0)
    _, runs = await api.call("GET", f"/api/jobs/{job['id']}/runs")
    assert [r["outcome"] for r in runs["items"]] == ["cancelled"]
    assert (await api.get(job["id"]))["status"] == "running"  # the new run


async def test_run_now_with_overlap_buffer_one_runs_after_the_current_run(api: Api) -> None:
    job = await api.create(task="gated", schedule={"every": "1h"}, overlap="buffer_one")
    await api.clock.advance(HOUR)
    await api.run_until_running(job["id"])
    status, _ = await api.call("POST", f"/api/jobs/{job['id']}/run")
    assert status == 202
    status, _ = await api.call("POST", f"/api/jobs/{job['id']}/run")
    assert status == 409  # one buffered run at a time
    api.gate.set()
    for _ in range(5):
        await api.clock.advance(0)
    _, runs = await api.call("GET", f"/api/jobs/{job['id']}/runs")
    assert [r["outcome"] for r in runs["items"]] == ["success", "success"]


async def test_a_paused_or_finished_job_cannot_run_now(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"})
    await api.call("POST", f"/api/jobs/{job['id']}/pause")
    status, _ = await api.call("POST", f"/api/jobs/{job['id']}/run")
    assert status == 409


# --- cancel ----------------------------------------------------------------------------------


async def test_cancelling_a_pending_job_ends_it_cancelled(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"})
    status, body = await api.call("POST", f"/api/jobs/{job['id']}/cancel")
    assert status == 200
    assert body["status"] == "cancelled"
    assert body["scheduledTime"] is None
    await api.clock.advance(2 * HOUR)
    assert api.calls == []
    status, _ = await api.call("POST", f"/api/jobs/{job['id']}/cancel")
    assert status == 409


async def test_cancelling_a_running_job_stops_its_run(api: Api) -> None:
    job = await api.create(task="gated")
    await api.run_until_running(job["id"])
    status, body = await api.call("POST", f"/api/jobs/{job['id']}/cancel")
    assert status == 200
    assert body["status"] == "cancelled"
    _, runs = await api.call("GET", f"/api/jobs/{job['id']}/runs")
    assert runs["items"][0]["outcome"] == "cancelled"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


@pytest.mark.integration
async def test_cancelling_a_running_command_stops_its_process_group(
    api: Api, tmp_path: Path
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    task = TaskConfig(
        kind=TaskKind.COMMAND,
        argv=("sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"),
        kill_grace=0.2,
    )
    api.sched.runtimes["shell"] = TaskRuntime(CommandExecutor("shell", task, env_base={}))
    job = await api.create(task="shell")
    await api.clock.advance(0)
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.01)
    grandchild = int(pidfile.read_text())
    assert _alive(grandchild)
    status, body = await api.call("POST", f"/api/jobs/{job['id']}/cancel")
    assert status == 200
    assert body["status"] == "cancelled"
    for _ in range(100):
        if not _alive(grandchild):
            break
        await asyncio.sleep(0.01)
    assert not _alive(grandchild)


# --- pause and resume ------------------------------------------------------------------------


async def test_a_paused_job_does_not_run_and_resumes_by_itself_at_until(api: Api) -> None:
    job = await api.create(schedule={"every": "1h"})
    until = datetime.fromtimestamp(T0 + 3.5 * HOUR, UTC).isoformat()
    status, body = await api.call(
        "POST", f"/api/jobs/{job['id']}/pause", json={"until": until, "reason": "maintenance"}
    )
    assert status == 200
    assert body["status"] == "paused"
    assert body["pausedUntil"] == seoul(T0 + 3.5 * HOUR)
    assert body["pauseReason"] == "maintenance"
    await api.clock.advance(3.5 * HOUR)
    assert api.calls == []  # 10:00, 11:00 and 12:00 were skipped: no burst
    after = await api.get(job["id"])
    assert after["status"] == "pending"
    assert after["scheduledTime"] == seoul(T0 + 4 * HOUR)
    await api.clock.advance(0.5 * HOUR)
    assert len(api.calls) == 1


async def test_pause_until_without_an_offset_is_local_in_the_jobs_zone(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"})
    _, body = await api.call(
        "POST", f"/api/jobs/{job['id']}/pause", json={"until": "2030-01-07T12:00"}
    )
    assert body["pausedUntil"] == "2030-01-07T12:00:00.000+09:00"


async def test_resume_skips_missed_runs_unless_catch_up(api: Api) -> None:
    quiet = await api.create(schedule={"every": "1h"})
    eager = await api.create(schedule={"every": "1h"})
    for job in (quiet, eager):
        await api.call("POST", f"/api/jobs/{job['id']}/pause")
    await api.clock.advance(2.5 * HOUR)
    assert api.calls == []
    _, body = await api.call("POST", f"/api/jobs/{quiet['id']}/resume")
    assert body["status"] == "pending"
    assert body["scheduledTime"] == seoul(T0 + 3 * HOUR)
    status, body = await api.call("POST", f"/api/jobs/{eager['id']}/resume", json={"catchUp": True})
    assert status == 200
    await api.clock.advance(0)
    assert len(api.calls) == 1  # one catch-up run for the eager job only
    _, runs = await api.call("GET", f"/api/jobs/{eager['id']}/runs")
    assert [r["outcome"] for r in runs["items"]] == ["success", "missed"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"until": "yesterday"}, "until"),
        ({"until": "2020-01-01T00:00:00Z"}, "until"),
        ({"until": 5}, "until"),
        ({"reason": ["x"]}, "reason"),
        ({"reson": "x"}, "reson"),
    ],
)
async def test_a_bad_pause_is_a_400_and_changes_nothing(
    api: Api, body: dict[str, object], field: str
) -> None:
    job = await api.create(schedule={"delay": "1h"})
    before = api.state()
    status, answer = await api.call("POST", f"/api/jobs/{job['id']}/pause", json=body)
    assert status == 400
    assert answer["error"]["field"] == field
    assert api.state() == before


async def test_a_running_job_paused_finishes_its_run_and_stays_paused(api: Api) -> None:
    job = await api.create(task="gated", schedule={"every": "1h"})
    await api.clock.advance(3600)
    await api.run_until_running(job["id"])
    status, body = await api.call("POST", f"/api/jobs/{job['id']}/pause", json={"reason": "fix"})
    assert status == 200
    assert body["status"] == "paused"
    api.gate.set()
    await api.clock.advance(1)
    after = await api.get(job["id"])
    assert after["status"] == "paused"
    assert after["runs"] == 1


async def test_resuming_a_job_that_is_not_paused_is_a_409(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"})
    status, _ = await api.call("POST", f"/api/jobs/{job['id']}/resume")
    assert status == 409


# --- retry -----------------------------------------------------------------------------------


async def test_retry_requeues_a_failed_job_with_its_attempts_reset(api: Api) -> None:
    job = await api.create(task="broken", maxRetries=0)
    await api.clock.advance(0)
    failed = await api.get(job["id"])
    assert failed["status"] == "failed"
    assert failed["attempt"] == 1
    status, body = await api.call("POST", f"/api/jobs/{job['id']}/retry")
    assert status == 200
    assert body["status"] == "pending"
    assert body["attempt"] == 0
    assert body["scheduledTime"] == seoul(T0)
    await api.clock.advance(0)
    again = await api.get(job["id"])
    assert (again["status"], again["attempt"], again["runs"]) == ("failed", 1, 2)


async def test_only_a_failed_job_can_be_retried(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"})
    status, body = await api.call("POST", f"/api/jobs/{job['id']}/retry")
    assert status == 409
    assert body["error"]["code"] == "invalid_state"


# --- runs and next ---------------------------------------------------------------------------


async def test_runs_are_listed_newest_first(api: Api) -> None:
    job = await api.create(schedule={"every": "1h"})
    await api.clock.advance(3 * HOUR)
    status, body = await api.call("GET", f"/api/jobs/{job['id']}/runs")
    assert status == 200
    assert body["total"] == 3
    assert [r["scheduledTime"] for r in body["items"]] == [
        seoul(T0 + 3 * HOUR),
        seoul(T0 + 2 * HOUR),
        seoul(T0 + HOUR),
    ]
    assert body["items"][0]["fireId"].startswith(job["id"] + ":")


async def test_next_lists_run_times_in_utc_and_local_time(api: Api) -> None:
    job = await api.create(schedule={"cron": "0 9 * * 1-5"})
    status, body = await api.call("GET", f"/api/jobs/{job['id']}/next?n=3")
    assert status == 200
    assert body["timezone"] == "Asia/Seoul"
    assert body["items"] == [
        {"utc": "2030-01-08T00:00:00.000Z", "local": "2030-01-08T09:00:00.000+09:00"},
        {"utc": "2030-01-09T00:00:00.000Z", "local": "2030-01-09T09:00:00.000+09:00"},
        {"utc": "2030-01-10T00:00:00.000Z", "local": "2030-01-10T09:00:00.000+09:00"},
    ]
    _, body = await api.call("GET", f"/api/jobs/{job['id']}/next")
    assert len(body["items"]) == 10
    for bad in ("0", "1001", "x"):
        status, body = await api.call("GET", f"/api/jobs/{job['id']}/next?n={bad}")
        assert status == 400
        assert body["error"]["field"] == "n"


async def test_a_one_off_job_has_one_next_time_and_none_once_done(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"})
    _, body = await api.call("GET", f"/api/jobs/{job['id']}/next")
    assert [t["local"] for t in body["items"]] == [seoul(T0 + HOUR)]
    await api.clock.advance(HOUR)
    _, body = await api.call("GET", f"/api/jobs/{job['id']}/next")
    assert body["items"] == []


# --- the whole scheduler ---------------------------------------------------------------------


async def test_pausing_the_scheduler_stops_dispatch_but_accepts_jobs(api: Api) -> None:
    status, body = await api.call("POST", "/api/scheduler/pause")
    assert status == 200
    assert body["isRunning"] is False
    assert body["state"] == "paused"
    job = await api.create()
    await api.clock.advance(HOUR)
    assert api.calls == []
    status, _ = await api.call("POST", "/api/jobs?wait=true", json={"task": "work"})
    assert status == 409  # a waited run could never start
    status, body = await api.call("POST", "/api/scheduler/resume")
    assert body["isRunning"] is True
    await api.clock.advance(0)
    assert (await api.get(job["id"]))["status"] == "completed"


async def test_clean_removes_finished_jobs_older_than_asked(api: Api) -> None:
    done = await api.create()
    failed = await api.create(task="broken", maxRetries=0)
    pending = await api.create(schedule={"delay": "1d"})
    await api.clock.advance(0)
    await api.clock.advance(HOUR)
    later = await api.create()
    await api.clock.advance(0)
    status, body = await api.call(
        "POST", "/api/scheduler/clean", json={"status": "completed", "olderThan": "30m"}
    )
    assert status == 200
    assert body == {"removed": 1}
    remaining = {j.id for j in api.sched.store}
    ids = {api.sched.service.get(j["id"]).id: j["id"] for j in (failed, pending, later)}
    assert set(ids) == remaining
    assert done["id"] not in {j["id"] for j in (failed, pending, later)}
    status, body = await api.call("POST", "/api/scheduler/clean")
    assert body == {"removed": 2}
    assert [j.status.value for j in api.sched.store] == ["pending"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "pending"}, "status"),
        ({"status": ["completed", "running"]}, "status[1]"),
        ({"status": []}, "status"),
        ({"olderThan": "soon"}, "olderThan"),
        ({"older": "1h"}, "older"),
    ],
)
async def test_a_bad_clean_is_a_400_and_removes_nothing(
    api: Api, body: dict[str, object], field: str
) -> None:
    await api.create()
    await api.clock.advance(0)
    before = api.state()
    status, answer = await api.call("POST", "/api/scheduler/clean", json=body)
    assert status == 400
    assert answer["error"]["field"] == field
    assert api.state() == before
