"""Maintenance windows through the real daemon: a job held by a window waits (and a run-now of
it is refused), and removing the window from config.toml with a reload (SIGHUP) lets it run at
once."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.daemon_proc import DaemonProcess, Daemons
from tests.polling import until

pytestmark = pytest.mark.integration

TASK = """
[tasks.report]
kind = "command"
argv = ["true"]
"""
# Opens every minute for a day: open whenever the test runs.
WINDOW = """
[[maintenance]]
name = "freeze"
cron = "* * * * *"
duration = "1d"
tasks = ["report"]
"""


async def test_a_reload_that_removes_the_window_runs_the_job_it_held(
    tmp_path: Path, daemons: Daemons
) -> None:
    daemon = await daemons.start(DaemonProcess(tmp_path, TASK + WINDOW))
    status, body, _ = await daemon.request("GET", "/api/maintenance")
    assert status == 200, body
    assert [window["name"] for window in body["current"]] == ["freeze"]

    status, job, _ = await daemon.request("POST", "/api/jobs", json={"task": "report"})
    assert status == 201, job
    status, refused, _ = await daemon.request("POST", f"/api/jobs/{job['id']}/run")
    assert status == 409, refused
    assert refused["error"]["code"] == "maintenance"
    assert "maintenance window freeze until " in refused["error"]["message"]
    await asyncio.sleep(0.5)  # it was due at once: the window holds it
    status, held, _ = await daemon.request("GET", f"/api/jobs/{job['id']}")
    assert (status, held["status"], held["runs"]) == (200, "pending", 0)

    daemon.config.write_text(daemon.config.read_text().replace(WINDOW, ""))
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    done = await daemon.job_reaching(job["id"], "completed", within=10.0)
    assert done["runs"] == 1
    await until(lambda: "maintenance removed: freeze" in daemon.output(), "the reload's log line")
    status, body, _ = await daemon.request("GET", "/api/maintenance")
    assert (status, body) == (200, {"current": [], "next": [], "upcoming": []})
