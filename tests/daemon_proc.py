"""Start the real daemon as a subprocess on a free loopback port, for integration tests.

``DaemonProcess`` is one daemon with its own config and state directory; the ``daemons``
fixture (tests/conftest.py) is a :class:`Daemons` that stops whatever a test left running.
``run_cli`` runs ``python -m scheduler`` once (``check``, ``run`` that is meant to fail...).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp

from scheduler.model import Job, SetMeta
from scheduler.persistence.snapshot import SnapshotState, write_snapshot
from tests.polling import until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DaemonProcess:
    def __init__(
        self,
        root: Path,
        extra_config: str = "",
        *,
        env: dict[str, str] | None = None,
        fsync: str = "never",
        scheduler: str = "",
        nofile: int | None = None,
    ) -> None:
        self.root = root
        self.nofile = nofile  # the open-files limit to start it with (systemd's default: 1024)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "config.toml"
        self.state = root / "var"
        inherited = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        self.env = {**inherited, **(env or {})}
        self.config.write_text(
            f"""
[server]
host = "127.0.0.1"
port = {self.port}

[scheduler]
timezone = "Asia/Seoul"
{scheduler}

[persistence]
dir = "{self.state}"
fsync = "{fsync}"
{extra_config}
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "daemon.log"

    def configure(self, section: str, *lines: str) -> None:
        """Add ``lines`` to a section the constructor wrote (TOML cannot reopen a table)."""
        text = self.config.read_text()
        header = f"[{section}]\n"
        assert header in text, section
        self.config.write_text(text.replace(header, header + "".join(f"{x}\n" for x in lines), 1))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self, *, within: float = 15.0) -> None:
        argv = [sys.executable, "-m", "scheduler", "run", "-c", str(self.config)]
        if self.nofile is not None:  # prlimit execs the daemon: the pid stays the daemon's
            argv = ["prlimit", f"--nofile={self.nofile}:{self.nofile}", "--", *argv]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - starting, not waiting
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.root,
            )
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.output()}")
                try:
                    async with http.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.02)
        raise TimeoutError(f"daemon did not become healthy:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def stop(self, sig: int = signal.SIGTERM, *, within: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        deadline = time.monotonic() + within
        while self.proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a child
            await asyncio.sleep(0.02)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            raise TimeoutError("daemon did not stop in time")
        return self.proc.returncode

    async def kill(self) -> None:
        await self.stop(signal.SIGKILL)

    async def job_reaching(
        self,
        job_id: str,
        status: str,
        *,
        within: float = 10.0,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The job once its status is ``status``, polled (an AssertionError after ``within``)."""

        async def reached() -> dict[str, Any] | None:
            code, job, _ = await self.request("GET", f"/api/jobs/{job_id}", headers=headers)
            assert code == 200, job
            return dict(job) if job["status"] == status else None

        found: dict[str, Any] = await until(reached, f"job {job_id} to be {status}", within)
        return found

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        if method in ("POST", "PUT", "PATCH") and "json" not in kwargs and "data" not in kwargs:
            # A change without a body is still sent as JSON, as the dashboard and any JSON
            # client do (the daemon refuses other media types on changes).
            headers = dict(kwargs.get("headers") or {})
            headers.setdefault("Content-Type", "application/json")
            kwargs["headers"] = headers
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.url + path, **kwargs) as resp,
        ):
            text = await resp.text()
            try:
                body = await resp.json(content_type=None) if text else None
            except ValueError:
                body = text
            return resp.status, body, resp.headers


class Daemons(list[DaemonProcess]):
    """The daemons of one test. The ``daemons`` fixture stops each one still running at the end
    with SIGTERM, as a service manager would, so that the commands it runs stop with it (a
    SIGKILL would leave them running: they have process groups of their own)."""

    def add(self, daemon: DaemonProcess) -> DaemonProcess:
        self.append(daemon)
        return daemon

    async def start(self, daemon: DaemonProcess) -> DaemonProcess:
        await self.add(daemon).start()
        return daemon

    async def stop_all(self, *, within: float = 20.0) -> None:
        """Stop each one still running; one that does not stop in time is killed, and that
        fails the test once the others are stopped too."""
        slow = []
        for daemon in self:
            if daemon.running:
                try:
                    await daemon.stop(within=within)
                except TimeoutError:
                    slow.append(f"{daemon.url}:\n{daemon.output()[-3000:]}")
        assert not slow, "daemons that did not stop on SIGTERM in time (killed): " + "\n".join(slow)


class Exit(NamedTuple):
    code: int
    out: str  # stdout and stderr, interleaved
    seconds: float


async def run_cli(*args: str, cwd: Path, within: float = 30.0) -> Exit:
    """``python -m scheduler ARGS`` to its end."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scheduler", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=within)
    assert proc.returncode is not None
    return Exit(proc.returncode, out.decode(), time.monotonic() - started)


async def preload(daemon: DaemonProcess, jobs: list[Job], *, paused: bool = False) -> None:
    """Write ``jobs`` as the daemon's state before it starts: a state its previous life left
    (jobs due long ago stand for a daemon that was down since), with no real waiting."""
    await asyncio.to_thread(daemon.state.mkdir, mode=0o700, parents=True, exist_ok=True)
    await write_snapshot(
        daemon.state,
        SnapshotState(
            jobs=jobs,
            runs={},
            meta=SetMeta(paused=paused),
            last_seq=0,
            next_id=jobs[-1].id + 1,
        ),
    )
