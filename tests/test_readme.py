"""The README's examples run as written, the way a new user pastes them.

The quick tour and the HTTP API examples are pasted whole into interactive shells, bash and zsh
(``bash -i``, ``zsh -f -i`` reading the text: so zsh does not take ``#`` as a comment, globs
``?`` in unquoted words, and bash expands ``!``), against a daemon on a free port. What the test
changes in the text, and only that: the port 8080 becomes the free port (with ``--url`` for
``scheduler status``), the log goes to the test's directory, ``make run`` gets the test's copy
of ``config.toml`` (through ``CONFIG`` in the environment, which the Makefile reads), and the
live event stream is cut after a moment.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scheduler.persistence.statelock import holder
from tests import ROOT
from tests.daemon_proc import DaemonProcess, free_port

README = ROOT / "README.md"
SHELLS = {"bash": ["bash", "--norc", "--noprofile", "-i"], "zsh": ["zsh", "-f", "-i"]}
# What an interactive shell prints when a pasted line does not work as written.
SHELL_ERRORS = (
    "command not found",
    "no matches found",
    "parse error",
    "event not found",
    "bad pattern",
    "syntax error",
    "unmatched",
    "No such file",
)
HELLO = '[tasks.hello]\nkind = "command"\nargv = ["echo", "hello from scheduler"]\n'


def section(title: str) -> str:
    text = README.read_text()
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def blocks(title: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section(title), re.S)


def python_block(title: str) -> str:
    found = blocks(title, "python")
    assert found, f"no python example under {title!r}"
    return found[0]


def need(shell: str) -> None:
    assert shutil.which(shell), f"{shell} is missing: apt-get install -y {shell} (make test does)"


def paste(shell: str, text: str, *, cwd: Path, env: dict[str, str], timeout: float) -> Any:
    """Run ``text`` as if pasted into an interactive ``shell``; stdout and stderr back."""
    need(shell)
    done = subprocess.run(
        SHELLS[shell],
        input=text,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    for error in SHELL_ERRORS:
        assert error not in done.stderr, f"{shell}: {error}:\n{done.stderr}"
    return done


def bash(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )


def shell_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "CONFIG")}
    return {**env, "HOME": str(home), "HISTFILE": str(home / "history"), **extra}


def for_port(text: str, port: int) -> str:
    text = text.replace("8080", str(port))
    return text.replace("status --wait", f"status --wait --url http://127.0.0.1:{port}")


def json_lines(out: str) -> list[dict[str, Any]]:
    """The JSON objects printed one per line, in order."""
    found = []
    for line in out.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def stop_if_still_running(state: Path) -> None:
    """The test must not leave a daemon behind, whatever failed."""
    in_use, pid = holder(state) if state.exists() else (False, None)
    if in_use and pid:
        os.kill(pid, signal.SIGKILL)


def wait_released(state: Path, within: float = 30.0, *, log: Path | None = None) -> None:
    """The daemon lets go of its state lock as it stops (the kernel drops it if it dies), and
    logs "stopped" as the last step of a graceful stop: wait for both."""
    deadline = time.monotonic() + within
    while holder(state)[0] or (log is not None and "stopped" not in log.read_text()):
        assert time.monotonic() < deadline, "the daemon did not stop"
        time.sleep(0.05)


# --- the first lines -------------------------------------------------------------------


def test_the_readme_starts_with_the_two_commands() -> None:
    first_block = README.read_text().split("```")[1]
    assert first_block == "sh\nmake run\nmake test\n"


def test_the_pasted_blocks_have_nothing_zsh_would_misread() -> None:
    """No comments (interactive zsh runs ``#`` as a command), every URL with ``?`` quoted,
    and ``$ID`` set in a block before any line uses it."""
    for title in ("Quick tour", "HTTP API"):
        for block in blocks(title, "sh"):
            assigned = False
            for line in block.splitlines():
                assert not re.search(r"(^|\s)#", line), (title, line)
                for word in re.findall(r"(?<!['\"])\blocalhost:\S*", line):
                    assert "?" not in word, (title, line)
                assigned = assigned or line.startswith("ID=")
                if "$ID" in line and not line.startswith("ID="):
                    assert assigned, (title, line)


# --- the quick tour --------------------------------------------------------------------


@pytest.mark.timeout(150)
@pytest.mark.parametrize("shell", ["bash", "zsh"])
@pytest.mark.integration
def test_the_quick_tour_works_pasted_into_a_shell(tmp_path: Path, shell: str) -> None:
    tour, stop = blocks("Quick tour", "sh")[:2]
    assert stop == "kill %1\n"
    port = free_port()
    config = tmp_path / "config.toml"
    shipped = (ROOT / "config.toml").read_text()
    assert "port = 8080\n" in shipped
    config.write_text(shipped.replace("port = 8080\n", f"port = {port}\n"))
    state = tmp_path / "var"  # the shipped config's default: var beside the config file
    log = tmp_path / "scheduler.log"
    text = for_port(tour, port).replace("/tmp/scheduler.log", str(log)) + stop
    try:
        done = paste(
            shell, text, cwd=ROOT, env=shell_env(tmp_path, CONFIG=str(config)), timeout=120
        )
        wait_released(state, log=log)
    finally:
        stop_if_still_running(state)
    out = done.stdout
    assert re.search(rf"^Scheduler +running at http://127.0.0.1:{port}$", out, re.M), out
    card, job, runs = json_lines(out)  # each curl's answer, one per line (curl -w '\n')
    assert card["isRunning"] is True
    assert (job["workflowName"], job["type"]) == ("greet", "delayed")  # read back by its $ID
    assert [sorted(item) for item in runs["items"]] == [["local", "utc"]]  # its one run
    assert len(re.findall(r"^\w{3} 20\d\d-\d\d-\d\d 09:00:00 -0[45]:00 ", out, re.M)) == 3, out
    assert "ok: config.toml" in out
    assert "scheduler listening on" in log.read_text()
    assert "stopped" in log.read_text()  # a graceful stop: kill %1 reached the daemon


# --- the HTTP API examples -------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh"])
@pytest.mark.integration
async def test_the_http_api_examples_work_pasted_and_the_put_keeps_what_it_repeats(
    tmp_path: Path, shell: str
) -> None:
    [examples] = blocks("HTTP API", "sh")
    daemon = DaemonProcess(tmp_path, HELLO)
    await daemon.start()
    try:
        text = for_port(examples, daemon.port).replace('curl -sN "', 'curl -sN --max-time 1 "')
        done = await asyncio.to_thread(
            paste,
            shell,
            text + 'printf "ID=%s\\n" "$ID"\n',
            cwd=tmp_path,
            env=shell_env(tmp_path),
            timeout=60,
        )
        job_id = re.findall(r"^ID=([0-9a-f]{16})$", done.stdout, re.M)
        assert job_id, done.stdout + done.stderr
        status, jobs, _ = await daemon.request("GET", "/api/jobs?workflowId=wf-42")
        assert status == 200
        [job] = jobs["items"]
        assert job["id"] == job_id[0]  # the upsert updated the job in place
        assert job["schedule"] == {"cron": "0 9 * * 1-5"}
        assert (job["timezone"], job["priority"], job["maxRetries"]) == (
            "America/New_York", "high", 5,
        )  # fmt: skip
        assert '"local"' in done.stdout  # the next runs, UTC and local

        # What the README warns of: a PUT that leaves keys out resets them to the defaults.
        status, partial, _ = await daemon.request(
            "PUT",
            "/api/workflows/wf-42/schedule",
            json={"task": "hello", "schedule": {"cron": "0 9 * * 1-5"}},
        )
        assert status == 200, partial
        assert (partial["timezone"], partial["priority"], partial["maxRetries"]) == (
            "Asia/Seoul", "normal", 3,
        )  # fmt: skip
    finally:
        await daemon.stop()


# --- python tasks ----------------------------------------------------------------------


@pytest.mark.integration
async def test_the_python_task_example_is_found_through_pythonpath_as_shown(
    tmp_path: Path,
) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "reports.py").write_text(python_block("Python tasks"))
    [toml] = blocks("Python tasks", "toml")
    daemon = DaemonProcess(tmp_path, toml, env={"PYTHONPATH": str(tmp_path / "tasks")})
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    check_line, run_line = blocks("Python tasks", "sh")[0].splitlines()
    assert run_line == 'PYTHONPATH="$PWD/tasks" make run'

    # The installed command does not look in the current directory: without the path the
    # module is not found, which is why the README shows PYTHONPATH.
    bare = check_line.removeprefix('PYTHONPATH="$PWD/tasks" ')
    done = await asyncio.to_thread(bash, bare, tmp_path)
    assert done.returncode == 78
    assert "cannot import 'reports'" in done.stdout
    done = await asyncio.to_thread(bash, check_line, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: config.toml")

    await daemon.start()  # the daemon with PYTHONPATH set, as `make run` would have it
    try:
        status, body, _ = await daemon.request(
            "POST", "/api/jobs?wait=true", json={"task": "report", "payload": {"team": "ops"}}
        )
        assert status == 201, body
        assert body["status"] == "completed", body
        assert body["run"]["result"] == "daily report for ops"
    finally:
        await daemon.stop()


# --- the library -----------------------------------------------------------------------


@pytest.mark.integration
def test_the_library_example_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(python_block("Library API"))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "var").exists()  # persistence off, as the example says


# --- make test's system packages -------------------------------------------------------


def fake_machine(tmp_path: Path, *, uid: int, have: tuple[str, ...] = ()) -> dict[str, str]:
    """A PATH with only ``sh``, ``ls``, a fake ``id`` and fake versions of ``have``, and a
    root directory (``SYSTEM_ROOT``) where the absolute paths the script checks live."""
    bin_dir, root = tmp_path / "bin", tmp_path / "root"
    bin_dir.mkdir()
    for tool in ("sh", "ls", "make", "cat"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    fakes = {"id": f"echo {uid}"}
    for tool in have:
        if tool == "chromium":
            (root / "usr" / "bin").mkdir(parents=True)
            (root / "usr" / "bin" / "chromium").write_text("#!/bin/sh\n")
            (root / "usr" / "bin" / "chromium").chmod(0o755)
        elif tool == "postgresql":
            (root / "usr/lib/postgresql/15/bin").mkdir(parents=True)
            (root / "usr/lib/postgresql/15/bin/initdb").touch()
        else:
            fakes[tool] = f'echo "{tool} $*" >> {tmp_path / "calls"}'
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return {"PATH": str(bin_dir), "SYSTEM_ROOT": str(root), "HOME": str(tmp_path)}


def system_packages(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ROOT / ".ci" / "system-packages")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.integration
def test_without_root_make_test_stops_at_once_with_the_command_to_run(tmp_path: Path) -> None:
    env = fake_machine(tmp_path, uid=1000)
    started = time.monotonic()
    done = subprocess.run(
        ["make", "-C", str(ROOT), "test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert time.monotonic() - started < 10
    assert done.returncode != 0
    expected = "sudo apt-get update && sudo apt-get install -y chromium systemd postgresql zsh"
    assert expected in done.stderr
    assert "ruff" not in done.stdout + done.stderr  # stopped before anything else ran


@pytest.mark.integration
def test_as_root_on_debian_the_missing_packages_are_installed(tmp_path: Path) -> None:
    env = fake_machine(tmp_path, uid=0, have=("apt-get", "chromium", "zsh"))
    done = system_packages(env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "calls").read_text().splitlines() == [
        "apt-get update -qq",
        "apt-get install -y -qq systemd postgresql",
    ]


@pytest.mark.integration
def test_as_root_without_apt_get_it_stops_with_the_command(tmp_path: Path) -> None:
    env = fake_machine(tmp_path, uid=0)
    done = system_packages(env)
    assert done.returncode == 1
    assert "apt-get install -y chromium systemd postgresql zsh" in done.stderr


@pytest.mark.integration
def test_with_everything_present_it_says_nothing(tmp_path: Path) -> None:
    env = fake_machine(
        tmp_path, uid=1000, have=("chromium", "postgresql", "systemd-analyze", "zsh")
    )
    done = system_packages(env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_readme_and_the_script_name_the_same_packages() -> None:
    script = (ROOT / ".ci" / "system-packages").read_text()
    named = re.findall(r'missing="\$missing (\w+)"', script)
    assert named == ["chromium", "systemd", "postgresql", "zsh"]
    assert f"sudo apt-get install -y {' '.join(named)}" in README.read_text()
