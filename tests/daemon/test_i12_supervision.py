"""Issue 12, item 5: the engine, the periodic snapshots and the alert sender run in one
``asyncio.TaskGroup`` owned by the scheduler, so a crash of any one of them stops the daemon with
a non-zero exit (``EX_SOFTWARE``, so that systemd restarts it), as the engine's always did; the
daemon never goes on serving an API in front of half a scheduler.

In process: the real :class:`Daemon` on a state directory and a loopback port of its own (no
subprocess). Each long-lived task runs for real and is made to crash once the daemon is
running, as a bug in it would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from scheduler.api.keys import Phase
from scheduler.config.load import load_config
from scheduler.daemon.process import EX_SOFTWARE, Daemon
from scheduler.engine.loop import Engine
from scheduler.observability.alerts import Alerter
from scheduler.persistence.manager import Persistence
from tests.daemon_proc import free_port
from tests.polling import until

Serve = Callable[..., Coroutine[Any, Any, None]]

#: Each long-lived task of the scheduler's group: the class whose ``serve`` it runs, and that.
LONG_LIVED: dict[str, tuple[type, Serve]] = {
    "engine": (Engine, Engine.serve),
    "snapshots": (Persistence, Persistence.serve),
    "alert sender": (Alerter, Alerter.serve),
}

#: What the log calls each of them when it stops on its own: the line an operator reads.
LOGGED = {
    "engine": "the engine stopped unexpectedly",
    "snapshots": "the snapshot loop stopped unexpectedly",
    "alert sender": "the alert sender stopped unexpectedly",
}


def make_daemon(tmp_path: Path) -> Daemon:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {free_port()}\n\n'
        f'[persistence]\ndir = "{tmp_path / "var"}"\nfsync = "never"\n'
    )
    return Daemon(load_config(str(config)), environ={})


def crashing(serve: Serve, crash: asyncio.Event) -> Serve:
    """``serve`` as it is, until ``crash`` is set: then it raises, as a bug in it would."""

    async def wrapper(self: object, *args: Any) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(serve(self, *args))
            await crash.wait()
            raise RuntimeError("a bug in a long-lived task")

    return wrapper


async def run_until_running(daemon: Daemon) -> asyncio.Task[int]:
    task = asyncio.create_task(daemon.run())
    await until(
        lambda: daemon.state.phase is Phase.RUNNING or task.done(), "the daemon to be running"
    )
    assert not task.done(), "the daemon stopped before it was running"
    return task


@pytest.mark.parametrize("name", list(LONG_LIVED))
async def test_a_crash_of_any_long_lived_task_stops_the_daemon_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    cls, serve = LONG_LIVED[name]
    crash = asyncio.Event()
    monkeypatch.setattr(cls, "serve", crashing(serve, crash))
    daemon = make_daemon(tmp_path)
    task = await run_until_running(daemon)
    crash.set()
    code = await asyncio.wait_for(task, timeout=10)
    assert code == EX_SOFTWARE != 0
    assert "a bug in a long-lived task" in repr(daemon.engine_failure)
    assert not daemon.sched.running
    [line] = [r.getMessage() for r in caplog.records if "stopped unexpectedly" in r.getMessage()]
    assert line.startswith(LOGGED[name] + ": "), line  # names the one that stopped, only it
    assert "a bug in a long-lived task" in line


async def test_without_a_crash_the_daemon_stops_with_zero(tmp_path: Path) -> None:
    """The same daemon, asked to stop: zero, so the non-zero above is the crash's doing."""
    daemon = make_daemon(tmp_path)
    task = await run_until_running(daemon)
    daemon.request_stop()
    assert await asyncio.wait_for(task, timeout=10) == 0
    assert daemon.engine_failure is None
