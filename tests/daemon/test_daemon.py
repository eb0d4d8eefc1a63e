"""The real daemon as a subprocess, over HTTP: the status contract, timing, retries, shutdown."""

from __future__ import annotations

import asyncio
import io
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.daemon_proc import DaemonProcess, Daemons

pytestmark = pytest.mark.integration


class Webhook:
    """A local receiver whose answers are scripted per request."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.requests: list[tuple[dict[str, Any], dict[str, str], float]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((body, dict(request.headers), datetime.now().timestamp()))  # noqa: DTZ005
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"status": status}, status=status)


@pytest.fixture
async def webhook(aiohttp_server: AiohttpServer) -> tuple[Webhook, str]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return hook, str(server.make_url("/hook"))


@pytest.fixture
async def daemon(tmp_path: Path, webhook: tuple[Webhook, str], daemons: Daemons) -> DaemonProcess:
    _, url = webhook
    proc = DaemonProcess(
        tmp_path,
        f"""
[tasks.hook]
kind = "http"
url = "{url}"

[tasks.slow]
kind = "command"
argv = ["sleep", "30"]
kill_grace = "1s"
""",
        scheduler='shutdown_grace = "200ms"',
    )
    return await daemons.start(proc)


STATUS_KEYS = {
    "isRunning": bool,
    "totalJobs": int,
    "pendingJobs": int,
    "runningJobs": int,
    "completedJobs": int,
    "failedJobs": int,
}


async def test_the_status_card_contract(daemon: DaemonProcess) -> None:
    status, body, headers = await daemon.request("GET", "/api/scheduler")
    assert status == 200
    for key, kind in STATUS_KEYS.items():
        assert isinstance(body[key], kind), key
    assert "error" not in body
    assert body["isRunning"] is True
    assert body["nextJob"] is None
    etag = headers["ETag"]
    status, _, _ = await daemon.request("GET", "/api/scheduler", headers={"If-None-Match": etag})
    assert status == 304
    status, _, head = await daemon.request("HEAD", "/api/scheduler")
    assert status == 200
    assert head["ETag"] == etag

    status, job, headers = await daemon.request(
        "POST",
        "/api/jobs",
        json={
            "task": "hook",
            "workflowName": "nightly-backup",
            "schedule": {"at": "2030-11-24T05:00"},
        },
    )
    assert status == 201
    assert headers["Location"] == f"/api/jobs/{job['id']}"
    _, body, _ = await daemon.request("GET", "/api/scheduler")
    assert body["nextJob"] == {
        "id": job["id"],
        "workflowName": "nightly-backup",
        "scheduledTime": "2030-11-24T05:00:00.000+09:00",
        "type": "scheduled",
    }
    assert body["totalJobs"] == 1
    assert body["pendingJobs"] == 1


async def test_a_delayed_job_starts_on_time(
    daemon: DaemonProcess, webhook: tuple[Webhook, str]
) -> None:
    hook, _ = webhook
    status, job, _ = await daemon.request(
        "POST", "/api/jobs", json={"task": "hook", "schedule": {"delay": "300ms"}}
    )
    assert status == 201
    due = datetime.fromisoformat(job["scheduledTime"]).timestamp()
    for _ in range(200):
        _, job, _ = await daemon.request("GET", f"/api/jobs/{job['id']}")
        if job["status"] == "completed":
            break
        await asyncio.sleep(0.02)
    assert job["status"] == "completed"
    _, _, received = hook.requests[0]
    assert 0 <= received - due < 0.25
    body, headers, _ = hook.requests[0]
    assert body["jobId"] == job["id"]
    assert headers["Idempotency-Key"].startswith(job["id"] + ":")


async def _wait_finished(daemon: DaemonProcess, job_id: str) -> dict[str, Any]:
    for _ in range(300):
        _, job, _ = await daemon.request("GET", f"/api/jobs/{job_id}")
        if job["status"] in ("completed", "failed", "cancelled"):
            return dict(job)
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def test_a_failing_webhook_is_retried_until_it_succeeds(
    daemon: DaemonProcess, webhook: tuple[Webhook, str]
) -> None:
    hook, _ = webhook
    hook.statuses = [500, 503]
    _, job, _ = await daemon.request(
        "POST", "/api/jobs", json={"task": "hook", "retry": {"delay": "50ms", "jitter": 0}}
    )
    job = await _wait_finished(daemon, job["id"])
    assert job["status"] == "completed"
    assert job["attempt"] == 3
    assert [body["attempt"] for body, _, _ in hook.requests] == [1, 2, 3]
    keys = {headers["Idempotency-Key"] for _, headers, _ in hook.requests}
    assert len(keys) == 1


async def test_a_4xx_answer_is_not_retried(
    daemon: DaemonProcess, webhook: tuple[Webhook, str]
) -> None:
    hook, _ = webhook
    hook.statuses = [404]
    _, job, _ = await daemon.request(
        "POST", "/api/jobs", json={"task": "hook", "retry": {"delay": "50ms"}}
    )
    job = await _wait_finished(daemon, job["id"])
    assert job["status"] == "failed"
    assert len(hook.requests) == 1
    assert "404" in job["error"]


async def test_bad_input_is_a_400_naming_the_field(daemon: DaemonProcess) -> None:
    status, body, _ = await daemon.request(
        "POST", "/api/jobs", json={"task": "hook", "schedule": {"cron": "61 * * * *"}}
    )
    assert status == 400
    assert body["error"]["field"] == "schedule.cron"
    status, body, _ = await daemon.request("POST", "/api/jobs", json={"task": "nope"})
    assert status == 400
    assert body["error"]["field"] == "task"
    status, body, _ = await daemon.request(
        "POST",
        "/api/jobs",
        data=io.BytesIO(b"x" * (1024 * 1024 + 1)),
        headers={"Content-Type": "application/json"},
    )
    assert status == 413
    status, body, _ = await daemon.request("GET", "/api/jobs/0000000000000")
    assert status == 404
    assert body["error"]["code"] == "not_found"
    _, card, _ = await daemon.request("GET", "/api/scheduler")
    assert card["totalJobs"] == 0


async def test_sigterm_stops_cleanly_and_running_jobs_are_kept(daemon: DaemonProcess) -> None:
    _, job, _ = await daemon.request("POST", "/api/jobs", json={"task": "slow"})
    await daemon.job_reaching(job["id"], "running")
    assert await daemon.stop(signal.SIGTERM) == 0
    log = daemon.output()
    assert "interrupted" in log
    assert "stopped" in log.splitlines()[-1]
