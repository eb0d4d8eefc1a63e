"""End to end against the real daemon: registration on save survives a restart without
duplicates, actions work over the wire, and open event streams never hold up a stop."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.api.harness import TOKEN
from tests.daemon_proc import DaemonProcess, Daemons

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}
EMPTY_JSON = {"Content-Type": "application/json"}  # a change without a body is still JSON
TASKS = """
[tasks.work]
kind = "command"
argv = ["true"]

[tasks.slow]
kind = "command"
argv = ["sleep", "30"]
kill_grace = "200ms"
"""


@pytest.fixture
async def daemon(tmp_path: Path, daemons: Daemons) -> DaemonProcess:
    return await daemons.start(DaemonProcess(tmp_path, TASKS, env={"SCHEDULER_API_TOKEN": TOKEN}))


async def test_a_workflow_saved_again_after_a_restart_updates_the_same_job(
    daemon: DaemonProcess,
) -> None:
    path = "/api/workflows/nightly/schedule"
    status, first, _ = await daemon.request(
        "PUT", path, json={"task": "work", "schedule": {"cron": "0 5 * * *"}}, headers=AUTH
    )
    assert status == 201
    assert await daemon.stop() == 0
    await daemon.start()
    status, again, _ = await daemon.request(
        "PUT", path, json={"task": "work", "schedule": {"cron": "0 6 * * *"}}, headers=AUTH
    )
    assert status == 200
    assert again["id"] == first["id"]
    assert again["scheduledTime"].split("T")[1].startswith("06:00")
    _, page, _ = await daemon.request("GET", "/api/jobs?workflowId=nightly", headers=AUTH)
    assert page["total"] == 1


async def test_pause_patch_and_cancel_over_the_wire(daemon: DaemonProcess) -> None:
    _, job, _ = await daemon.request(
        "POST", "/api/jobs", json={"task": "work", "schedule": {"every": "1h"}}, headers=AUTH
    )
    job_id = job["id"]
    status, paused, _ = await daemon.request(
        "POST", f"/api/jobs/{job_id}/pause", json={"reason": "maintenance"}, headers=AUTH
    )
    assert (status, paused["status"]) == (200, "paused")
    status, patched, _ = await daemon.request(
        "PATCH", f"/api/jobs/{job_id}", json={"priority": "critical"}, headers=AUTH
    )
    assert (status, patched["priority"], patched["status"]) == (200, "critical", "paused")
    status, resumed, _ = await daemon.request(
        "POST", f"/api/jobs/{job_id}/resume", headers={**AUTH, **EMPTY_JSON}
    )
    assert (status, resumed["status"]) == (200, "pending")
    _, slow, _ = await daemon.request("POST", "/api/jobs", json={"task": "slow"}, headers=AUTH)
    await daemon.job_reaching(slow["id"], "running", headers=AUTH)
    started = time.monotonic()
    status, cancelled, _ = await daemon.request(
        "POST", f"/api/jobs/{slow['id']}/cancel", headers={**AUTH, **EMPTY_JSON}
    )
    assert (status, cancelled["status"]) == (200, "cancelled")
    assert time.monotonic() - started < 5


async def test_open_event_streams_do_not_hold_up_a_stop(daemon: DaemonProcess) -> None:
    async with aiohttp.ClientSession() as http:
        streams = [await http.get(daemon.url + "/api/events", headers=AUTH) for _ in range(3)]
        for resp in streams:
            assert resp.status == 200
        started = time.monotonic()
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        for resp in streams:
            rest = await asyncio.wait_for(resp.content.read(), 10)
            assert b"event:" not in rest
            resp.close()
        assert await daemon.stop() == 0
        assert time.monotonic() - started < 3  # well inside the server's 5 s drain
