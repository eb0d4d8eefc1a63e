"""The real daemon under a fake systemd: the sd_notify messages it sends, and their order."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.daemon_proc import DaemonProcess, Daemons
from tests.fakes import NotifySocket, is_ready

pytestmark = pytest.mark.integration


def under_systemd(proc: DaemonProcess, notify: NotifySocket, watchdog_usec: int) -> None:
    """What systemd puts in the environment of a Type=notify service with WatchdogSec."""
    proc.env["NOTIFY_SOCKET"] = notify.path
    proc.env["WATCHDOG_USEC"] = str(watchdog_usec)
    proc.env.pop("WATCHDOG_PID", None)


@pytest.fixture
async def daemon(tmp_path: Path, daemons: Daemons) -> DaemonProcess:
    """Not started: a test puts it under systemd first."""
    proc = DaemonProcess(
        tmp_path,
        """
[tasks.nap]
kind = "command"
argv = ["sleep", "0.6"]
""",
        scheduler='shutdown_grace = "5s"',
    )
    return daemons.add(proc)


async def test_ready_comes_after_recovery_and_once_healthz_answers(
    daemon: DaemonProcess, notify: NotifySocket
) -> None:
    await daemon.start()
    for name in ("a", "b"):
        job = {"task": "nap", "workflowId": name, "schedule": {"cron": "0 0 1 1 *"}}
        status, _, _ = await daemon.request("POST", "/api/jobs", json=job)
        assert status == 201
    assert await daemon.stop() == 0

    under_systemd(daemon, notify, watchdog_usec=10_000_000)
    starting = asyncio.create_task(daemon.start())
    ready = await notify.wait_for(is_ready)
    status, body, _ = await daemon.request("GET", "/healthz")
    await starting
    assert (status, body["state"]) == (200, "running")
    # The two jobs were recovered before READY: its status line counts them.
    assert notify.messages[ready]["STATUS"].startswith("2 jobs: 2 pending")
    assert notify.kinds()[0] == "READY"


async def test_watchdog_pings_arrive_every_half_watchdog_usec(
    daemon: DaemonProcess, notify: NotifySocket
) -> None:
    under_systemd(daemon, notify, watchdog_usec=200_000)
    await daemon.start()
    first = await notify.wait_for(lambda m: m.get("WATCHDOG") == "1")
    await asyncio.sleep(1.0)
    pings = [m for m in notify.poll()[first:] if m.get("WATCHDOG") == "1"]
    # Every 0.1 s: about 10 in a second, fewer only if the machine is very busy.
    assert 5 <= len(pings) <= 13


async def test_sighup_sends_reloading_then_ready_even_when_the_reload_fails(
    daemon: DaemonProcess, notify: NotifySocket
) -> None:
    under_systemd(daemon, notify, watchdog_usec=10_000_000)
    await daemon.start()
    assert daemon.proc is not None
    start = len(notify.poll())

    daemon.proc.send_signal(signal.SIGHUP)
    reloading = await notify.wait_for(lambda m: m.get("RELOADING") == "1", after=start)
    ready = await notify.wait_for(is_ready, after=reloading)
    assert int(notify.messages[reloading]["MONOTONIC_USEC"]) > 0
    assert "reload failed" not in notify.messages[ready]["STATUS"]

    daemon.config.write_text(daemon.config.read_text() + "\n[scheduler.bogus]\n")
    daemon.proc.send_signal(signal.SIGHUP)
    reloading = await notify.wait_for(lambda m: m.get("RELOADING") == "1", after=ready + 1)
    ready = await notify.wait_for(is_ready, after=reloading)
    assert "last reload failed" in notify.messages[ready]["STATUS"]
    assert notify.kinds(start) == ["RELOADING", "READY", "RELOADING", "READY"]


async def test_sigterm_sends_stopping_first_and_pings_go_on_through_the_drain(
    daemon: DaemonProcess, notify: NotifySocket
) -> None:
    under_systemd(daemon, notify, watchdog_usec=100_000)
    await daemon.start()
    _, job, _ = await daemon.request("POST", "/api/jobs", json={"task": "nap"})
    await daemon.job_reaching(job["id"], "running")
    start = len(notify.poll())

    assert await daemon.stop(signal.SIGTERM) == 0
    stopping = await notify.wait_for(lambda m: m.get("STOPPING") == "1", after=start)
    assert notify.kinds(start) == ["STOPPING"]
    assert "1 running jobs" in notify.messages[stopping]["STATUS"]
    # The nap (0.6 s) finished inside the grace while the loop kept pinging.
    assert any(m.get("WATCHDOG") == "1" for m in notify.poll()[stopping + 1 :])
    assert "run success" in daemon.output()
