"""Missed-run alerts through the real daemon: a recurring job missed its occurrences while the
daemon was stopped (its state, left by an earlier life, is written before the start); after the
start the webhook gets ``job_missed``, then ``job_recovered``."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from scheduler.ids import encode
from scheduler.model import Job, MisfirePolicy, Policy, Schedule
from tests.daemon_proc import DaemonProcess, Daemons, preload
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
    # The state its previous life left: a job every second, due since 9 s ago, so the daemon
    # was down across nine occurrences (no real waiting).
    created = time.time() - 10.0
    heartbeat = Job(
        id=int(created * 1000) << 22,
        task="work",
        timezone="Asia/Seoul",
        workflow_name="heartbeat",
        schedule=Schedule(every=1.0),
        policy=Policy(misfire=MisfirePolicy(grace=0.2)),
        scheduled=created + 1.0,
    )
    await preload(daemon, [heartbeat])
    started = time.time()
    await daemons.start(daemon)
    job = {"id": encode(heartbeat.id)}
    await until(lambda: hook.alerts, "the job_missed alert", within=15)
    missed = hook.alerts[0]
    assert missed["kind"] == "job_missed"
    assert missed["cause"] == "daemon_down"
    assert missed["count"] >= 2
    assert missed["job"]["id"] == job["id"]
    assert missed["job"]["workflowName"] == "heartbeat"
    first = datetime.fromisoformat(missed["firstMissed"])
    last = datetime.fromisoformat(missed["lastMissed"])
    assert first.utcoffset() == last.utcoffset() == timedelta(hours=9)  # in the job's zone
    assert created < first.timestamp() < last.timestamp() < started
    assert "the daemon was not running" in missed["summary"]
    await until(lambda: len(hook.alerts) == 2, "the job_recovered alert", within=15)
    recovered = hook.alerts[1]
    assert (recovered["kind"], recovered["alert"]) == ("job_recovered", "job_missed")
    assert recovered["job"]["id"] == job["id"]
    assert hook.kinds() == ["job_missed", "job_recovered"]
