"""The real daemon that ``tests/cli/test_cli_jobs.py`` drives with ``scheduler jobs``, and the
helpers to run the command and to set up jobs through the API.

The daemon needs a token, read from ``SCHEDULER_API_TOKEN``; the commands find the daemon
through ``-c`` (its ``[server]`` table) unless given ``--url``. Its python tasks live in a module
written next to its config (the daemon runs there, so it imports them): ``steps`` reports
progress, ``flaky`` fails its first attempt, ``slow`` waits until cancelled; the command task
``fail`` exits 3, which is not retried.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.daemon_proc import DaemonProcess

TOKEN = "cli-jobs-token-5b1e93"
TASKS_MODULE = """
import asyncio


async def steps(payload, ctx):
    for percent in (25, 50, 75, 100):
        ctx.progress(percent, f"step {percent}")
        await asyncio.sleep(0.01)
    return {"steps": 4}


async def flaky(payload, ctx):
    ctx.progress(10, "trying")
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


async def slow(payload, ctx):
    ctx.progress(5, "waiting")
    await asyncio.Event().wait()  # runs until it is cancelled
"""
CONFIG = """
[tasks.steps]
kind = "python"
callable = "cli_jobs_tasks:steps"

[tasks.flaky]
kind = "python"
callable = "cli_jobs_tasks:flaky"

[tasks.slow]
kind = "python"
callable = "cli_jobs_tasks:slow"

[tasks.fail]
kind = "command"
argv = ["sh", "-c", "echo broken >&2; exit 3"]
no_retry_exit_codes = [3]

[[jobs]]
name = "static-report"
task = "steps"
cron = "0 3 * * *"
"""
DAILY = {"cron": "0 3 * * *"}
_BAR = re.compile(r"\[[#-]{20}\] +(\d+)%")


@contextmanager
def jobs_daemon(root: Path) -> Iterator[DaemonProcess]:
    """The daemon of ``test_cli_jobs.py``, started in ``root`` with the tasks above."""
    (root / "cli_jobs_tasks.py").write_text(TASKS_MODULE)
    daemon = DaemonProcess(
        root,
        CONFIG,
        env={"SCHEDULER_API_TOKEN": TOKEN},
        scheduler='shutdown_grace = "1s"',
    )
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(daemon.start())
        yield daemon
        assert loop.run_until_complete(daemon.stop()) == 0
    finally:
        if daemon.running:
            loop.run_until_complete(daemon.kill())
        loop.close()


def environ(token: str | None = TOKEN, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SCHEDULER_API_TOKEN", "CREDENTIALS_DIRECTORY", "COLUMNS")
    }
    if token is not None:
        env["SCHEDULER_API_TOKEN"] = token
    return env | extra


def argv(daemon: DaemonProcess, *args: str) -> list[str]:
    where = [] if any(a.startswith("--url") for a in args) else ["-c", str(daemon.config)]
    return [sys.executable, "-m", "scheduler", "jobs", *args, *where]


def cli(
    daemon: DaemonProcess, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``scheduler jobs ARGS -c CONFIG`` to its end."""
    return subprocess.run(
        argv(daemon, *args),
        capture_output=True,
        text=True,
        env=environ() if env is None else env,
        cwd=daemon.root,
        timeout=40,
        check=False,
    )


def api(daemon: DaemonProcess, method: str, path: str, body: Any = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    try:
        conn.request(method, path, json.dumps(body or {}).encode(), headers)
        resp = conn.getresponse()
        doc = json.loads(resp.read() or b"null")
    finally:
        conn.close()
    assert resp.status < 300, doc
    return doc


def create(daemon: DaemonProcess, **fields: Any) -> dict[str, Any]:
    job: dict[str, Any] = api(daemon, "POST", "/api/jobs", {"schedule": DAILY, **fields})
    return job


def until_status(daemon: DaemonProcess, job_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        job: dict[str, Any] = api(daemon, "GET", f"/api/jobs/{job_id}")
        if job["status"] == status:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not become {status}")


def percents(out: str) -> list[int]:
    return [int(found[1]) for line in out.splitlines() if (found := _BAR.match(line))]


def field(out: str, label: str) -> str:
    """The value of a ``Label  value`` line."""
    for line in out.splitlines():
        if line.startswith(label + "  "):
            return line[len(label) :].strip()
    raise AssertionError(f"no {label!r} line in:\n{out}")
