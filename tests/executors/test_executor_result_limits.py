"""What a task or a remote system sends back is bounded before it is stored (issue 11: a webhook
reply nested ~980 levels deep stopped the daemon when the run's end was journalled; a
``Retry-After: 999999999999`` pushed a retry past year 9999)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.checks import MAX_JSON_DEPTH, nested_deeper
from scheduler.config import Config, FsyncMode, PersistenceConfig, TaskConfig, TaskKind
from scheduler.executors import HttpExecutor, PythonExecutor
from scheduler.executors.base import (
    MAX_ERROR_CHARS,
    MAX_RESULT_BYTES,
    MAX_RETRY_AFTER,
    TOO_DEEP,
    bounded_result,
    sane_result,
)
from scheduler.executors.http import parse_retry_after
from scheduler.executors.python import MAX_PROGRESS_CHARS
from scheduler.model import AddRun, JobStatus, Outcome, Run, RunResult
from scheduler.persistence.codec import RecordCodec
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock, bare_context

ServerFactory = Callable[..., Awaitable[TestServer]]
NOW = 1_900_000_000.0


def deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def encodes_in_a_run_record(value: Any, *, stack_depth: int = 300) -> bool:
    """Whether a run carrying ``value`` encodes for the journal from ``stack_depth`` frames
    down (the engine journals from well inside the stack): not too deep, no integer past 64
    bits, no lone surrogate."""

    def at(depth: int) -> bytes:
        if depth:
            return at(depth - 1)
        run = Run(job_id=1, fire=NOW, attempt=1, outcome=Outcome.SUCCESS, result=value)
        return RecordCodec().encode(1, AddRun(run))

    try:
        at(stack_depth)
    except (RecursionError, OverflowError, UnicodeEncodeError):
        return False
    return True


# --- the one bounding function ---------------------------------------------------------------


def test_a_value_nested_within_the_limit_is_kept_as_a_plain_copy() -> None:
    value = deep(MAX_JSON_DEPTH)
    assert bounded_result(value) == value
    assert bounded_result({"a": (1, 2)}) == {"a": [1, 2]}


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 980, 5000])
def test_a_value_nested_deeper_is_a_short_note(depth: int) -> None:
    assert not encodes_in_a_run_record(deep(980))  # what used to reach the journal
    assert bounded_result(deep(depth)) == TOO_DEEP
    assert encodes_in_a_run_record(bounded_result(deep(depth)))


def test_a_large_value_is_cut_text_and_a_text_loses_lone_surrogates() -> None:
    cut = bounded_result(["x" * 100] * 10_000)
    assert isinstance(cut, str)
    assert cut.endswith(f"… [truncated at {MAX_RESULT_BYTES} bytes]")
    assert len(cut.encode()) < MAX_RESULT_BYTES + 40
    assert bounded_result("a\ud800b") == "a?b"
    assert encodes_in_a_run_record(bounded_result({"k": "\udfff"}))


def test_a_value_that_is_not_json_is_its_repr() -> None:
    class Odd:
        def __repr__(self) -> str:
            return "<odd \ud800>"

    assert bounded_result(complex(1, 2)) == "(1+2j)"
    assert bounded_result(Odd()) == "<odd ?>"


def test_an_integer_past_64_bits_becomes_its_text() -> None:
    # JSON allows any integer; the journal (msgpack) holds 64 bits: 10**30 stopped the engine.
    value = {"id": 10**30, "ok": [2**64 - 1, -(2**63)]}
    assert not encodes_in_a_run_record(value)
    kept = bounded_result(value)
    assert kept == {"id": str(10**30), "ok": [2**64 - 1, -(2**63)]}
    assert encodes_in_a_run_record(kept)
    assert bounded_result(-(2**63) - 1) == str(-(2**63) - 1)


def test_sane_result_bounds_the_error_and_clamps_the_wait() -> None:
    result = sane_result(
        RunResult(outcome=Outcome.ERROR, error="e\ud800" * 5000, retry_after=1e300)
    )
    assert result.error is not None
    assert len(result.error) == MAX_ERROR_CHARS
    assert "\ud800" not in result.error
    assert result.retry_after == MAX_RETRY_AFTER
    assert sane_result(RunResult(outcome=Outcome.ERROR, retry_after=-5.0)).retry_after == 0.0
    nan = sane_result(RunResult(outcome=Outcome.ERROR, retry_after=float("nan")))
    assert nan.retry_after is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(_json, st.integers(min_value=0, max_value=150))
def test_any_result_wrapped_at_any_depth_is_bounded_and_storable(value: Any, wrap: int) -> None:
    for _ in range(wrap):
        value = [value]
    kept = bounded_result(value)
    assert not nested_deeper(kept)
    assert len(msgspec.json.encode(kept)) <= MAX_RESULT_BYTES + 64
    assert encodes_in_a_run_record(kept)


# --- Retry-After -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("999999999999", MAX_RETRY_AFTER),
        ("9" * 5000, MAX_RETRY_AFTER),  # int() refuses more than 4300 digits: no crash
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("\uff11\uff12", None),  # digits, but not ASCII ones
        ("-5", None),
        ("soon", None),
        ("x" * 100_000, None),
    ],
)
def test_retry_after_is_clamped_to_a_day(header: str, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


# --- the executors ---------------------------------------------------------------------------


async def serve_bytes(
    aiohttp_server: ServerFactory, body: bytes, status: int = 200, **headers: str
) -> str:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=status, body=body, content_type="application/json", headers=headers
        )

    app = web.Application()
    app.router.add_route("*", "/hook", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("/hook"))


async def call_hook(url: str, session: aiohttp.ClientSession) -> RunResult:
    task = TaskConfig(kind=TaskKind.HTTP, url=url, max_response_bytes=1024 * 1024)
    return await HttpExecutor("hook", task, session).run(bare_context())


@pytest.mark.parametrize(("depth", "status"), [(980, 200), (5000, 200), (980, 500)])
async def test_a_webhook_reply_nested_too_deep_is_a_note(
    aiohttp_server: ServerFactory,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    depth: int,
    status: int,
) -> None:
    url = await serve_bytes(aiohttp_server, deep_json(depth), status)
    result = await call_hook(url, session)
    assert result.outcome is (Outcome.SUCCESS if status == 200 else Outcome.ERROR)
    assert result.result == TOO_DEEP
    assert encodes_in_a_run_record(result.result)
    assert "Traceback" not in caplog.text


async def test_a_webhook_reply_within_the_depth_is_kept(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    url = await serve_bytes(aiohttp_server, deep_json(MAX_JSON_DEPTH))
    assert (await call_hook(url, session)).result == deep(MAX_JSON_DEPTH)


async def test_a_webhook_reply_with_a_huge_integer_is_kept_as_its_text(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    url = await serve_bytes(aiohttp_server, b'{"id": 123456789012345678901234567890}')
    result = await call_hook(url, session)
    assert result.result == {"id": "123456789012345678901234567890"}
    assert encodes_in_a_run_record(result.result)


async def test_a_huge_retry_after_from_a_webhook_is_a_day(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    url = await serve_bytes(aiohttp_server, b"{}", 429, **{"Retry-After": "999999999999"})
    result = await call_hook(url, session)
    assert result.retry_after == MAX_RETRY_AFTER


async def run_python(func: Any, **ctx: Any) -> RunResult:
    return await PythonExecutor(func, task_name="py").run(bare_context(**ctx))


async def test_a_python_task_returning_a_deep_value_gets_a_note() -> None:
    result = await run_python(lambda payload: deep(980))
    assert result.outcome is Outcome.SUCCESS
    assert result.result == TOO_DEEP
    assert (await run_python(lambda payload: [10**30])).result == [str(10**30)]


async def test_a_python_error_with_a_lone_surrogate_can_be_stored() -> None:
    async def broken(payload: Any) -> None:
        raise RuntimeError("bad \ud800 byte")

    result = await run_python(broken)
    assert result.error == "RuntimeError: bad ? byte"
    msgspec.json.encode(result.error)


async def test_a_progress_message_is_cut_and_clean() -> None:
    seen: list[tuple[float, str | None]] = []

    async def chatty(payload: Any, ctx: Any) -> None:
        ctx.progress(50, "m\ud800" * 10_000)

    await run_python(chatty, report_progress=lambda p, m: seen.append((p, m)))
    ((percent, message),) = seen
    assert percent == 50
    assert message is not None
    assert len(message) == MAX_PROGRESS_CHARS
    msgspec.json.encode(message)


# --- end to end: the run is journalled and survives a restart ---------------------------------


async def test_a_deep_webhook_reply_is_journalled_as_a_note_and_survives_a_restart(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    url = await serve_bytes(aiohttp_server, deep_json(980))
    config = Config(
        persistence=PersistenceConfig(dir=str(tmp_path), fsync=FsyncMode.NEVER),
        tasks={"hook": TaskConfig(kind=TaskKind.HTTP, url=url)},
    )
    clock = FakeClock(NOW)
    sched = Scheduler(config, clock=clock, environ={})
    await sched.start()
    ref = await sched.create_task("hook")
    for _ in range(300):  # the request is real network I/O on this machine: up to 3 s
        await clock.advance(0)
        if sched.service.get(ref.id).status is JobStatus.COMPLETED:
            break
        await asyncio.sleep(0.01)
    assert sched.service.get(ref.id).result == TOO_DEEP
    await sched.stop(grace=0)

    again = Scheduler(config, clock=clock, environ={})
    await again.start()
    job = again.service.get(ref.id)
    assert (job.status, job.result) == (JobStatus.COMPLETED, TOO_DEEP)
    await again.stop(grace=0)
