"""``GET /api/jobs/{id}/explain`` across restarts on one state directory (the library
``Scheduler`` with persistence, on the FakeClock): runs missed while the daemon was down, and a
job quarantined after its runs were interrupted three times in a row."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from scheduler.config import Config, FsyncMode, PersistenceConfig
from scheduler.runtime.library import Scheduler
from tests.api.harness import T0, Api, seoul, serving
from tests.docs_text import DOCS, section
from tests.fakes import FakeClock

MINUTE = 60.0


@asynccontextmanager
async def daemon_on(state: Path, now: float) -> AsyncIterator[Api]:
    """One life of the scheduler on ``state``, its clock at ``now``; it stops as a daemon stops
    (no grace: a run in flight is interrupted, and the job follows onCrash)."""
    clock = FakeClock(now)
    config = Config(persistence=PersistenceConfig(dir=str(state), fsync=FsyncMode.NEVER))
    sched = Scheduler(config, clock=clock, environ={})
    async with serving(sched) as api:
        yield api


async def explain(api: Api, job_id: str) -> dict[str, Any]:
    status, body = await api.call("GET", f"/api/jobs/{job_id}/explain")
    assert status == 200, body
    assert body["summary"].endswith("."), body["summary"]
    assert ". " not in body["summary"], body["summary"]  # one sentence
    return dict(body)


async def test_runs_missed_while_the_daemon_was_down_say_so_with_both_spans(
    tmp_path: Path,
) -> None:
    async with daemon_on(tmp_path, T0) as api:
        job = await api.create(name="report", schedule={"every": "10m"})
        await api.clock.advance(10 * MINUTE)
        assert len(api.calls) == 1  # its run of 09:10; then the daemon stops
    async with daemon_on(tmp_path, T0 + 65 * MINUTE) as api:  # started again at 10:05
        await api.clock.advance(0)
        assert len(api.calls) == 1  # the catch-up run of 10:00 (coalesce = latest)
        body = await explain(api, job["id"])
    assert [r["code"] for r in body["reasons"]] == ["misfired"]
    assert body["reasons"][0]["details"] == {
        "from": seoul(T0 + 20 * MINUTE),
        "to": seoul(T0 + 50 * MINUTE),
        "count": 4,
        "daemonDown": True,
        "grace": None,
        "coalesce": "latest",
        "recordedAt": seoul(T0 + 65 * MINUTE),
        "downSince": seoul(T0 + 10 * MINUTE),  # its last record: the run of 09:10
        "downUntil": seoul(T0 + 65 * MINUTE),  # this start
    }
    assert body["summary"] == (
        f"Job 'report' runs next at {seoul(T0 + 70 * MINUTE)}, but 4 runs from "
        f"{seoul(T0 + 20 * MINUTE)} to {seoul(T0 + 50 * MINUTE)} were missed because the "
        f"daemon was down from {seoul(T0 + 10 * MINUTE)} to {seoul(T0 + 65 * MINUTE)}."
    )
    assert body["lastExpected"] == seoul(T0 + 60 * MINUTE)
    docs = section(DOCS / "api.md", "### ", "`GET /api/jobs/{id}/explain`")
    example = json.loads(re.findall(r"```json\n(.*?)```", docs, re.DOTALL)[0])
    assert example == body, "docs/api.md shows this very answer as its example"


async def test_runs_missed_while_it_ran_are_not_blamed_on_a_downtime(tmp_path: Path) -> None:
    async with daemon_on(tmp_path, T0) as api:
        job = await api.create(schedule={"every": "10m"})
    async with daemon_on(tmp_path, T0 + MINUTE) as api:  # down for a minute, nothing missed
        await api.call("POST", "/api/scheduler/pause")
        await api.clock.advance(35 * MINUTE)
        await api.call("POST", "/api/scheduler/resume")
        await api.clock.advance(0)
        body = await explain(api, job["id"])
    missed = body["reasons"][0]
    assert missed["code"] == "misfired"
    assert missed["details"]["daemonDown"] is False
    assert (missed["details"]["from"], missed["details"]["to"]) == (
        seoul(T0 + 10 * MINUTE),
        seoul(T0 + 20 * MINUTE),
    )
    assert "downSince" not in missed["details"]


async def test_a_job_interrupted_three_times_in_a_row_is_quarantined(tmp_path: Path) -> None:
    job_id = ""
    for life in range(3):
        async with daemon_on(tmp_path, T0 + life * MINUTE) as api:
            if not job_id:
                job_id = (await api.create(task="gated"))["id"]
            await api.run_until_running(job_id)
            if life:
                body = await explain(api, job_id)
                assert body["status"] == "running"
                assert body["reasons"] == []
    async with daemon_on(tmp_path, T0 + 3 * MINUTE) as api:
        body = await explain(api, job_id)
    assert body["status"] == "failed"
    assert body["nextRun"] is None
    assert [r["code"] for r in body["reasons"]] == ["quarantined"]
    assert body["reasons"][0]["details"] == {"interruptions": 3, "at": seoul(T0 + 2 * MINUTE)}
    assert body["summary"] == (
        "Job 'gated' will not run again because it was quarantined after 3 interrupted runs "
        "in a row."
    )
