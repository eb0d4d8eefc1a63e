"""The command executor against real processes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from scheduler.config import TaskConfig, TaskKind
from scheduler.executors import (
    CommandExecutor,
    build_executor,
    job_environment,
    process_start_ticks,
    stop_stale_process,
)
from scheduler.executors.base import MAX_ERROR_CHARS
from scheduler.executors.command import TAIL_BYTES
from scheduler.model import Outcome, RunResult
from tests.fakes import run_context

pytestmark = pytest.mark.integration  # real commands: sh, sleep, python

BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "FROM_BASE": "base"}


make_ctx = functools.partial(run_context, task="cmd", payload={"n": 1}, attempt=3)


def command(*argv: str, **fields: Any) -> CommandExecutor:
    task = TaskConfig(kind=TaskKind.COMMAND, argv=argv, **fields)
    return CommandExecutor("cmd", task, env_base=BASE_ENV)


def python(code: str, **fields: Any) -> CommandExecutor:
    return command(sys.executable, "-c", code, **fields)


def live_members(pgid: int) -> list[int]:
    """Processes of the group that still run (zombies left to a non-reaping init are gone)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


async def wait_for_members(pgid: int, count: int) -> None:
    async with asyncio.timeout(5):
        while len(live_members(pgid)) < count:  # noqa: ASYNC110 (nothing to wait on but /proc)
            await asyncio.sleep(0.01)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


async def test_it_writes_the_run_document_to_stdin_and_sets_the_environment() -> None:
    script = (
        "import json, os, sys\n"
        "names = ['FROM_BASE', 'FROM_TASK', 'SCHEDULER_JOB_ID', 'SCHEDULER_WORKFLOW_ID',\n"
        "         'SCHEDULER_ATTEMPT', 'SCHEDULER_FIRE_ID']\n"
        "print(json.dumps({'body': json.load(sys.stdin),\n"
        "                  'env': {n: os.environ.get(n) for n in names}}))\n"
    )
    result = await python(script, env={"FROM_TASK": "task"}).run(make_ctx())

    assert result.outcome is Outcome.SUCCESS
    seen = json.loads(result.result)
    assert seen["body"] == {
        "jobId": "01JOB",
        "workflowId": "wf-1",
        "workflowName": "Nightly",
        "payload": {"n": 1},
        "attempt": 3,
        "scheduledTime": "2027-01-15T09:00:00+09:00",
    }
    assert seen["env"] == {
        "FROM_BASE": "base",
        "FROM_TASK": "task",
        "SCHEDULER_JOB_ID": "01JOB",
        "SCHEDULER_WORKFLOW_ID": "wf-1",
        "SCHEDULER_ATTEMPT": "3",
        "SCHEDULER_FIRE_ID": "01JOB:1800000000000",
    }


async def test_it_runs_in_the_configured_directory(tmp_path: Path) -> None:
    result = await python("import os; print(os.getcwd())", cwd=str(tmp_path)).run(make_ctx())
    assert result.result == f"{tmp_path}\n"


def test_the_job_environment_drops_the_named_variables() -> None:
    base = {"PATH": "/bin", "SCHEDULER_API_TOKEN": "s3cret", "HOME": "/root"}
    assert job_environment(base, drop=["SCHEDULER_API_TOKEN"]) == {"PATH": "/bin", "HOME": "/root"}


async def test_it_reports_the_pid_at_start_and_none_once_reaped() -> None:
    pids: list[int | None] = []
    result = await python("import os; print(os.getpid())").run(make_ctx(report_pid=pids.append))
    assert pids == [int(result.result), None]


async def test_only_a_bounded_tail_of_a_large_output_is_kept() -> None:
    script = (
        "import sys\n"
        "for i in range(20000):\n"
        "    sys.stdout.write(f'out {i:06d} ' + 'o' * 500 + '\\n')\n"
        "    sys.stderr.write(f'err {i:06d} ' + 'e' * 500 + '\\n')\n"
        "sys.stdout.write('END-OUT'); sys.stderr.write('END-ERR')\n"
        "sys.exit(4)\n"
    )
    result = await python(script).run(make_ctx())

    assert result.outcome is Outcome.ERROR
    assert result.error is not None
    assert result.error.startswith("exit code 4: …")
    assert result.error.endswith("END-ERR")
    assert len(result.error) <= MAX_ERROR_CHARS
    assert result.result.startswith("…")
    assert result.result.endswith("END-OUT")
    assert len(result.result.encode()) <= TAIL_BYTES + len("…".encode())


async def test_a_nonzero_exit_is_a_retryable_error_quoting_stderr() -> None:
    script = "import sys; print('partial'); sys.stderr.write('disk full\\n'); sys.exit(7)"
    result = await python(script).run(make_ctx())

    assert result.outcome is Outcome.ERROR
    assert result.error == "exit code 7: disk full"
    assert result.result == "partial\n"
    assert result.retryable is True


async def test_an_exit_code_listed_in_no_retry_exit_codes_is_not_retried() -> None:
    result = await python("import sys; sys.exit(3)", no_retry_exit_codes=(3, 9)).run(make_ctx())
    assert result.error == "exit code 3"
    assert result.retryable is False


async def test_a_process_killed_by_a_signal_says_which() -> None:
    result = await python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)").run(make_ctx())
    assert result.outcome is Outcome.ERROR
    assert result.error == "killed by signal SIGKILL"
    assert result.retryable is True


async def test_a_missing_executable_is_an_error_that_is_not_retried() -> None:
    result = await command("/nonexistent/bin/tool", "--flag").run(make_ctx())
    assert result.outcome is Outcome.ERROR
    assert result.error == "cannot start '/nonexistent/bin/tool': No such file or directory"
    assert result.retryable is False


async def test_a_missing_working_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    result = await command("true", cwd=str(missing)).run(make_ctx())
    assert result.error == f"cannot start 'true': No such file or directory: {missing}"
    assert result.retryable is False


async def test_a_silent_success_has_no_result() -> None:
    result = await command("true").run(make_ctx())
    assert result == RunResult(outcome=Outcome.SUCCESS)


async def test_a_background_process_holding_the_output_does_not_hold_up_the_run() -> None:
    pids: list[int | None] = []
    # The leftover sleep holds stdout and stdin; the payload is larger than a pipe's buffer.
    executor = command("sh", "-c", "sleep 30 & echo done")
    started = time.monotonic()
    try:
        result = await executor.run(make_ctx(payload="p" * 1_000_000, report_pid=pids.append))
    finally:
        assert pids
        assert pids[0] is not None
        kill_group(pids[0])
    assert time.monotonic() - started < 3
    assert result.outcome is Outcome.SUCCESS
    assert result.result == "done\n"


async def test_cancel_stops_the_whole_process_group_including_grandchildren() -> None:
    pids: list[int | None] = []
    executor = command("sh", "-c", "sleep 30 & sleep 30", kill_grace=2.0)
    run = asyncio.create_task(executor.run(make_ctx(report_pid=pids.append)))
    await wait_for_members_of(pids, 2)
    pgid = pids[0]
    assert pgid is not None

    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    assert live_members(pgid) == []
    assert pids == [pgid, None]


async def wait_for_members_of(pids: list[int | None], count: int) -> None:
    async with asyncio.timeout(5):
        while not pids:  # noqa: ASYNC110 (a plain callback records the pid)
            await asyncio.sleep(0.01)
    pgid = pids[0]
    assert pgid is not None
    await wait_for_members(pgid, count)


async def test_a_group_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    pids: list[int | None] = []
    executor = command("sh", "-c", "trap '' TERM; sleep 30 & sleep 30", kill_grace=0.3)
    run = asyncio.create_task(executor.run(make_ctx(report_pid=pids.append)))
    await wait_for_members_of(pids, 2)
    pgid = pids[0]
    assert pgid is not None

    started = time.monotonic()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    assert time.monotonic() - started >= 0.3
    assert live_members(pgid) == []


async def test_the_engines_timeout_stops_the_command() -> None:
    pids: list[int | None] = []
    executor = command("sh", "-c", "sleep 30 & sleep 30", kill_grace=1.0)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await executor.run(make_ctx(report_pid=pids.append))

    assert time.monotonic() - started < 2
    pgid = pids[0]
    assert pgid is not None
    assert live_members(pgid) == []
    assert pids[-1] is None


def test_process_start_ticks_identify_a_running_process() -> None:
    ticks = process_start_ticks(os.getpid())
    assert isinstance(ticks, int)
    assert ticks > 0
    assert process_start_ticks(os.getpid()) == ticks


def test_process_start_ticks_of_no_process_is_none() -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert process_start_ticks(pid_max + 1) is None


async def test_a_stale_process_with_matching_start_ticks_is_stopped() -> None:
    proc = await asyncio.create_subprocess_exec("sleep", "30", start_new_session=True)
    ticks = process_start_ticks(proc.pid)

    assert await stop_stale_process(proc.pid, ticks, 2.0) is True
    assert await proc.wait() == -signal.SIGTERM


@pytest.mark.parametrize("recorded", ["other", None])
async def test_a_process_that_cannot_be_identified_is_left_alone(recorded: str | None) -> None:
    proc = await asyncio.create_subprocess_exec("sleep", "30", start_new_session=True)
    try:
        ticks = process_start_ticks(proc.pid)
        assert ticks is not None
        start_ticks = ticks - 1 if recorded == "other" else None
        assert await stop_stale_process(proc.pid, start_ticks, 0.1) is False
        assert proc.returncode is None
        assert live_members(proc.pid) == [proc.pid]
    finally:
        proc.kill()
        await proc.wait()


async def test_a_stale_process_that_is_gone_is_not_stopped() -> None:
    proc = await asyncio.create_subprocess_exec("sleep", "30", start_new_session=True)
    ticks = process_start_ticks(proc.pid)
    assert ticks is not None
    proc.kill()
    await proc.wait()
    assert await stop_stale_process(proc.pid, ticks, 0.1) is False


async def test_a_failure_after_the_start_is_an_error_and_stops_the_process() -> None:
    pids: list[int | None] = []
    executor = command("sleep", "30", kill_grace=1.0)
    result = await executor.run(make_ctx(payload=object(), report_pid=pids.append))

    assert result.outcome is Outcome.ERROR
    assert (result.error or "").startswith("TypeError: ")
    pgid = pids[0]
    assert pgid is not None
    assert live_members(pgid) == []
    assert pids[-1] is None


async def test_build_executor_makes_a_command_executor_with_the_base_environment() -> None:
    task = TaskConfig(kind=TaskKind.COMMAND, argv=("sh", "-c", "echo $FROM_BASE"))
    executor = build_executor("cmd", task, session=_no_session, env_base=BASE_ENV)
    result = await executor.run(make_ctx())
    assert result.result == "base\n"


def _no_session() -> Any:
    raise AssertionError("a command task needs no http session")
