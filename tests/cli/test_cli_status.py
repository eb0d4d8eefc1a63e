"""``scheduler status``: a readable table from a running daemon, a clear message without one."""

from __future__ import annotations

import asyncio
import io

import pytest

from scheduler.cli.main import main
from scheduler.cli.status import relative, status_command
from tests.api.harness import T0, TOKEN, Api, ApiOptions
from tests.daemon_proc import free_port


@pytest.fixture
def api_options() -> ApiOptions:  # the card needs no token
    return {"token": TOKEN}


def url_of(api: Api) -> str:
    return str(api.client.make_url("")).rstrip("/")


async def run_status(url: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    # urllib blocks: run it in a thread so the in-process server can answer.
    code = await asyncio.to_thread(status_command, url, now=T0, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def test_it_prints_state_counts_and_the_next_job(api: Api) -> None:
    await api.create(schedule={"delay": "2h13m"}, workflowName="nightly-backup")
    await api.create(schedule={"cron": "0 9 * * *"})
    code, out, err = await run_status(url_of(api))
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["Scheduler", "running", "at", url_of(api)]
    assert lines[1].split() == ["Jobs", "2", "total"]
    assert lines[2].split() == ["pending", "2"]
    assert "nightly-backup (delayed)" in lines[-3]
    assert lines[-3].startswith("Next job")
    assert "2030-01-07 11:13:00+09:00 (in 2 h 13 min)" in out


async def test_it_says_when_nothing_is_scheduled_or_dispatch_is_paused(api: Api) -> None:
    await api.call("POST", "/api/scheduler/pause")
    code, out, _ = await run_status(url_of(api) + "/")
    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["Scheduler", "paused"]
    assert out.splitlines()[-1].split() == ["Next", "job", "none", "scheduled"]


async def test_it_exits_1_with_a_clear_message_when_nothing_answers() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = await run_status(url)
    assert code == 1
    assert out == ""
    assert err.startswith(f"scheduler status: no scheduler answers at {url}/api/scheduler")
    assert "\n" not in err.rstrip("\n")


async def test_something_that_is_not_a_scheduler_is_reported(api: Api) -> None:
    code, _, err = await run_status(url_of(api) + "/api/jobs/0000000000000")
    assert code == 1
    assert "answered 4" in err
    code, _, err = await run_status("ftp://example.invalid")
    assert code == 1
    assert "http://" in err


def test_the_cli_passes_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["status", "--url", url]) == 1
    assert url in capsys.readouterr().err


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "now"),
        (45, "in 45 s"),
        (7980, "in 2 h 13 min"),
        (-300, "5 min ago"),
        (90061, "in 1 d 1 h"),
        (0.4, "now"),
    ],
)
def test_relative_times_read_naturally(seconds: float, text: str) -> None:
    assert relative(seconds) == text
