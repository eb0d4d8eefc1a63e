"""The real daemon under a fake systemd: the sd_notify messages it sends, and their order."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.daemon_proc import DaemonProcess

pytestmark = pytest.mark.integration

Message = dict[str, str]


class NotifySocket:
    """A datagram socket standing in for systemd's: records each message with its arrival."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        self.sock = sock
        self.path = path
        self.messages: list[Message] = []

    def poll(self) -> list[Message]:
        while True:
            try:
                data = self.sock.recv(4096).decode()
            except BlockingIOError:
                return self.messages
            fields = dict(line.split("=", 1) for line in data.splitlines() if line)
            self.messages.append(fields)

    async def wait_for(
        self, wanted: Callable[[Message], bool], *, after: int = 0, within: float = 10.0
    ) -> int:
        """Index of the first message from ``after`` on that ``wanted`` accepts."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for i, message in enumerate(self.poll()[after:], after):
                if wanted(message):
                    return i
            await asyncio.sleep(0.01)
        raise TimeoutError(f"no such message in {self.messages[after:]}")

    def kinds(self, start: int = 0) -> list[str]:
        """The messages' first keys (READY, WATCHDOG, STOPPING...), pings left out."""
        return [next(iter(m)) for m in self.poll()[start:] if "WATCHDOG" not in m]


def is_ready(message: Message) -> bool:
    return message.get("READY") == "1"


@contextlib.contextmanager
def notify_socket() -> Iterator[NotifySocket]:
    # A short directory: AF_UNIX paths are limited to 108 bytes, pytest's tmp_path may not be.
    with (
        tempfile.TemporaryDirectory(prefix="sdn") as directory,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        path = str(Path(directory) / "notify")
        sock.bind(path)
        sock.setblocking(False)
        yield NotifySocket(sock, path)


def under_systemd(proc: DaemonProcess, notify: NotifySocket, watchdog_usec: int) -> None:
    """What systemd puts in the environment of a Type=notify service with WatchdogSec."""
    proc.env["NOTIFY_SOCKET"] = notify.path
    proc.env["WATCHDOG_USEC"] = str(watchdog_usec)
    proc.env.pop("WATCHDOG_PID", None)


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    with notify_socket() as sock:
        yield sock


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[DaemonProcess]:
    proc = DaemonProcess(
        tmp_path,
        """
[tasks.nap]
kind = "command"
argv = ["sleep", "0.6"]
""",
        scheduler='shutdown_grace = "5s"',
    )
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        await proc.stop()


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
    for _ in range(200):
        _, current, _ = await daemon.request("GET", f"/api/jobs/{job['id']}")
        if current["status"] == "running":
            break
        await asyncio.sleep(0.01)
    start = len(notify.poll())

    assert await daemon.stop(signal.SIGTERM) == 0
    stopping = await notify.wait_for(lambda m: m.get("STOPPING") == "1", after=start)
    assert notify.kinds(start) == ["STOPPING"]
    assert "1 running jobs" in notify.messages[stopping]["STATUS"]
    # The nap (0.6 s) finished inside the grace while the loop kept pinging.
    assert any(m.get("WATCHDOG") == "1" for m in notify.poll()[stopping + 1 :])
    assert "run success" in daemon.output()
