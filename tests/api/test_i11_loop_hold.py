"""Issue 11: no single request holds the event loop long, whatever rule it names or body it
sends. Measured in-process as CPU time between two turns of the loop (a task that yields at every
turn records the longest stretch), so the figure does not depend on what else the machine runs;
the daemon-level stall tests (``test_i11_stall.py``) poll ``/healthz`` over the same requests, but
their 100 ms wall-clock limit is only met reliably if one turn holds the loop for well under that
in CPU time: :data:`HOLD` (30 ms, under a third of it).

- rule evaluation: creating rare rules, refusing a COUNT too costly to resolve, ``/next?n=1000``;
- input checking under concurrency: eight large hostile bodies arriving together are decoded one
  per turn of the loop (``scheduler.api.inputs.read_json``), so the loop is held for one decode
  at a time, not eight in a row.

The measure, :func:`tests.stall.loop_hold`, lives beside the wall-clock probe in ``tests/stall.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from scheduler import ids
from scheduler.api import inputs
from tests.api.harness import Api
from tests.stall import HOLD, loop_hold

LEAP_SECOND = "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=23;BYMINUTE=59;BYSECOND=59"


async def longest_hold(action: Callable[[], Awaitable[Any]]) -> float:
    """The longest loop hold of ``action``, the best of three runs (a GC pass or a cold cache
    in one run is not the request's cost)."""
    best = float("inf")
    for _ in range(3):
        async with loop_hold() as hold:
            await action()
        best = min(best, hold.longest)
    return best


async def test_the_hold_measure_sees_a_blocking_request(api: Api) -> None:
    """The measure itself: a handler that spins 60 ms of CPU is seen as one hold of that."""

    def spin() -> None:
        end = time.process_time() + 0.06
        while time.process_time() < end:
            pass

    async def blocking() -> None:
        await asyncio.sleep(0)
        spin()

    assert await longest_hold(blocking) >= 0.055


async def test_creating_rare_rules_holds_the_loop_briefly(api: Api) -> None:
    for rule in [LEAP_SECOND, LEAP_SECOND + ";COUNT=100000", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"]:

        async def create(rule: str = rule) -> None:
            status, body = await api.call(
                "POST", "/api/jobs", json={"task": "work", "schedule": {"rrule": rule}}
            )
            assert status == 201, body

        assert await longest_hold(create) < HOLD, rule


async def test_refusing_a_count_too_costly_to_resolve_holds_the_loop_briefly(api: Api) -> None:
    rule = "DTSTART:20260101T000000\nFREQ=WEEKLY;BYDAY=MO,TU;BYSETPOS=1;BYMONTH=2;COUNT=100000"

    async def refuse() -> None:
        status, body = await api.call(
            "POST", "/api/jobs", json={"task": "work", "schedule": {"rrule": rule}}
        )
        assert status == 400, body
        assert body["error"]["field"] == "schedule.rrule"

    assert await longest_hold(refuse) < HOLD


async def test_next_thousand_of_a_rare_rule_holds_the_loop_briefly(api: Api) -> None:
    job = await api.create(schedule={"rrule": LEAP_SECOND})

    async def upcoming() -> None:
        status, body = await api.call("GET", f"/api/jobs/{job['id']}/next?n=1000")
        assert status == 200, body
        assert len(body["items"]) == 1000

    assert await longest_hold(upcoming) < HOLD


async def test_next_times_yield_to_the_loop_and_answer_as_the_engine_does(api: Api) -> None:
    """The service walks the trigger itself, a turn of the loop every 100 queries; the answer
    is the engine's own walk, and a job deleted meanwhile is not compiled back into its cache."""
    job = await api.create(schedule={"rrule": "FREQ=MINUTELY;BYSECOND=7,41"})
    stored = api.sched.store.jobs[ids.decode(job["id"])]
    service, engine = api.sched.service, api.sched.engine
    assert await service.next_times(stored, 1) == [stored.scheduled]
    assert await service.next_times(stored, 250) == engine.triggers.next_times(stored, 250)

    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    asking = asyncio.create_task(service.next_times(stored, 1000))
    await asyncio.sleep(0)  # the walk has made its first 100 queries and yielded
    await service.delete(job["id"])
    assert len(await asking) == 1000
    counter.cancel()
    assert turns >= 9
    assert stored.id not in engine.triggers._triggers


# --- large bodies, eight at once --------------------------------------------------------------

UNKNOWN_KEYS = msgspec.json.encode({"task": "work", **{f"{i:x}": 1 for i in range(60_000)}})
BRACKETS = b'{"task": "work", "payload": ' + b"[" * 500_000 + b"]" * 500_000 + b"}"
JSON = {"Content-Type": "application/json"}


async def eight_at_once(api: Api, body: bytes, field: str) -> None:
    async def one() -> None:
        status, answer = await api.call("POST", "/api/jobs", data=body, headers=JSON)
        assert status == 400, answer
        assert answer["error"]["field"] == field, answer

    await asyncio.gather(*(one() for _ in range(8)))


async def test_eight_bodies_of_60000_unknown_keys_hold_the_loop_for_one_at_a_time(
    api: Api,
) -> None:
    assert len(UNKNOWN_KEYS) >= inputs.LARGE_BODY
    # one body alone: ~12 ms; eight in one loop turn, as before: ~100 ms
    assert await longest_hold(lambda: eight_at_once(api, UNKNOWN_KEYS, "0")) < HOLD


async def test_small_bodies_are_decoded_at_once(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only large bodies wait their turn: a small one never touches the lock."""
    monkeypatch.setattr(inputs, "_LARGE_BODY_LOCKS", None)  # would fail if used
    status, body = await api.call("POST", "/api/jobs", json={"task": "work"})
    assert status == 201, body


async def test_a_large_body_that_is_valid_is_created(api: Api) -> None:
    payload = "x" * inputs.LARGE_BODY
    status, body = await api.call("POST", "/api/jobs", json={"task": "work", "payload": payload})
    assert status == 201, body
    assert (await api.get(body["id"]))["payload"] == payload


async def test_a_mebibyte_of_brackets_holds_the_loop_briefly(api: Api) -> None:
    assert await longest_hold(lambda: eight_at_once(api, BRACKETS, "body")) < HOLD
