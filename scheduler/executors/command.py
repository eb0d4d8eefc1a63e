"""The ``command`` task: one process per attempt, never through a shell.

Policy, and why:

- ``argv`` is executed directly in a new session, so the process leads its own process group:
  a timeout or a cancel stops the whole group (SIGTERM, ``kill_grace``, SIGKILL), grandchildren
  included, and a crash of the daemon does not take the command with it (recovery stops it
  with :func:`stop_stale_process`, checking the start time against pid reuse).
- The environment is the daemon's (minus what :func:`job_environment` drops, such as the API
  token), then the task's ``env``, then ``SCHEDULER_JOB_ID``, ``SCHEDULER_WORKFLOW_ID``,
  ``SCHEDULER_ATTEMPT`` and ``SCHEDULER_FIRE_ID``. The run's JSON document is on stdin.
- stdout and stderr are read as they arrive and only the last :data:`TAIL_BYTES` of each are
  kept, so memory stays bounded however much the process prints.
- The process's exit is watched apart from its pipes: a background process left behind that
  still holds stdout does not hold up the run; output is drained for :data:`DRAIN_AFTER_EXIT`
  seconds after the exit and the pipes are then closed. After a normal exit, processes left
  behind are the command's own business; only a timeout or a cancel stops the group.
- Exit 0 is success (result: the stdout tail). An exit code in ``no_retry_exit_codes`` is not
  retried. Any other exit, or a signal, is a retryable error that quotes the stderr tail.
- Secrets: the value of every variable of the command's environment (the task's ``env`` and
  what it inherits) whose name contains ``TOKEN``, ``SECRET``, ``PASS`` (``PASSWORD``,
  ``PASSWD``), ``KEY``, ``AUTH``, ``CREDENTIAL``, ``PRIVATE``, ``COOKIE`` or ``SIGNATURE`` (any
  case) is redacted from the output tails and the error (:func:`~.base.sane_result`), so a
  command that prints its environment or echoes a token does not store it with the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import signal
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import msgspec

from scheduler.errors import ExecutorError
from scheduler.executors.base import MAX_ERROR_CHARS, RunContext, Secrets, sane_result
from scheduler.executors.tasks import TaskConfig
from scheduler.model import Outcome, RunResult

_log = logging.getLogger(__name__)

#: Bytes of stdout and of stderr kept per run (the last ones).
TAIL_BYTES = 8192
#: Seconds to keep reading output after the process exited (a child may still hold the pipe).
DRAIN_AFTER_EXIT = 0.5
_POLL = 0.02  # seconds between checks that a signalled process group is gone
_KILL_WAIT = 2.0  # seconds a SIGKILLed group may take to go (it cannot refuse)
_NOT_RETRYABLE_START = frozenset({errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR})
#: Names of variables whose values are secrets (see the module docstring).
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASS|KEY|AUTH|CREDENTIAL|PRIVATE|COOKIE|SIGNATURE", re.I)


def env_secrets(env: Mapping[str, str]) -> Secrets:
    """The values of the secret-looking variables of ``env``."""
    return Secrets(value for name, value in env.items() if SECRET_NAME.search(name))


def job_environment(base: Mapping[str, str], *, drop: Iterable[str]) -> dict[str, str]:
    """``base`` without the variables named in ``drop`` (the API token, say), for jobs."""
    dropped = set(drop)
    return {key: value for key, value in base.items() if key not in dropped}


class CommandExecutor:
    """Runs a ``command`` task (see the module docstring for the policy)."""

    def __init__(self, task_name: str, task: TaskConfig, *, env_base: Mapping[str, str]) -> None:
        if not task.argv:
            raise ExecutorError(f"task {task_name!r}: a command task needs argv", field="argv")
        self._name = task_name
        self._argv = task.argv
        self._cwd = task.cwd
        self._env = {**env_base, **task.env}
        self._grace = task.kill_grace
        self._no_retry = frozenset(task.no_retry_exit_codes)
        self._secrets = env_secrets(self._env)

    async def run(self, ctx: RunContext) -> RunResult:
        try:
            async with _Pipes() as pipes:
                result = await self._run(ctx, pipes)
        except OSError as exc:  # no pipes or no process: nothing was started
            result = self._start_failed(exc)
        return sane_result(result, self._secrets)

    async def _run(self, ctx: RunContext, pipes: _Pipes) -> RunResult:
        stdin, stdout, stderr = pipes.child_fds
        proc = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=self._cwd,
            env=self._environment(ctx),
            start_new_session=True,
        )
        ctx.report_pid(proc.pid)
        try:
            code = await self._supervise(proc, pipes, ctx)
        except BaseException as exc:
            # Cancelled (timeout, cancel, shutdown) or broken: never leave the group behind.
            await terminate_group(proc.pid, self._grace)
            await proc.wait()
            if not isinstance(exc, Exception):
                raise
            _log.exception("task %r: unexpected error in the command executor", self._name)
            return RunResult(outcome=Outcome.ERROR, error=f"{type(exc).__name__}: {exc}")
        finally:
            ctx.report_pid(None)
        return self._result(
            code, pipes.stdout.text(self._secrets), pipes.stderr.text(self._secrets)
        )

    def _environment(self, ctx: RunContext) -> dict[str, str]:
        return self._env | {
            "SCHEDULER_JOB_ID": ctx.job_id,
            "SCHEDULER_WORKFLOW_ID": ctx.workflow_id or "",
            "SCHEDULER_ATTEMPT": str(ctx.attempt),
            "SCHEDULER_FIRE_ID": ctx.fire_id,
        }

    async def _supervise(
        self, proc: asyncio.subprocess.Process, pipes: _Pipes, ctx: RunContext
    ) -> int:
        await pipes.connect(msgspec.json.encode(ctx.body))
        # Process.wait() watches the exit only: none of the pipes belongs to the transport.
        code = await proc.wait()
        await pipes.drain(DRAIN_AFTER_EXIT)
        return code

    def _start_failed(self, exc: OSError) -> RunResult:
        reason = exc.strerror or str(exc)
        if exc.filename is not None and exc.filename != self._argv[0]:
            reason = f"{reason}: {exc.filename}"  # the working directory, say
        return RunResult(
            outcome=Outcome.ERROR,
            error=f"cannot start {self._argv[0]!r}: {reason}",
            retryable=exc.errno not in _NOT_RETRYABLE_START,
        )

    def _result(self, code: int, out: str, err: str) -> RunResult:
        if code == 0:
            return RunResult(outcome=Outcome.SUCCESS, result=out or None)
        error = f"killed by signal {_signal_name(-code)}" if code < 0 else f"exit code {code}"
        if err := err.strip():
            # The end of stderr says what went wrong: keep that part when it is long.
            room = MAX_ERROR_CHARS - len(error) - 2
            error = f"{error}: {err if len(err) <= room else '…' + err[-room + 1 :]}"
        return RunResult(
            outcome=Outcome.ERROR,
            error=error,
            result=out or None,
            retryable=code not in self._no_retry,
        )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


# --- pipes -----------------------------------------------------------------------------------


class _Tail(asyncio.Protocol):
    """Keeps the last ``limit`` bytes of a stream, dropping older ones as data arrives."""

    def __init__(self, limit: int, closed: asyncio.Future[None]) -> None:
        self._limit = limit
        self._buf = bytearray()
        self._dropped = 0
        self._closed = closed

    def itself(self) -> _Tail:
        """A protocol factory that hands out this very protocol."""
        return self

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > 2 * self._limit:  # trim in batches, not on every chunk
            self._drop(len(self._buf) - self._limit)

    def connection_lost(self, _exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)

    def _drop(self, count: int) -> None:
        del self._buf[:count]
        self._dropped += count

    def text(self, secrets: Secrets) -> str:
        """The tail as text, with ``secrets`` redacted (before the cut is marked, so that a
        secret cut in two at the start is caught too)."""
        if len(self._buf) > self._limit:
            self._drop(len(self._buf) - self._limit)
        data = bytes(self._buf)
        if not self._dropped:
            return secrets.redact(data.decode("utf-8", errors="replace"))
        # The cut may fall inside a UTF-8 sequence: skip its continuation bytes.
        start = 0
        while start < min(3, len(data)) and data[start] & 0xC0 == 0x80:
            start += 1
        return "…" + secrets.redact(data[start:].decode("utf-8", errors="replace"), cut_start=True)


class _Sink(asyncio.Protocol):
    """The write end of the child's stdin; nothing to do but exist."""


class _Pipes:
    """The child's stdin, stdout and stderr as plain OS pipes, wired to the loop by us.

    Handing the child file descriptors (rather than ``PIPE``) keeps the pipes out of asyncio's
    subprocess transport, whose ``wait()`` would otherwise also wait for every pipe to close:
    a grandchild holding stdout could then hold up the run forever.
    """

    stdout: _Tail
    stderr: _Tail

    def __init__(self) -> None:
        self._open: set[int] = set()
        self._child: list[int] = []  # stdin, stdout, stderr as the child sees them
        self._ours: list[int] = []
        self._eof: list[asyncio.Future[None]] = []
        self._transports: list[asyncio.BaseTransport] = []
        self._stdin: asyncio.WriteTransport | None = None

    async def __aenter__(self) -> _Pipes:
        loop = asyncio.get_running_loop()
        self._eof = [loop.create_future(), loop.create_future()]
        self.stdout = _Tail(TAIL_BYTES, self._eof[0])
        self.stderr = _Tail(TAIL_BYTES, self._eof[1])
        try:
            for index in range(3):
                read_end, write_end = os.pipe()  # close-on-exec: the child gets only its copy
                self._open |= {read_end, write_end}
                child, ours = (read_end, write_end) if index == 0 else (write_end, read_end)
                self._child.append(child)
                self._ours.append(ours)
        except OSError:  # out of file descriptors, say: release what was opened
            await self.__aexit__()
            raise
        return self

    @property
    def child_fds(self) -> tuple[int, int, int]:
        stdin, stdout, stderr = self._child
        return stdin, stdout, stderr

    async def connect(self, data: bytes) -> None:
        """After the start: close the child's ends here, hook ours to the loop, send ``data``."""
        for fd in self._child:
            self._close_fd(fd)
        loop = asyncio.get_running_loop()
        for fd, tail in zip(self._ours[1:], (self.stdout, self.stderr), strict=True):
            transport, _ = await loop.connect_read_pipe(tail.itself, self._adopt(fd, "rb"))
            self._transports.append(transport)
        stdin, _ = await loop.connect_write_pipe(_Sink, self._adopt(self._ours[0], "wb"))
        self._transports.append(stdin)
        self._stdin = stdin
        # Buffered by the transport and written as the child reads; EPIPE if it never does.
        stdin.write(data)
        stdin.write_eof()

    def _adopt(self, fd: int, mode: str) -> IO[Any]:
        """A file object for ``fd``; from now on its transport closes it."""
        self._open.discard(fd)
        return os.fdopen(fd, mode, buffering=0)

    async def drain(self, within: float) -> None:
        """Wait up to ``within`` seconds for both output pipes to reach end of file."""
        pending = [fut for fut in self._eof if not fut.done()]
        if pending:
            await asyncio.wait(pending, timeout=within)

    async def __aexit__(self, *exc_info: object) -> None:
        for fd in list(self._open):
            self._close_fd(fd)
        if self._stdin is not None and self._stdin.get_write_buffer_size():
            # Never read: drop it. (abort() with an empty buffer would close twice.)
            self._stdin.abort()
        for transport in self._transports:
            transport.close()
        await asyncio.sleep(0)  # let the transports' connection_lost callbacks close the files

    def _close_fd(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)


# --- process groups --------------------------------------------------------------------------


async def terminate_group(pgid: int, grace: float) -> bool:
    """SIGTERM the process group, wait up to ``grace`` seconds for it to go, then SIGKILL
    whatever is left. False if the group was already gone.

    The SIGKILL also happens if this coroutine is itself cancelled while waiting: a group is
    never left running because the daemon was in a hurry. After a SIGKILL it waits (at most
    :data:`_KILL_WAIT`) for the kernel to end the members, so that the run is over when this
    returns: a signal is delivered when its process is next scheduled, which on a busy machine
    is not at once.
    """
    if not _signal_group(pgid, signal.SIGTERM):
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    alive = True
    try:
        # No event tells when a process group is gone (its members are not our children).
        while (alive := _group_alive(pgid)) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(_POLL)
    finally:
        if alive:
            _signal_group(pgid, signal.SIGKILL)
    deadline = loop.time() + _KILL_WAIT
    while alive and (alive := _group_alive(pgid)) and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(_POLL / 4)
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs. Zombies do not count: under an init that
    does not reap (a container without one), exited members would otherwise look alive."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                return True
    return False


def _stat_fields(pid: int | str) -> list[str] | None:
    """/proc/PID/stat after the command name: index 0 is field 3 (state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return text[text.rfind(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (field 22 of /proc/PID/stat), or None
    when it does not run or this is not Linux. With the pid it identifies one process across
    pid reuse."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    with contextlib.suppress(ValueError):
        return int(fields[19])
    return None


async def stop_stale_process(pid: int, start_ticks: int | None, grace: float) -> bool:
    """Stop a command left running by a daemon that crashed: if ``pid`` still runs and started
    at ``start_ticks``, TERM its process group, wait ``grace``, KILL. True if it stopped one.

    Without a recorded start time the process cannot be told from a newer one that reused the
    pid, so it is left alone. The command was started as the leader of its own session, so its
    pid is its process group id.
    """
    if start_ticks is None or process_start_ticks(pid) != start_ticks:
        return False
    _log.warning("stopping process group %d left running by an earlier daemon", pid)
    return await terminate_group(pid, grace)


__all__ = [
    "CommandExecutor",
    "env_secrets",
    "job_environment",
    "process_start_ticks",
    "stop_stale_process",
    "terminate_group",
]
