"""``scheduler status --wait [--timeout S]``: wait (bounded) until the daemon is ready, then
print the card; on timeout exit 1 with one line naming the URL and what answered last.

The polling loop runs on an injected clock (``monotonic``/``sleep``), so the timeouts here take
no real time; the last test starts a real daemon and waits for it the way the README does.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.cli import status as status_cli
from scheduler.cli.main import main
from scheduler.cli.status import POLL_EVERY, StatusError, status_command, wait_ready
from tests.daemon_proc import DaemonProcess, free_port
from tests.fakes import FakeClock

CARD = {"isRunning": True, "totalJobs": 0, "pendingJobs": 0, "nextJob": None}


class Fake:
    """A sleep that only moves the fake clock (the injected ``monotonic``)."""

    def __init__(self) -> None:
        self.clock = FakeClock(0.0)
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def sleep(self, seconds: float) -> None:
        self.clock.mono += seconds
        self.slept += seconds


class Starting:
    """A server whose /healthz answers 503 for its first ``busy`` requests, then 200."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.probes = 0

    async def healthz(self, request: web.Request) -> web.Response:
        self.probes += 1
        ready = self.probes > self.busy
        return web.json_response({"ok": ready}, status=200 if ready else 503)

    async def card(self, request: web.Request) -> web.Response:
        return web.json_response(CARD)


@pytest.fixture
async def starting() -> AsyncIterator[tuple[Starting, str]]:
    server = Starting(busy=3)
    app = web.Application()
    app.router.add_get("/healthz", server.healthz)
    app.router.add_get("/api/scheduler", server.card)
    async with TestServer(app, host="127.0.0.1") as test_server:
        yield server, str(test_server.make_url("")).rstrip("/")


async def run_status(url: str, wait: float, fake: Fake) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(
        status_command,
        url,
        wait=wait,
        now=0.0,
        out=out,
        err=err,
        monotonic=fake.monotonic,
        sleep=fake.sleep,
    )
    return code, out.getvalue(), err.getvalue()


async def test_it_waits_through_503_while_the_daemon_recovers_then_prints_the_card(
    starting: tuple[Starting, str],
) -> None:
    server, url = starting
    fake = Fake()
    code, out, err = await run_status(url, 30.0, fake)
    assert (code, err) == (0, "")
    assert out.splitlines()[0].split() == ["Scheduler", "running", "at", url]
    assert server.probes == 4
    assert fake.slept == pytest.approx(3 * POLL_EVERY)


async def test_it_gives_up_after_the_timeout_naming_the_url_and_the_last_answer(
    starting: tuple[Starting, str],
) -> None:
    server, url = starting
    server.busy = 10**6  # never ready
    fake = Fake()
    code, out, err = await run_status(url, 2.0, fake)
    assert (code, out) == (1, "")
    assert err == (
        f"scheduler status: no scheduler was ready at {url}/healthz within 2 s "
        "(last: 503 Service Unavailable)\n"
    )
    assert fake.slept == pytest.approx(2.0)


async def test_with_nothing_listening_it_says_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    fake = Fake()
    code, _, err = await run_status(url, 0.5, fake)
    assert code == 1
    assert err.startswith(f"scheduler status: no scheduler was ready at {url}/healthz within")
    assert "Connection refused" in err
    assert "\n" not in err.rstrip("\n")


def test_a_bad_scheme_fails_at_once() -> None:
    fake = Fake()
    with pytest.raises(StatusError, match="must start with http"):
        wait_ready("ftp://example.invalid", 5.0, monotonic=fake.monotonic, sleep=fake.sleep)
    assert fake.slept == 0


@settings(max_examples=50, deadline=None)
@given(
    answers=st.lists(st.booleans(), min_size=1, max_size=40),
    timeout=st.floats(min_value=0.05, max_value=3.0),
    probe_cost=st.floats(min_value=0.0, max_value=0.5),
)
def test_the_wait_is_bounded_and_ends_at_the_first_ready_answer(
    answers: list[bool], timeout: float, probe_cost: float
) -> None:
    """Whatever the daemon answers and however long each probe takes: ready is reported iff a
    probe answered 200, no probe starts after the deadline, giving up overruns it by at most
    one probe, and the sleeps add up to no more than the timeout."""
    fake = Fake()
    probes: list[float] = []

    def probe(endpoint: str, limit: float) -> str | None:
        probes.append(fake.monotonic())
        fake.clock.mono += min(probe_cost, limit)
        ready = answers[min(len(probes), len(answers)) - 1]
        return None if ready else "503 Service Unavailable"

    start = fake.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(status_cli, "_probe", probe)
        try:
            wait_ready("http://h", timeout, monotonic=fake.monotonic, sleep=fake.sleep)
        except StatusError:
            ready = False
        else:
            ready = True
    deadline = start + timeout
    assert all(at <= deadline + 1e-9 for at in probes)
    assert ready == answers[min(len(probes), len(answers)) - 1]
    if not ready:
        assert fake.monotonic() >= deadline
        assert fake.monotonic() - deadline <= probe_cost + 1e-9
    assert fake.slept <= timeout + 1e-9


def test_the_cli_takes_wait_and_a_duration_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["status", "--url", url, "--wait", "--timeout", "200ms"]) == 1
    assert "within 0.2 s" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(["status", "--wait", "--timeout", "soon"])
    assert bad.value.code == 2
    assert "argument --timeout: expected a duration" in capsys.readouterr().err


@pytest.mark.integration
async def test_it_waits_for_a_real_daemon_started_in_the_background(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path)
    script = Path(sys.executable).parent / "scheduler"
    with daemon.log.open("ab") as log:
        daemon.proc = subprocess.Popen(  # noqa: ASYNC220 - started, then waited for by the CLI
            [script, "run", "-c", str(daemon.config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        waited = await asyncio.create_subprocess_exec(
            script, "status", "--wait", "--url", daemon.url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(waited.communicate(), timeout=45)
        assert waited.returncode == 0, err.decode() + daemon.output()
        assert out.decode().splitlines()[0].split() == ["Scheduler", "running", "at", daemon.url]
    finally:
        assert await daemon.stop() == 0
