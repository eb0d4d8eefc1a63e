"""A bounded schemathesis run against the real daemon: no 5xx, and every response conforms to
the OpenAPI document (status codes, content types, bodies).

Fixed seed, a few tens of examples per operation, a token configured; the event stream is left
out (it never ends by design; tests/api/test_sse.py covers it).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.api.harness import TOKEN
from tests.daemon_proc import DaemonProcess

pytestmark = pytest.mark.integration

TASKS = """
[tasks.work]
kind = "command"
argv = ["true"]

[tasks.workflow]
kind = "command"
argv = ["true"]
"""

OTHER_MODULES = ("/metrics", "/", "/static/{path}")  # served once their modules are wired in


@pytest.mark.timeout(150)
async def test_schemathesis_finds_no_server_error_and_no_schema_break(tmp_path: Path) -> None:
    proc = DaemonProcess(tmp_path, TASKS, env={"SCHEDULER_API_TOKEN": TOKEN})
    await proc.start()
    auth = f"Authorization: Bearer {TOKEN}"
    excluded = ["/api/events"]
    for path in OTHER_MODULES:
        status, _, _ = await proc.request(
            "GET", path.replace("{path}", "app.js"), headers={"Authorization": f"Bearer {TOKEN}"}
        )
        if status == 404:
            excluded.append(path)
    argv = [
        str(Path(sys.executable).parent / "st"),
        "run",
        proc.url + "/api/openapi.json",
        "-H",
        auth,
        "--checks",
        "not_a_server_error,response_schema_conformance,"
        "status_code_conformance,content_type_conformance",
        "--max-examples",
        "15",
        "--seed",
        "20261122",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-shrink",
        "--suppress-health-check",
        "all",
        "--output-truncate",
        "false",
        *(arg for path in excluded for arg in ("--exclude-path", path)),
    ]
    try:
        st = await asyncio.create_subprocess_exec(
            *argv, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(st.communicate(), 120)
    finally:
        assert await proc.stop() == 0
    report = out.decode(errors="replace")
    assert st.returncode == 0, report[-6000:]
    for line in proc.output().splitlines():
        # aiohttp logs the requests its HTTP parser rejects (schemathesis probes a NUL byte in
        # a header) with a traceback; anything else with one would be a bug of ours.
        assert "Traceback" not in line or "BadHttpMessage" in line, line
