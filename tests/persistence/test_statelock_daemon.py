"""One daemon per state directory, with real daemons: a second one on the same directory (on
another port) exits at once naming the directory and the first one's pid, and the first keeps
running with its files untouched; ``kill -9`` frees the directory at once; ``scheduler check
--state`` on a live directory says who has it and still verifies it, read-only."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from scheduler.persistence.statelock import LOCK_NAME
from tests.daemon_proc import DaemonProcess, Daemons, free_port, run_cli
from tests.persistence.harness import LATER, NOOP_TASK, files_of

pytestmark = pytest.mark.integration


def second_config(first: DaemonProcess, root: Path) -> Path:
    """The first daemon's config on another port: the same [persistence] dir."""
    root.mkdir()
    config = root / "config.toml"
    text = first.config.read_text().replace(f"port = {first.port}", f"port = {free_port()}")
    config.write_text(text)
    return config


async def started_daemon(tmp_path: Path, daemons: Daemons) -> DaemonProcess:
    daemon = await daemons.start(DaemonProcess(tmp_path, NOOP_TASK))
    status, body, _ = await daemon.request(
        "POST", "/api/jobs", json={"task": "noop", "schedule": LATER}
    )
    assert status == 201, body
    return daemon


async def test_a_second_daemon_on_the_same_directory_exits_at_once_naming_dir_and_pid(
    tmp_path: Path, daemons: Daemons
) -> None:
    first = await started_daemon(tmp_path, daemons)
    assert first.proc is not None
    before = files_of(first.state)
    config = second_config(first, tmp_path / "second")
    code, out, took = await run_cli("run", "-c", str(config), cwd=tmp_path / "second")
    assert code == 78, out
    assert took < 10, took  # at once: not after a timeout
    assert f"cannot use the state directory: {first.state} is in use" in out
    assert f"(pid {first.proc.pid})" in out
    assert "Traceback" not in out
    assert files_of(first.state) == before  # no snapshot written, nothing cleaned up
    status, card, _ = await first.request("GET", "/api/scheduler")
    assert status == 200
    assert (card["isRunning"], card["totalJobs"]) == (True, 1)
    status, _, _ = await first.request("POST", "/api/jobs", json={"task": "noop"})
    assert status == 201


async def test_after_kill_9_a_new_daemon_starts_at_once_on_the_directory(
    tmp_path: Path, daemons: Daemons
) -> None:
    daemon = await started_daemon(tmp_path, daemons)
    assert daemon.proc is not None
    killed = daemon.proc.pid
    await daemon.kill()
    assert (daemon.state / LOCK_NAME).read_text() == f"{killed}\n"  # left behind by the crash
    started = time.monotonic()
    await daemon.start()  # same config, same directory
    assert time.monotonic() - started < 10
    assert daemon.proc.pid != killed
    assert (daemon.state / LOCK_NAME).read_text() == f"{daemon.proc.pid}\n"
    _, card, _ = await daemon.request("GET", "/api/scheduler")
    assert card["totalJobs"] == 1  # the acknowledged job survived


@pytest.mark.parametrize("with_config", [True, False], ids=["with-c", "state-only"])
async def test_check_on_a_live_directory_says_who_has_it_and_still_verifies_it(
    tmp_path: Path, daemons: Daemons, with_config: bool
) -> None:
    daemon = await started_daemon(tmp_path, daemons)
    assert daemon.proc is not None
    before = files_of(daemon.state)
    args = ["check", "--state", str(daemon.state)]
    if with_config:
        args += ["-c", str(daemon.config)]
    code, out, _ = await run_cli(*args, cwd=tmp_path)
    assert code == 0, out
    lines = out.splitlines()
    in_use = f"state {daemon.state} is in use by a running scheduler (pid {daemon.proc.pid})"
    assert any(line.startswith(in_use) for line in lines), out
    assert lines[-1] == f"ok: state {daemon.state}"
    assert files_of(daemon.state) == before  # read-only, lock file included
    status, _, _ = await daemon.request("POST", "/api/jobs", json={"task": "noop"})
    assert status == 201  # the probe did not disturb the daemon


async def test_check_on_a_live_but_damaged_directory_still_reports_the_damage(
    tmp_path: Path, daemons: Daemons
) -> None:
    daemon = await started_daemon(tmp_path, daemons)
    status, _, _ = await daemon.request("POST", "/api/jobs", json={"task": "noop"})
    assert status == 201
    segment = max(daemon.state.glob("journal-*.log"))
    data = bytearray(segment.read_bytes())
    data[10] ^= 0x01  # inside the first record, not the last one: corruption, not a torn tail
    segment.write_bytes(bytes(data))
    code, out, _ = await run_cli("check", "--state", str(daemon.state), cwd=tmp_path)
    assert code == 65, out
    assert "is in use by a running scheduler" in out
    assert str(segment) in out


async def test_the_same_config_started_twice_is_refused_for_its_state_first(
    tmp_path: Path, daemons: Daemons
) -> None:
    """What a second ``make run`` does: the state lock is taken before the port is bound, so
    the answer names the directory and the pid that holds it, not a busy port."""
    daemon = await started_daemon(tmp_path, daemons)
    code, out, took = await run_cli("run", "-c", str(daemon.config), cwd=tmp_path)
    assert code != 0
    assert took < 10
    assert daemon.proc is not None
    assert str(daemon.state) in out
    assert f"pid {daemon.proc.pid}" in out
    assert "address already in use" not in out
    assert "Traceback" not in out
    status, _, _ = await daemon.request("GET", "/healthz")
    assert status == 200
