"""Missed-run alerts through the real daemon: a recurring job misses its occurrences while the
daemon is stopped; after the restart the webhook gets ``job_missed``, then ``job_recovered``."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.daemon_proc import DaemonProcess, Daemons
from tests.polling import until

pytestmark = pytest.mark.integration


class Hooks:
    """The job's own HTTP task (``/work``) and the alert webhook (``/alerts``), on one server."""

    def __init__(self) -> None:
        self.work = 0
        self.alerts: list[dict[str, Any]] = []

    async def on_work(self, request: web.Request) -> web.Response:
        self.work += 1
        return web.Response(status=204)

    async def on_alert(self, request: web.Request) -> web.Response:
        self.alerts.append(await request.json())
        return web.Response(status=204)

    def kinds(self) -> list[str]:
        return [alert["kind"] for alert in self.alerts]


@pytest.fixture
async def hooks(aiohttp_server: AiohttpServer) -> tuple[Hooks, str]:
    hooks = Hooks()
    app = web.Application()
    app.router.add_post("/work", hooks.on_work)
    app.router.add_post("/alerts", hooks.on_alert)
    server = await aiohttp_server(app, host="127.0.0.1")
    return hooks, str(server.make_url("/"))


async def test_a_job_missed_while_the_daemon_was_down_alerts_after_the_restart(
    tmp_path: Path, hooks: tuple[Hooks, str], daemons: Daemons
) -> None:
    hook, base = hooks
    daemon = DaemonProcess(
        tmp_path,
        f"""
[tasks.work]
kind = "http"
url = "{base}work"

[alerts]
webhook_urls = ["{base}alerts"]
""",
    )
    await daemons.start(daemon)
    status, job, _ = await daemon.request(
        "POST",
        "/api/jobs",
        json={
            "task": "work",
            "workflowName": "heartbeat",
            "schedule": {"every": "1s"},
            "misfire": {"grace": "200ms"},
        },
    )
    assert status == 201, job
    await until(lambda: hook.work >= 1, "the job's first run")
    await daemon.stop()
    stopped = time.time()
    await asyncio.sleep(2.5)  # real time: the daemon is down across at least two occurrences
    await daemon.start()
    await until(lambda: hook.alerts, "the job_missed alert", within=15)
    missed = hook.alerts[0]
    assert missed["kind"] == "job_missed"
    assert missed["cause"] == "daemon_down"
    assert missed["count"] >= 2
    assert missed["job"]["id"] == job["id"]
    assert missed["job"]["workflowName"] == "heartbeat"
    first = datetime.fromisoformat(missed["firstMissed"])
    last = datetime.fromisoformat(missed["lastMissed"])
    assert (
        first.utcoffset()
        == last.utcoffset()
        == datetime.fromisoformat(job["scheduledTime"]).utcoffset()
    )  # in the job's zone
    assert stopped - 1 < first.timestamp() < last.timestamp()
    assert "the daemon was not running" in missed["summary"]
    await until(lambda: len(hook.alerts) == 2, "the job_recovered alert", within=15)
    recovered = hook.alerts[1]
    assert (recovered["kind"], recovered["alert"]) == ("job_recovered", "job_missed")
    assert recovered["job"]["id"] == job["id"]
    assert hook.kinds() == ["job_missed", "job_recovered"]
