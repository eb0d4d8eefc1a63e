"""The ``python`` task: call a function in this process.

Policy, and why:

- The callable is resolved once (:func:`resolve_callable`, at config load) and its signature
  read once: ``func(payload, ctx)`` when it takes two or more positional arguments (or
  ``*args``), ``func(payload)`` when it takes one, ``func()`` when none.
- A coroutine function is awaited on the loop. A plain function runs in a daemon thread of its
  own, not in the loop's shared default executor: a hung function then neither starves the
  threads that DNS lookups and snapshot writes need nor keeps the process from exiting.
- A Python thread cannot be killed. When the run is cancelled (timeout, cancel, shutdown) the
  executor returns control at once and lets ``CancelledError`` propagate; the function keeps
  running in its thread until it returns, and its result and progress reports are dropped.
- A job can never take the engine down: any exception the task raises (``SystemExit``,
  ``KeyboardInterrupt`` and ``GeneratorExit`` included) is a recorded error
  ``"TypeName: message"``; :class:`scheduler.errors.PermanentError` is not retried. Only
  ``asyncio.CancelledError`` propagates.
- The task gets its own copy of the payload, so changing it cannot touch the stored job.
- The result is the return value when it encodes as JSON (stored as its JSON decoding, a
  plain copy the task can no longer mutate), else its ``repr``; either is capped at
  :data:`MAX_RESULT_BYTES`, and a value nested more than 64 levels deep is replaced by a note
  (:func:`~.base.sane_result`). A progress message is cut to :data:`MAX_PROGRESS_CHARS`.
- A python task is given no configured secrets, so there is nothing of the task's to redact.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import inspect
import logging
import math
import threading
import traceback
from collections.abc import Callable
from typing import Any, Final

import msgspec

from scheduler.errors import ExecutorError, PermanentError
from scheduler.executors.base import MAX_RESULT_BYTES, RunContext, clip, safe_text, sane_result
from scheduler.model import Outcome, RunResult

_log = logging.getLogger(__name__)

#: Longest progress message kept; progress is shown on every job listing and event.
MAX_PROGRESS_CHARS = 500

__all__ = [
    "MAX_PROGRESS_CHARS",
    "MAX_RESULT_BYTES",
    "PythonExecutor",
    "TaskContext",
    "resolve_callable",
]


def resolve_callable(spec: str) -> Callable[..., Any]:
    """The function named by ``"package.module:function"`` (``"module:Class.method"`` works
    too), imported now; :class:`ExecutorError` says what is wrong otherwise."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ExecutorError(
            f"callable {spec!r}: expected 'package.module:function'", field="callable"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ExecutorError(
            f"callable {spec!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}",
            field="callable",
        ) from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ExecutorError(
                f"callable {spec!r}: {module_name!r} has no attribute {attr_path!r}",
                field="callable",
            ) from None
    if not callable(target):
        raise ExecutorError(f"callable {spec!r}: {attr_path!r} is not callable", field="callable")
    return target  # type: ignore[no-any-return]  # getattr chain: checked callable just above


class TaskContext:
    """What a python task receives beside its payload.

    :meth:`progress` may be called from the task's worker thread as well as from the loop;
    calls after the run ended are ignored.
    """

    __slots__ = (
        "_loop",
        "_open",
        "_report",
        "_run",
        "_thread",
        "attempt",
        "fire_id",
        "job_id",
        "payload",
        "task",
        "workflow_id",
        "workflow_name",
    )

    def __init__(self, run: RunContext, loop: asyncio.AbstractEventLoop, payload: Any) -> None:
        self.job_id = run.job_id
        self.fire_id = run.fire_id
        self.attempt = run.attempt
        self._run = run
        self.payload = payload
        self.workflow_id = run.workflow_id
        self.workflow_name = run.workflow_name
        self.task = run.task
        self._report = run.report_progress
        self._loop = loop
        self._thread = threading.get_ident()
        self._open = True

    @property
    def scheduled_time(self) -> str | None:
        """The run's scheduled instant, ISO 8601 in the job's zone."""
        return self._run.scheduled_time

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress: ``percent`` (clamped to 0..100) and an optional message."""
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            raise TypeError(f"progress percent must be a number, got {type(percent).__name__}")
        if not math.isfinite(percent):
            raise ValueError(f"progress percent must be finite, got {percent!r}")
        value = min(100.0, max(0.0, float(percent)))
        text = None if message is None else clip(safe_text(str(message)), MAX_PROGRESS_CHARS)
        if threading.get_ident() == self._thread:
            self._deliver(value, text)
        elif not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._deliver, value, text)
            except RuntimeError:  # the loop closed in between; nobody is listening any more
                return

    def _deliver(self, percent: float, message: str | None) -> None:
        if self._open:
            self._report(percent, message)

    def close(self) -> None:
        """The run ended: later progress reports (from a thread left running) are dropped."""
        self._open = False


#: The result of a task that returned nothing (records are frozen: one serves every run).
SUCCEEDED: Final = RunResult(outcome=Outcome.SUCCESS)


class PythonExecutor:
    """Runs a python task (see the module docstring for the policy)."""

    def __init__(self, func: Callable[..., Any], *, task_name: str) -> None:
        self._func = func
        self._name = task_name
        self._arity = _arity(func, task_name)
        self._is_async = _is_coroutine_function(func)

    async def run(self, ctx: RunContext) -> RunResult:
        payload = _private_copy(ctx.payload)
        # The context is built only for a callable that takes it (most take the payload alone).
        task_ctx = None
        if self._arity == 2:
            task_ctx = TaskContext(ctx, asyncio.get_running_loop(), payload)
            args: tuple[Any, ...] = (payload, task_ctx)
        else:
            args = (payload,)[: self._arity]
        try:
            if self._is_async:
                value = await self._func(*args)
            else:
                value = await self._in_thread(args)
        except asyncio.CancelledError as exc:
            if not _being_cancelled():  # the task's own code raised it: an error like any other
                return self._failed(exc)
            if not self._is_async:
                _log.warning(
                    "task %r cancelled; its thread runs on until the function returns", self._name
                )
            raise
        except BaseException as exc:  # noqa: BLE001 (a task must never take the engine down)
            return self._failed(exc)
        finally:
            if task_ctx is not None:
                task_ctx.close()
        if value is None:
            return SUCCEEDED  # nothing to bound: the one shared record
        return sane_result(RunResult(outcome=Outcome.SUCCESS, result=value))

    async def _in_thread(self, args: tuple[Any, ...]) -> Any:
        """Call the function in a new daemon thread and wait for it (see the module docstring
        for why not ``asyncio.to_thread``). Context variables are carried over.

        The thread's exception travels as a value and is raised here: set on the future, the
        task would *throw* it into the coroutine chain, and a thrown ``GeneratorExit`` closes
        the chain instead of reaching the handler in :meth:`run`.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[Any, BaseException | None]] = loop.create_future()
        context = contextvars.copy_context()

        def settle(value: Any, error: BaseException | None) -> None:
            if not done.done():  # else cancelled while the thread ran: nobody wants it
                done.set_result((value, error))

        def target() -> None:
            value: Any = None
            error: BaseException | None = None
            try:
                value = context.run(self._func, *args)
            except BaseException as exc:  # noqa: BLE001 (handed to the loop, which records it)
                error = exc
            try:
                loop.call_soon_threadsafe(settle, value, error)
            except RuntimeError:  # the loop is gone: nobody is waiting for this result
                return

        threading.Thread(target=target, name=f"task:{self._name}", daemon=True).start()
        value, error = await done
        if error is not None:
            raise error
        if inspect.isawaitable(value):  # a plain function that returned a coroutine
            value = await value
        return value

    def _failed(self, exc: BaseException) -> RunResult:
        message = _safe_str(exc)
        error = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        result = sane_result(
            RunResult(
                outcome=Outcome.ERROR, error=error, retryable=not isinstance(exc, PermanentError)
            )
        )
        # The traceback is formatted here and cleaned like the error: a message may hold
        # text UTF-8 cannot carry (lone surrogates), which would break a log handler.
        trace = safe_text("".join(traceback.format_exception(exc)).rstrip())
        _log.warning("task %r failed: %s\n%s", self._name, result.error, trace)
        return result


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _is_coroutine_function(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 (an object whose __call__ is async)
    )


def _arity(func: Callable[..., Any], task_name: str) -> int:
    """How many of ``(payload, ctx)`` to pass: see the module docstring."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: give them the payload
        return 1
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    keyword_only = [p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    if len(required) > 2 or keyword_only:
        raise ExecutorError(
            f"task {task_name!r}: the callable must take (payload) or (payload, ctx)",
            field="callable",
        )
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 2
    return min(len(positional), 2)


def _private_copy(payload: Any) -> Any:
    """A copy of the payload the task may change freely: the stored job keeps the original
    (which the loop may be encoding for the journal while a worker thread runs)."""
    if payload is None or isinstance(payload, str | int | float | bool):
        return payload
    try:
        return msgspec.json.decode(msgspec.json.encode(payload))
    except Exception:  # noqa: BLE001 (not JSON: a library caller's own object, passed as is)
        return payload


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 (a broken __str__ must not take the engine down)
        return f"<unprintable {type(exc).__name__}>"
