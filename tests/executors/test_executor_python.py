"""The python executor: callables resolved by name, sync and async, progress, failures."""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from scheduler.config import TaskConfig, TaskKind
from scheduler.errors import ExecutorError, PermanentError
from scheduler.executors import (
    PythonExecutor,
    TaskContext,
    build_executor,
    resolve_callable,
)
from scheduler.executors.python import MAX_RESULT_BYTES
from scheduler.model import Outcome, RunResult
from tests.fakes import run_context

make_ctx = functools.partial(run_context, task="py", payload={"email": "a@b.c"})


async def run(func: Any, **ctx_fields: Any) -> RunResult:
    return await PythonExecutor(func, task_name="py").run(make_ctx(**ctx_fields))


async def test_a_sync_function_gets_the_payload_in_a_worker_thread() -> None:
    loop_thread = threading.get_ident()
    seen: dict[str, Any] = {}

    def handler(payload: Any) -> dict[str, Any]:
        seen["thread"] = threading.get_ident()
        return {"sent_to": payload["email"]}

    result = await run(handler)

    assert result == RunResult(outcome=Outcome.SUCCESS, result={"sent_to": "a@b.c"})
    assert seen["thread"] != loop_thread


async def test_an_async_function_is_awaited_with_payload_and_context() -> None:
    seen: dict[str, Any] = {}

    async def handler(payload: Any, ctx: TaskContext) -> str:
        seen.update(
            payload=payload,
            job_id=ctx.job_id,
            fire_id=ctx.fire_id,
            attempt=ctx.attempt,
            scheduled_time=ctx.scheduled_time,
            workflow_id=ctx.workflow_id,
            ctx_payload=ctx.payload,
        )
        await asyncio.sleep(0)
        return "ok"

    result = await run(handler)

    assert result.result == "ok"
    assert seen == {
        "payload": {"email": "a@b.c"},
        "job_id": "01JOB",
        "fire_id": "01JOB:1800000000000",
        "attempt": 1,
        "scheduled_time": "2027-01-15T09:00:00+09:00",
        "workflow_id": "wf-1",
        "ctx_payload": {"email": "a@b.c"},
    }


async def test_a_task_changing_its_payload_does_not_change_the_jobs_payload() -> None:
    stored = {"items": [1, 2]}

    def handler(payload: Any, ctx: TaskContext) -> None:
        payload["items"].append(3)
        ctx.payload["extra"] = True

    result = await run(handler, payload=stored)
    assert result.outcome is Outcome.SUCCESS
    assert stored == {"items": [1, 2]}


async def test_a_function_without_parameters_is_called_without_arguments() -> None:
    result = await run(lambda: 42)
    assert result.result == 42


async def test_progress_from_the_worker_thread_is_delivered_on_the_loop() -> None:
    loop_thread = threading.get_ident()
    reports: list[tuple[float, str | None, int]] = []

    def report(percent: float, message: str | None) -> None:
        reports.append((percent, message, threading.get_ident()))

    def handler(payload: Any, ctx: TaskContext) -> None:
        ctx.progress(10)
        ctx.progress(50.5, "half way")
        ctx.progress(250, "over")

    await run(handler, report_progress=report)
    await asyncio.sleep(0)  # a report sent just before the return is still in the loop's queue

    assert reports == [
        (10.0, None, loop_thread),
        (50.5, "half way", loop_thread),
        (100.0, "over", loop_thread),
    ]


async def test_progress_from_an_async_task_is_delivered_at_once() -> None:
    reports: list[tuple[float, str | None]] = []

    async def handler(payload: Any, ctx: TaskContext) -> None:
        ctx.progress(30, "step 1")
        assert reports == [(30.0, "step 1")]

    result = await run(handler, report_progress=lambda p, m: reports.append((p, m)))
    assert result.outcome is Outcome.SUCCESS


async def test_progress_after_the_run_ended_is_ignored() -> None:
    reports: list[float] = []
    kept: list[TaskContext] = []

    async def handler(payload: Any, ctx: TaskContext) -> None:
        kept.append(ctx)

    await run(handler, report_progress=lambda p, m: reports.append(p))
    kept[0].progress(80)
    assert reports == []


@pytest.mark.parametrize("percent", [float("nan"), float("inf")])
async def test_a_non_finite_progress_fails_the_task_that_reports_it(percent: float) -> None:
    def handler(payload: Any, ctx: TaskContext) -> None:
        ctx.progress(percent)

    result = await run(handler)
    assert result.outcome is Outcome.ERROR
    assert (result.error or "").startswith("ValueError: progress percent must be finite")


async def test_a_permanent_error_is_not_retried() -> None:
    def handler(payload: Any) -> None:
        raise PermanentError("no such customer")

    result = await run(handler)
    assert result == RunResult(
        outcome=Outcome.ERROR, error="PermanentError: no such customer", retryable=False
    )


async def test_another_exception_is_a_retryable_error_naming_its_type() -> None:
    async def handler(payload: Any) -> None:
        raise ConnectionError("smtp down")

    result = await run(handler)
    assert result == RunResult(outcome=Outcome.ERROR, error="ConnectionError: smtp down")


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (SystemExit(3), "SystemExit: 3"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
        (GeneratorExit(), "GeneratorExit"),
    ],
)
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_task_raising_a_base_exception_is_recorded_not_propagated(
    exc: BaseException, error: str, kind: str
) -> None:
    def sync_handler(payload: Any) -> None:
        raise exc

    async def async_handler(payload: Any) -> None:
        raise exc

    result = await run(sync_handler if kind == "sync" else async_handler)
    assert result.outcome is Outcome.ERROR
    assert result.error == error
    assert result.retryable is True


async def test_a_cancelled_error_raised_by_the_task_itself_is_an_error() -> None:
    async def handler(payload: Any) -> None:
        raise asyncio.CancelledError

    result = await run(handler)
    assert result.outcome is Outcome.ERROR
    assert result.error == "CancelledError"


async def test_cancelling_an_async_task_propagates() -> None:
    started = asyncio.Event()

    async def handler(payload: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    running = asyncio.create_task(run(handler))
    await started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_a_hung_sync_task_returns_control_on_timeout_and_finishes_in_the_background() -> None:
    release = threading.Event()
    finished = threading.Event()
    reports: list[float] = []

    def handler(payload: Any, ctx: TaskContext) -> str:
        release.wait(10)
        ctx.progress(99)
        finished.set()
        return "late"

    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await run(handler, report_progress=lambda p, m: reports.append(p))
        assert not finished.is_set()
    finally:
        release.set()
    await asyncio.to_thread(finished.wait, 5)
    await asyncio.sleep(0)
    assert reports == []


async def test_a_result_that_is_not_json_is_kept_as_its_repr() -> None:
    class Receipt:
        def __repr__(self) -> str:
            return "<Receipt 7>"

    result = await run(lambda payload: Receipt())
    assert result.result == "<Receipt 7>"


async def test_a_json_result_is_stored_as_a_plain_copy() -> None:
    value: dict[str, tuple[int, ...]] = {"ids": (1, 2)}
    result = await run(lambda payload: value)
    value["ids"] = (3,)
    assert result.result == {"ids": [1, 2]}


async def test_a_huge_result_is_capped() -> None:
    result = await run(lambda payload: "x" * (MAX_RESULT_BYTES * 2))
    assert isinstance(result.result, str)
    assert result.result.endswith(f"… [truncated at {MAX_RESULT_BYTES} bytes]")
    assert len(result.result) < MAX_RESULT_BYTES + 40


def test_resolve_callable_imports_module_and_attribute_path() -> None:
    assert resolve_callable("json:dumps") is json.dumps
    assert resolve_callable("collections:OrderedDict.fromkeys") == (
        collections.OrderedDict.fromkeys
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("json.dumps", "expected 'package.module:function'"),
        (":dumps", "expected 'package.module:function'"),
        ("json:", "expected 'package.module:function'"),
        ("no_such_module_h3:run", "cannot import 'no_such_module_h3': ModuleNotFoundError"),
        ("json:nope", "'json' has no attribute 'nope'"),
        ("json:__name__", "'__name__' is not callable"),
    ],
)
def test_resolve_callable_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ExecutorError, match="callable") as caught:
        resolve_callable(spec)
    assert message in str(caught.value)
    assert caught.value.field == "callable"


def test_resolve_callable_reports_a_module_that_fails_to_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_tasks_h3.py").write_text("raise RuntimeError('missing setting')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ExecutorError, match="RuntimeError: missing setting"):
        resolve_callable("broken_tasks_h3:run")


def test_a_callable_needing_more_than_payload_and_ctx_is_rejected() -> None:
    def handler(payload: Any, ctx: Any, extra: Any) -> None: ...

    with pytest.raises(ExecutorError, match=r"\(payload\) or \(payload, ctx\)"):
        PythonExecutor(handler, task_name="py")


async def test_build_executor_resolves_a_python_task_by_name() -> None:
    task = TaskConfig(kind=TaskKind.PYTHON, callable="json:dumps")
    executor = build_executor("py", task, session=_no_session, env_base={})
    result = await executor.run(make_ctx(payload=[1, 2]))
    assert result.result == "[1, 2]"


def _no_session() -> Any:
    raise AssertionError("a python task needs no http session")
