"""Reload on SIGHUP, driven with a real daemon subprocess and real signals.

Each test edits config.toml, sends SIGHUP and waits for systemd's view of the reload
(``RELOADING=1`` then ``READY=1`` on the notify socket) before looking at the result.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.daemon_proc import DaemonProcess, Daemons
from tests.fakes import Message, NotifySocket, is_ready

pytestmark = pytest.mark.integration

NAP = """
[tasks.nap]
kind = "command"
argv = ["sleep", "0.1"]
"""
YEARLY = 'cron = "0 0 1 1 *"'


def static_job(name: str, schedule: str = YEARLY, task: str = "nap") -> str:
    return f'\n[[jobs]]\nname = "{name}"\ntask = "{task}"\n{schedule}\n'


class Reloadable:
    """The daemon plus what a test needs to rewrite its config and reload it."""

    def __init__(self, proc: DaemonProcess, notify: NotifySocket) -> None:
        self.proc = proc
        self.notify = notify
        self.base = proc.config.read_text()

    def write(self, extra: str = "", *, scheduler: str = "", server: str = "") -> None:
        text = self.base.replace(
            'timezone = "Asia/Seoul"\n', f'timezone = "Asia/Seoul"\n{scheduler}\n'
        )
        text = text.replace(f"port = {self.proc.port}\n", f"port = {self.proc.port}\n{server}\n")
        self.proc.config.write_text(text + extra)

    async def reload(self) -> Message:
        """SIGHUP; the READY message that ends the reload."""
        assert self.proc.proc is not None
        start = len(self.notify.poll())
        self.proc.proc.send_signal(signal.SIGHUP)
        began = await self.notify.wait_for(lambda m: m.get("RELOADING") == "1", after=start)
        return self.notify.messages[await self.notify.wait_for(is_ready, after=began)]

    async def jobs(self, **headers: str) -> dict[str, dict[str, Any]]:
        status, body, _ = await self.proc.request("GET", "/api/jobs?limit=100", headers=headers)
        assert status == 200, body
        return {job["name"] or job["id"]: job for job in body["items"]}

    async def metric(self, line_start: str) -> float:
        _, text, _ = await self.proc.request("GET", "/metrics")
        values = [line.split()[-1] for line in text.splitlines() if line.startswith(line_start)]
        assert len(values) == 1, (line_start, values)
        return float(values[0])


async def started(proc: DaemonProcess, notify: NotifySocket, extra: str = "") -> Reloadable:
    proc.env["NOTIFY_SOCKET"] = notify.path
    daemon = Reloadable(proc, notify)
    daemon.write(extra)
    await proc.start()
    return daemon


@pytest.fixture
async def daemon(
    tmp_path: Path, notify: NotifySocket, daemons: Daemons
) -> AsyncIterator[Reloadable]:
    proc = daemons.add(DaemonProcess(tmp_path))
    yield await started(
        proc, notify, NAP + static_job("keep") + static_job("change") + static_job("drop")
    )
    if proc.running:
        assert await proc.stop() == 0  # reloads or not, it stops cleanly


async def test_static_jobs_are_added_changed_and_removed_by_name_and_api_jobs_left_alone(
    daemon: Reloadable,
) -> None:
    api_job = {"task": "nap", "workflowId": "from-api", "schedule": {"cron": "0 0 1 1 *"}}
    status, created, _ = await daemon.proc.request("POST", "/api/jobs", json=api_job)
    assert status == 201
    before = await daemon.jobs()

    daemon.write(
        NAP + static_job("keep") + static_job("change", 'every = "1h"') + static_job("new")
    )
    await daemon.reload()

    after = await daemon.jobs()
    assert set(after) == {"keep", "change", "new", created["id"]}
    assert after["keep"] == before["keep"]
    assert after["change"]["id"] == before["change"]["id"]
    assert after["change"]["schedule"] == {"every": "1h"}
    assert after[created["id"]] == before[created["id"]]
    assert after["new"]["source"] == "config"
    assert "jobs added: new; jobs changed: change; jobs removed: drop" in daemon.proc.output()


async def test_a_changed_schedule_counts_from_now_and_never_fires_retroactively(
    daemon: Reloadable,
) -> None:
    # From a yearly rule to every 2 s: the next run is 2 s after the reload, not "overdue".
    daemon.write(NAP + static_job("keep") + static_job("change", 'every = "2s"'))
    reloaded_at = datetime.now().astimezone()
    await daemon.reload()

    job = (await daemon.jobs())["change"]
    assert job["runs"] == 0
    assert job["status"] == "pending"
    delay = (datetime.fromisoformat(job["scheduledTime"]) - reloaded_at).total_seconds()
    assert 1.0 < delay <= 2.5


async def test_a_broken_file_keeps_the_old_config_and_logs_each_problem_with_its_key_path(
    daemon: Reloadable,
) -> None:
    before = await daemon.jobs()
    daemon.write(static_job("other", task="missing"), scheduler="max_concurrency = 0")
    ready = await daemon.reload()

    assert "last reload failed (2 problems" in ready["STATUS"]
    assert (await daemon.proc.request("GET", "/healthz"))[0] == 200
    assert await daemon.jobs() == before
    assert await daemon.metric("scheduler_max_concurrency ") == 10
    errors = [line for line in daemon.proc.output().splitlines() if "ERROR" in line]
    assert any("scheduler.max_concurrency: expected" in line for line in errors)
    assert any("jobs[0].task" in line and "missing" in line for line in errors)
    assert any("still running on the previous config" in line for line in errors)
    assert await daemon.metric('scheduler_config_reloads_total{result="failure"}') == 1

    daemon.write(NAP + static_job("keep"))
    ready = await daemon.reload()
    assert "reload failed" not in ready["STATUS"]
    assert set(await daemon.jobs()) == {"keep"}
    assert await daemon.metric('scheduler_config_reloads_total{result="success"}') == 1


async def test_max_concurrency_and_defaults_change_without_a_restart(daemon: Reloadable) -> None:
    daemon.write(NAP, scheduler="max_concurrency = 3")
    await daemon.reload()
    assert await daemon.metric("scheduler_max_concurrency ") == 3

    daemon.write(NAP + "\n[retry]\nmax = 7\n")
    await daemon.reload()
    status, job, _ = await daemon.proc.request(
        "POST", "/api/jobs", json={"task": "nap", "schedule": {"delay": "1h"}}
    )
    assert (status, job["maxRetries"]) == (201, 7)
    assert await daemon.metric("scheduler_max_concurrency ") == 10


async def test_a_changed_port_is_logged_as_needing_a_restart_and_the_old_port_stays(
    daemon: Reloadable,
) -> None:
    daemon.proc.config.write_text(
        daemon.base.replace(f"port = {daemon.proc.port}", "port = 1") + NAP + static_job("keep")
    )
    ready = await daemon.reload()

    assert "need a restart" in ready["STATUS"]
    assert (await daemon.proc.request("GET", "/healthz"))[0] == 200
    assert set(await daemon.jobs()) == {"keep"}  # the rest of the file was applied
    log = daemon.proc.output()
    assert f"server.port changed from {daemon.proc.port} to 1: this needs a restart" in log
    assert "WARNING" in next(line for line in log.splitlines() if "server.port changed" in line)


async def test_a_running_job_keeps_its_executor_when_its_task_changes(daemon: Reloadable) -> None:
    daemon.write(NAP.replace('"0.1"', '"1"'))
    await daemon.reload()
    _, job, _ = await daemon.proc.request("POST", "/api/jobs", json={"task": "nap"})
    job = await daemon.proc.job_reaching(job["id"], "running")

    daemon.write(NAP.replace('["sleep", "0.1"]', '["false"]'))
    await daemon.reload()
    for _ in range(300):
        _, job, _ = await daemon.proc.request("GET", f"/api/jobs/{job['id']}")
        if job["status"] != "running":
            break
        await asyncio.sleep(0.01)
    assert job["status"] == "completed"
    # The next run of the task uses the new definition.
    _, again, _ = await daemon.proc.request(
        "POST", "/api/jobs?wait=true", json={"task": "nap", "maxRetries": 0}
    )
    assert again["run"]["outcome"] == "error"


async def test_the_token_is_read_again_from_the_credential_file(
    tmp_path: Path, notify: NotifySocket
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "api_token").write_text("first-token\n")
    proc = DaemonProcess(tmp_path, env={"CREDENTIALS_DIRECTORY": str(credentials)})
    daemon = await started(proc, notify, NAP)
    try:
        assert await daemon.jobs(Authorization="Bearer first-token") == {}
        (credentials / "api_token").write_text("second-token\n")
        await daemon.reload()
        status, _, _ = await proc.request(
            "GET", "/api/jobs", headers={"Authorization": "Bearer first-token"}
        )
        assert status == 401
        assert await daemon.jobs(Authorization="Bearer second-token") == {}
        assert "reloaded" in proc.output()
        assert "API token replaced" in proc.output()
        assert "second-token" not in proc.output()
    finally:
        assert await proc.stop() == 0


async def test_log_format_json_applies_on_reload(daemon: Reloadable) -> None:
    daemon.write(NAP, scheduler='log_format = "json"')
    await daemon.reload()
    last = daemon.proc.output().splitlines()[-1]
    assert json.loads(last)["message"].startswith("reloaded ")


class AlertReceiver:
    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.alerts.append(await request.json())
        return web.Response(status=204)


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer) -> tuple[AlertReceiver, str]:
    hook = AlertReceiver()
    app = web.Application()
    app.router.add_post("/alerts", hook.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return hook, str(server.make_url("/alerts"))


async def test_a_job_failing_for_good_alerts_the_webhook_a_reload_configured(
    daemon: Reloadable, receiver: tuple[AlertReceiver, str]
) -> None:
    hook, url = receiver
    daemon.write(
        NAP.replace('["sleep", "0.1"]', '["false"]') + f'\n[alerts]\nwebhook_urls = ["{url}"]\n'
    )
    await daemon.reload()

    job = {"task": "nap", "workflowId": "nightly", "maxRetries": 0}
    status, run, _ = await daemon.proc.request("POST", "/api/jobs?wait=true", json=job)
    assert (status, run["run"]["outcome"]) == (201, "error")
    for _ in range(200):
        if hook.alerts:
            break
        await asyncio.sleep(0.01)
    assert [(a["kind"], a["job"]["workflowId"]) for a in hook.alerts] == [("job_failed", "nightly")]
