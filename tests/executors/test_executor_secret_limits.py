"""A task's own secrets never reach what is stored, shown or logged (issue 11: a webhook that
echoed its request headers put the task's ``Authorization`` value into the job's error, the run
history and the log)."""

from __future__ import annotations

import asyncio
import base64
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from scheduler.config import Config, TaskConfig, TaskKind
from scheduler.executors import (
    CommandExecutor,
    HttpExecutor,
    task_secrets,
)
from scheduler.executors.base import REDACTED, Secrets
from scheduler.executors.command import TAIL_BYTES, env_secrets
from scheduler.executors.http import http_secrets
from scheduler.model import Outcome
from scheduler.runtime.library import Scheduler
from tests.api.harness import app_for
from tests.fakes import FakeClock, bare_context

ServerFactory = Callable[..., Awaitable[TestServer]]
TOKEN = "tok-3b1f9e77c0d24a51"
API_KEY = "key-9f8e7d6c5b4a"
PASSWORD = "hunter2-but-longer"
BASIC = base64.b64encode(f"robot:{PASSWORD}".encode()).decode()
SECRETS = (TOKEN, API_KEY, PASSWORD, BASIC)


def leaks(*texts: object) -> list[str]:
    """The secrets (or their decoded forms) found in any of ``texts``."""
    blob = " ".join(str(text) for text in texts)
    return [secret for secret in SECRETS if secret in blob]


# --- the redaction itself ------------------------------------------------------------------


def test_every_occurrence_is_replaced_longest_first() -> None:
    secrets = Secrets([TOKEN, f"Bearer {TOKEN}", "short"])
    assert secrets.redact(f"a Bearer {TOKEN} b {TOKEN}") == f"a {REDACTED} b {REDACTED}"
    assert secrets.redact("short stays") == "short stays"  # under 6 characters: no secret


def test_a_secret_cut_at_the_edge_of_a_text_is_removed_too() -> None:
    secrets = Secrets([TOKEN])
    assert secrets.redact(f"x {TOKEN[:9]}", cut_end=True) == f"x {REDACTED}"
    assert secrets.redact(f"{TOKEN[-7:]} y", cut_start=True) == f"{REDACTED} y"
    assert secrets.redact(f"x {TOKEN[:9]}") == f"x {TOKEN[:9]}"  # uncut: nothing to guess


def test_structures_are_redacted_in_keys_and_values() -> None:
    secrets = Secrets([TOKEN])
    assert secrets.redact_value({TOKEN: [f"<{TOKEN}>", 1, None]}) == {
        REDACTED: [f"<{REDACTED}>", 1, None]
    }


def test_an_http_tasks_secrets_are_its_credential_headers_and_url_parts() -> None:
    secrets = http_secrets(
        {
            "Authorization": f"Bearer {TOKEN}",
            "X-Api-Key": API_KEY,
            "Proxy-Authorization": f"Basic {BASIC}",
            "Content-Type": "application/json",
        },
        URL(f"https://robot:{PASSWORD}@hooks.example/x?sig=abcdef123456&a=1"),
    )
    text = f"{TOKEN} {API_KEY} {BASIC} robot:{PASSWORD} abcdef123456 application/json"
    assert secrets.redact(text) == " ".join([REDACTED] * 5 + ["application/json"])


def test_a_commands_secrets_are_its_secret_looking_variables() -> None:
    secrets = env_secrets(
        {"API_TOKEN": TOKEN, "db_password": PASSWORD, "HOME": "/home/robot", "LANG": "C.UTF-8"}
    )
    assert secrets.redact(f"{TOKEN} {PASSWORD} /home/robot") == f"{REDACTED} {REDACTED} /home/robot"


def test_task_secrets_gathers_them_for_the_logs_redactor() -> None:
    tasks = {
        "hook": hook_task("https://hooks.example/x"),
        "cmd": TaskConfig(kind=TaskKind.COMMAND, argv=("true",), env={"DB_PASSWORD": PASSWORD}),
        "py": TaskConfig(kind=TaskKind.PYTHON, callable="json:dumps"),
    }
    found = task_secrets(tasks, {"GITHUB_TOKEN": "ghp_0123456789", "HOME": "/root"})
    assert found >= {TOKEN, f"Bearer {TOKEN}", API_KEY, BASIC, PASSWORD, "ghp_0123456789"}
    assert "/root" not in found


# --- the executors -------------------------------------------------------------------------


def echo(status: int, *, padding: int = 0, as_json: bool = False) -> web.Application:
    """A server that answers with the request's headers (and ``padding`` bytes first)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = dict(request.headers)
        if as_json:
            return web.json_response({"seen": headers}, status=status)
        lines = "\n".join(f"{name}: {value}" for name, value in headers.items())
        return web.Response(status=status, text="x" * padding + lines)

    app = web.Application()
    app.router.add_route("*", "/hook", handler)
    return app


def hook_task(url: str, **fields: Any) -> TaskConfig:
    return TaskConfig(
        kind=TaskKind.HTTP,
        url=url,
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "X-Api-Key": API_KEY,
            "X-Basic": f"Basic {BASIC}",
        },
        **fields,
    )


@pytest.mark.parametrize(("status", "as_json"), [(200, True), (200, False), (500, False)])
async def test_a_webhook_echoing_its_headers_gets_them_redacted(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, status: int, as_json: bool
) -> None:
    server = await aiohttp_server(echo(status, as_json=as_json))
    task = hook_task(str(server.make_url("/hook")))
    result = await HttpExecutor("hook", task, session).run(bare_context())
    assert result.outcome is (Outcome.SUCCESS if status == 200 else Outcome.ERROR)
    assert leaks(result.error, msgspec.json.encode(result.result)) == []
    assert REDACTED in str(result.result)


@pytest.mark.parametrize("cut_inside", [3, 7, 10, 11, 16, 26])
async def test_a_body_cut_inside_a_secret_leaves_no_part_of_it(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, cut_inside: int
) -> None:
    # The body is "Authorization: Bearer tok-...": cut it a few characters into the value.
    prefix = "Authorization: "

    async def first_header_only(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, text=f"{prefix}{request.headers['Authorization']}")

    app = web.Application()
    app.router.add_route("*", "/hook", first_header_only)
    server = await aiohttp_server(app)
    cap = len(prefix) + cut_inside
    task = hook_task(str(server.make_url("/hook")), max_response_bytes=cap)
    result = await HttpExecutor("hook", task, session).run(bare_context())
    value = f"Bearer {TOKEN}"[:cut_inside]
    visible = value.removeprefix("Bearer ")
    if len(visible) >= 4:  # a shorter part of a secret tells nothing
        assert visible not in str(result.result)
        assert visible not in str(result.error)


@pytest.mark.integration  # runs a real command
async def test_a_command_printing_its_secrets_gets_them_redacted() -> None:
    script = (
        'printf "%s\\n" "$API_TOKEN" "$DB_PASSWORD"; printf "token=%s\\n" "$API_TOKEN" >&2; exit 3'
    )
    task = TaskConfig(
        kind=TaskKind.COMMAND,
        argv=("/bin/sh", "-c", script),
        env={"API_TOKEN": TOKEN, "DB_PASSWORD": PASSWORD},
    )
    result = await CommandExecutor("cmd", task, env_base={"PATH": "/usr/bin:/bin"}).run(
        bare_context()
    )
    assert result.outcome is Outcome.ERROR
    assert result.error == f"exit code 3: token={REDACTED}"
    assert result.result == f"{REDACTED}\n{REDACTED}\n"


@pytest.mark.integration  # runs a real command
async def test_a_command_tail_cut_inside_a_secret_leaves_no_part_of_it() -> None:
    # stdout ends "...<TOKEN>" padded so that the kept tail starts in the middle of the token.
    pad = TAIL_BYTES - 7
    program = f"import os,sys; sys.stdout.write(os.environ['API_TOKEN'] + 'y' * {pad})"
    task = TaskConfig(
        kind=TaskKind.COMMAND, argv=(sys.executable, "-c", program), env={"API_TOKEN": TOKEN}
    )
    result = await CommandExecutor("cmd", task, env_base={}).run(bare_context())
    assert result.outcome is Outcome.SUCCESS
    assert isinstance(result.result, str)
    assert result.result.startswith(f"…{REDACTED}y")
    assert TOKEN[-7:] not in result.result


# --- end to end: the job's error, its runs and the log --------------------------------------


async def test_the_job_error_the_runs_and_the_log_never_show_the_secret(
    aiohttp_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await aiohttp_server(echo(500))
    config = Config(tasks={"hook": hook_task(str(server.make_url("/hook")))})
    clock = FakeClock(1_900_000_000.0)
    sched = Scheduler(config, clock=clock, persistence=False, environ={})
    await sched.start()
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(app_for(sched, token=None, heartbeat=15.0), host="127.0.0.1")
    )
    await client.start_server()
    try:
        response = await client.post("/api/jobs", json={"task": "hook", "maxRetries": 0})
        job_id = (await response.json())["id"]
        for _ in range(300):  # the request is real network I/O on this machine: up to 3 s
            await clock.advance(0)
            job = await (await client.get(f"/api/jobs/{job_id}")).json()
            if job["status"] == "failed":
                break
            await asyncio.sleep(0.01)
        runs = await (await client.get(f"/api/jobs/{job_id}/runs")).text()
        listing = await (await client.get("/api/jobs")).text()
    finally:
        await client.close()
        await sched.stop(grace=0)
    assert job["status"] == "failed", job
    assert "HTTP 500" in job["error"]
    assert REDACTED in job["error"]
    assert leaks(job, runs, listing, caplog.text) == []
