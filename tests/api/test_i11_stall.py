"""Issue 11, the loop-stall findings the HTTP stall tests (``test_http_stall.py``) do not poll:
rule evaluation, and input checking that scales with hostile input. Against the real daemon,
with ``/healthz`` polled every 10 ms (``tests/stall.py``) while the hostile requests run: no gap
over 100 ms, every hostile request answered (400 naming the field, or a bounded 2xx), and no
traceback in the log.

- rules that match once in four years (the audit's ``FREQ=SECONDLY;...;BYSECOND=59``, with and
  without a COUNT) and rules that never match, sent by POST, PATCH and PUT, then
  ``/next`` of each, and the same after a restart with the rules stored;
- 60,000 unknown keys in one body on every route that reads a body; 500 KB zone names and other
  huge values. (Eight such bodies at once are decoded one per loop turn: ``test_i11_loop_hold.py``
  pins that as CPU time, which the load of a shared machine cannot blur; each turn costs
  12-17 ms of CPU, and on a two-core box at load 4 that alone can show as a 100 ms gap.)

Catch-up after a long downtime or a clock step is in ``tests/engine/test_i11_catchup_stall.py``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.daemon_proc import DaemonProcess
from tests.stall import watch

# Timing-sensitive, like test_http_stall.py: one xdist worker runs them one after another.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("timing")]

TASKS = """
[tasks.work]
kind = "command"
argv = ["true"]
"""
LEAP_SECOND = "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=23;BYMINUTE=59;BYSECOND=59"
#: Accepted rules that match rarely: each answers /next within the step budget. (The audit's
#: ``COUNT=100000`` variant costs ~20 ms of CPU to validate, pinned below 30 ms by
#: ``test_i11_loop_hold.py``; on a busy two-core box that alone can show as a 100 ms gap.)
RARE_RULES: list[dict[str, Any]] = [
    {"rrule": LEAP_SECOND},
    {"rrule": LEAP_SECOND + ";COUNT=100"},
    {"rrule": "FREQ=SECONDLY;BYYEARDAY=366;BYHOUR=23;BYMINUTE=59;BYSECOND=59;BYDAY=SU"},
    {"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYSETPOS=1"},
    {"cron": "59 23 29 2 *"},
    {"cron": "0 0 29W 2 *"},
    {"cron": "0 0 29 2 1#5"},
]
#: Rules that can never run, whatever the creation instant: refused with 400 on ``schedule.*``.
#: (A COUNT too costly to resolve is refused too, but holds the loop ~55 ms while it tries:
#: ``test_i11_loop_hold.py`` pins that, marked xfail until it is fixed.)
NEVER_RULES: list[dict[str, Any]] = [
    {"rrule": "FREQ=YEARLY;BYWEEKNO=53;BYDAY=MO;BYMONTH=12;BYMONTHDAY=31"},
    {"rrule": "FREQ=MONTHLY;INTERVAL=9973;BYMONTHDAY=31;BYMONTH=2"},
    {"rrule": "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30;BYHOUR=23;BYMINUTE=59;BYSECOND=59"},
    {"cron": "0 0 31 2 *"},
    {"cron": "0 0 30 2 *"},
]
#: Rules on an INTERVAL grid that meets February 29 or not, by the creation instant's phase.
PHASED_RULES: list[dict[str, Any]] = [
    {"rrule": "FREQ=SECONDLY;INTERVAL=9973;" + LEAP_SECOND.removeprefix("FREQ=SECONDLY;")},
    {"rrule": "FREQ=HOURLY;INTERVAL=9973;BYMONTH=2;BYMONTHDAY=29;BYDAY=SU;BYHOUR=23"},
]


def job(schedule: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"task": "work", "schedule": schedule, "timezone": "UTC", **extra}


async def send(
    http: aiohttp.ClientSession, method: str, url: str, body: bytes | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"} if method != "GET" else {}
    async with http.request(method, url, data=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


def assert_clean(daemon: DaemonProcess) -> None:
    log = daemon.output()
    assert "Traceback" not in log, log[-4000:]
    assert len(log.splitlines()) < 100, log[-4000:]  # no line per hostile request


@pytest.mark.timeout(60)
async def test_rare_rules_are_answered_and_never_rules_refused_without_a_stall(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, TASKS)
    await daemon.start()
    url = daemon.url
    ids: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            async with watch(url):
                for schedule in RARE_RULES:
                    status, body = await send(http, "POST", url + "/api/jobs", enc(job(schedule)))
                    assert status == 201, (schedule, body)
                    ids.append(body["id"])
                for schedule in NEVER_RULES:
                    status, body = await send(http, "POST", url + "/api/jobs", enc(job(schedule)))
                    assert status == 400, (schedule, body)
                    assert body["error"]["field"].startswith("schedule."), body
                for schedule in PHASED_RULES:
                    status, body = await send(http, "POST", url + "/api/jobs", enc(job(schedule)))
                    assert status in (201, 400), (schedule, body)
                # the other entries that take a rule: PATCH and the workflow PUT
                for schedule in [*RARE_RULES, *NEVER_RULES]:
                    expected = 200 if schedule in RARE_RULES else 400
                    patch = enc({"schedule": schedule})
                    status, body = await send(http, "PATCH", f"{url}/api/jobs/{ids[0]}", patch)
                    assert status == expected, (schedule, body)
                    put = enc(job(schedule))
                    status, body = await send(http, "PUT", url + "/api/workflows/wf/schedule", put)
                    assert status in ((200, 201) if expected == 200 else (400,)), (schedule, body)
                await next_runs(http, url, ids)
            await daemon.stop()
            await daemon.start(within=10)
            started = time.monotonic()
            async with watch(url):  # the rules are stored: the restarted daemon answers them too
                await next_runs(http, url, ids)
            assert time.monotonic() - started < 10
    finally:
        assert await daemon.stop() == 0
    assert_clean(daemon)


async def next_runs(http: aiohttp.ClientSession, url: str, ids: list[str]) -> None:
    """``/next?n=100`` of every job. (``n=1000`` holds the loop ~40 ms per request:
    ``test_i11_loop_hold.py`` pins that, marked xfail until it is fixed.)"""
    for job_id in ids:
        status, body = await send(http, "GET", f"{url}/api/jobs/{job_id}/next?n=100")
        assert status == 200, body
        assert body["items"], body


def enc(value: Any) -> bytes:
    return msgspec.json.encode(value)


UNKNOWN_KEYS = {f"{i:x}": 1 for i in range(60_000)}
HUGE = "A" * 500_000


def hostile_bodies(job_id: str) -> list[tuple[str, str, bytes, str]]:
    """(method, path, body, the field the 400 names): each one a mebibyte or less. (A mebibyte
    of brackets is refused too, but its depth check holds the loop ~55 ms per body:
    ``test_i11_loop_hold.py`` pins that, marked xfail until it is fixed.)"""
    out = [
        ("POST", "/api/jobs", enc({"task": "work", **UNKNOWN_KEYS}), "0"),
        ("PATCH", f"/api/jobs/{job_id}", enc(UNKNOWN_KEYS), "0"),
        ("PUT", "/api/workflows/wf/schedule", enc({"task": "work", **UNKNOWN_KEYS}), "0"),
        ("POST", "/api/jobs", enc({"task": "work", "retry": UNKNOWN_KEYS}), "retry.0"),
        ("POST", "/api/jobs", enc({"task": "work", "misfire": UNKNOWN_KEYS}), "misfire.0"),
        ("POST", "/api/jobs", enc({"task": "work", "schedule": UNKNOWN_KEYS}), "schedule.0"),
        ("POST", f"/api/jobs/{job_id}/pause", enc(UNKNOWN_KEYS), "0"),
        ("POST", f"/api/jobs/{job_id}/resume", enc(UNKNOWN_KEYS), "0"),
        ("POST", "/api/scheduler/clean", enc(UNKNOWN_KEYS), "0"),
        ("POST", "/api/jobs", enc({"task": "work", "timezone": HUGE}), "timezone"),
        ("POST", "/api/jobs", enc(job({"every": "1h", "timezone": HUGE})), "schedule.timezone"),
        ("PATCH", f"/api/jobs/{job_id}", enc({"timezone": HUGE}), "timezone"),
        ("POST", f"/api/jobs/{job_id}/pause", enc({"until": HUGE}), "until"),
        ("POST", f"/api/jobs/{job_id}/pause", enc({"reason": HUGE}), "reason"),
        ("POST", "/api/scheduler/clean", enc({"olderThan": HUGE}), "olderThan"),
        ("POST", "/api/jobs", enc({"task": HUGE}), "task"),
        (
            "POST",
            "/api/jobs",
            enc(job({"rrule": "FREQ=DAILY;BYHOUR=" + "1," * 200_000})),
            "schedule.rrule",
        ),
        ("POST", "/api/jobs", enc({"task": "work", HUGE: 1}), "A" * 61 + "..."),
    ]
    return [(m, p, b, f) for m, p, b, f in out if len(b) <= 1024 * 1024]


@pytest.mark.timeout(60)
async def test_hostile_bodies_are_refused_without_a_stall(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, TASKS)
    await daemon.start()
    url = daemon.url
    try:
        status, created, _ = await daemon.request(
            "POST", "/api/jobs", json=job({"every": "1h"}, workflowId="wf")
        )
        assert status == 201, created
        bodies = hostile_bodies(created["id"])
        assert len(bodies) == 18  # none too large to send
        before = (await daemon.request("GET", "/api/jobs"))[1]
        async with aiohttp.ClientSession() as http:

            async def at_once(times: int, method: str, path: str, body: bytes, field: str) -> None:
                answers = await asyncio.gather(
                    *(send(http, method, url + path, body) for _ in range(times))
                )
                for status, answer in answers:
                    assert status == 400, (method, path, answer)
                    error = answer["error"]
                    assert error["field"].startswith(field), (path, field, error)
                    assert len(error["message"]) < 400, (path, error["message"][:500])

            async with watch(url):
                for method, path, body, field in bodies:
                    await at_once(1, method, path, body, field)
                await at_once(2, *bodies[0])  # two at once: each decoded in a turn of its own
        assert (await daemon.request("GET", "/api/jobs"))[1] == before  # nothing changed
    finally:
        assert await daemon.stop() == 0
    assert_clean(daemon)
