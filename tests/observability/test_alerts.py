"""Alerts: posted to a local receiver, driven on a fake clock; deduplicated, retried, bounded,
and never a loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from scheduler.config import AlertsConfig, Config, SchedulerConfig
from scheduler.model import JobStatus
from scheduler.observability.alerts import MIN_RUNS, Alerter
from scheduler.observability.thresholds import RunWindow, Threshold
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock, RecordingExecutor, fail, ok
from tests.observability import harness
from tests.polling import until

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Seoul")).timestamp()
CHECK_INTERVAL = 15.0  # the Alerter's default


class AlerterClock:
    """The test's clock as the Alerter sees it: records the Alerter's waits, so a test can step
    exactly past a delivery's backoff."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sleeps: list[float] = []
        self.time = clock.time
        self.monotonic = clock.monotonic
        self.call_at = clock.call_at

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self.clock.sleep(seconds)

    def backoffs(self) -> list[float]:
        return [s for s in self.sleeps if s != CHECK_INTERVAL]


class Receiver:
    """A webhook that records what it was sent; answers are scripted, or held until released."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.statuses: list[int] = []
        self.got: list[tuple[dict[str, Any], dict[str, str], float]] = []
        self.hold = asyncio.Event()
        self.hold.set()

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((await request.json(), dict(request.headers), self.clock.time()))
        await self.hold.wait()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 204)

    def bodies(self, alert: str | None = None) -> list[dict[str, Any]]:
        return [b for b, _, _ in self.got if alert is None or b["alert"] == alert]


class Rig(harness.Rig):
    def __init__(self, sched: Scheduler, clock: FakeClock, alerter: Alerter) -> None:
        super().__init__(sched, clock)
        self.alerter = alerter
        assert isinstance(alerter.clock, AlerterClock)
        self.alerter_clock = alerter.clock


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer) -> AsyncIterator[tuple[Receiver, str]]:
    hook = Receiver(FakeClock(T0))
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield hook, str(server.make_url("/hook"))
    hook.hold.set()


def make_rig(url: str | None, clock: FakeClock, slots: int = 10, **alerts: Any) -> Rig:
    config = Config(
        scheduler=SchedulerConfig(max_concurrency=slots),
        alerts=AlertsConfig(webhook_urls=(url,) if url else (), **alerts),
    )
    sched = Scheduler(config, clock=clock, persistence=False)
    alerter = Alerter(
        config.alerts,
        clock=AlerterClock(clock),
        engine=sched.engine,
        hub=sched.hub,
        store=sched.store,
    )
    return Rig(sched, clock, alerter)


@pytest.fixture
async def rig(receiver: tuple[Receiver, str], request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    hook, url = receiver
    clock = hook.clock
    rig = make_rig(url, clock, **getattr(request, "param", {}))
    await rig.sched.start()
    rig.alerter.start()
    yield rig
    hook.hold.set()
    await rig.alerter.close(grace=1)
    await rig.sched.stop(grace=0)


@pytest.fixture
def hook(receiver: tuple[Receiver, str]) -> Receiver:
    return receiver[0]


# --- job alerts --------------------------------------------------------------------------


async def test_a_job_that_fails_for_good_alerts_once_and_again_when_it_next_succeeds(
    rig: Rig, hook: Receiver
) -> None:
    rig.task(RecordingExecutor(rig.clock, [fail("HTTP 500"), fail("HTTP 502"), ok()]))
    job_id = await rig.create(
        schedule={"every": "1m"}, max_retries=0, workflow_id="wf-1", workflow_name="nightly"
    )
    await rig.clock.advance(120)  # two failed runs: one alert
    await until(lambda: len(hook.got) == 1)
    await rig.clock.advance(60)  # the third run succeeds
    await until(lambda: len(hook.got) == 2)
    failed, recovered = hook.bodies()
    assert failed["kind"] == "job_failed"
    assert failed["severity"] == "error"
    assert failed["job"]["id"] == job_id
    assert failed["job"]["workflowName"] == "nightly"
    assert failed["job"]["error"] == "HTTP 500"
    assert "nightly" in failed["text"]
    assert recovered["kind"] == "job_recovered"
    assert recovered["severity"] == "resolved"
    assert recovered["job"]["id"] == job_id
    assert rig.alerter.raised == 2


async def test_each_delivery_is_json_with_an_idempotency_key(rig: Rig, hook: Receiver) -> None:
    rig.task(RecordingExecutor(rig.clock, [fail()]))
    await rig.create(max_retries=0)
    await rig.clock.advance(1)
    await until(lambda: len(hook.got) == 1)
    body, headers, _ = hook.got[0]
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == body["id"]
    assert body["time"].endswith("+00:00")


async def test_a_failure_that_will_be_retried_raises_no_alert(rig: Rig, hook: Receiver) -> None:
    rig.task(RecordingExecutor(rig.clock, [fail(), fail(), ok()]))
    job_id = await rig.create(retry={"jitter": 0})
    await rig.clock.advance(60)
    assert rig.sched.service.get(job_id).status is JobStatus.COMPLETED
    assert rig.alerter.raised == 0


# --- thresholds --------------------------------------------------------------------------


@pytest.mark.parametrize("rig", [{"window": 600.0}], indirect=True)
async def test_the_failure_rate_alerts_once_when_crossed_and_once_when_cleared(
    rig: Rig, hook: Receiver
) -> None:
    rig.task(RecordingExecutor(rig.clock, [fail()] * 3))
    for _ in range(MIN_RUNS):
        await rig.create(max_retries=0)
    await rig.clock.advance(60)  # four checks: the rate stays at 30 %, one alert
    await until(lambda: len(hook.bodies("failure_rate")) == 1)
    await rig.clock.advance(600)  # the window empties
    await until(lambda: len(hook.bodies("failure_rate")) == 2)
    crossed, cleared = hook.bodies("failure_rate")
    assert crossed["kind"] == "threshold_crossed"
    assert crossed["value"] == pytest.approx(0.3)
    assert crossed["threshold"] == 0.1
    assert crossed["window"] == "10m"
    assert "30%" in crossed["summary"]
    assert cleared["kind"] == "threshold_cleared"


async def test_a_failure_rate_needs_enough_runs_to_mean_anything(rig: Rig) -> None:
    rig.task(RecordingExecutor(rig.clock, [fail()] * 3))
    for _ in range(MIN_RUNS - 1):
        await rig.create(max_retries=0)
    await rig.clock.advance(60)
    assert not rig.alerter.thresholds["failure_rate"].active


@pytest.mark.parametrize("rig", [{"mean_run_time": 60.0}], indirect=True)
async def test_a_mean_run_time_over_its_limit_alerts(rig: Rig, hook: Receiver) -> None:
    rig.task(RecordingExecutor(rig.clock, duration=90))
    await rig.create()
    await rig.clock.advance(110)
    await until(lambda: len(hook.bodies("mean_run_time")) == 1)
    assert hook.bodies("mean_run_time")[0]["value"] == 90.0
    assert "1m30s" in hook.bodies("mean_run_time")[0]["summary"]


@pytest.mark.parametrize("rig", [{"slots": 2, "waiting_jobs": 1}], indirect=True)
async def test_waiting_jobs_and_slot_use_alert_after_holding_for_two_checks(
    rig: Rig, hook: Receiver
) -> None:
    rig.task(RecordingExecutor(rig.clock, duration=100))
    for _ in range(4):
        await rig.create()
    await rig.clock.advance(16)  # one check: not yet
    assert rig.alerter.raised == 0
    await rig.clock.advance(15)  # the second check agrees
    await until(lambda: len(hook.got) == 2)
    assert {b["alert"] for b in hook.bodies()} == {"waiting_jobs", "slot_utilisation"}
    assert {b["kind"] for b in hook.bodies()} == {"threshold_crossed"}
    await rig.clock.advance(300)  # all four ran; two quiet checks clear both
    await until(lambda: len(hook.got) == 4)
    assert {b["kind"] for b in hook.bodies()[2:]} == {"threshold_cleared"}


# --- delivery ----------------------------------------------------------------------------


async def test_a_delivery_is_retried_with_backoff_on_the_clock(rig: Rig, hook: Receiver) -> None:
    hook.statuses = [503, 500]
    rig.task(RecordingExecutor(rig.clock, [fail()]))
    await rig.create(max_retries=0)
    await rig.clock.advance(0)
    await until(lambda: rig.alerter_clock.backoffs() == [1])
    await rig.clock.advance(1)
    await until(lambda: rig.alerter_clock.backoffs() == [1, 2])
    await rig.clock.advance(2)
    await until(lambda: len(hook.got) == 3)
    times = [t - T0 for _, _, t in hook.got]
    assert times == [0, 1, 3]
    assert len({b["id"] for b in hook.bodies()}) == 1
    await until(lambda: rig.alerter.delivered == 1)


async def test_a_failing_alert_webhook_raises_no_alert_and_touches_no_job(
    rig: Rig, hook: Receiver
) -> None:
    hook.statuses = [500] * 10
    rig.task(RecordingExecutor(rig.clock, [fail()]))
    job_id = await rig.create(max_retries=0)
    await rig.clock.advance(0)
    for _ in range(100):  # step the clock through the backoffs until the sender gives up
        if rig.alerter.failed_deliveries:
            break
        await rig.clock.advance(1)
        await asyncio.sleep(0.005)
    assert rig.alerter.failed_deliveries == 1
    assert rig.alerter_clock.backoffs() == [1, 2, 4]
    assert len(hook.got) == 4  # attempts, then it gives up
    assert rig.alerter.raised == 1
    assert rig.sched.service.get(job_id).status is JobStatus.FAILED
    assert len(rig.sched.service.runs(rig.sched.service.get(job_id))) == 1


async def test_a_client_error_from_the_webhook_is_not_retried(rig: Rig, hook: Receiver) -> None:
    hook.statuses = [400]
    rig.task(RecordingExecutor(rig.clock, [fail()]))
    await rig.create(max_retries=0)
    await rig.clock.advance(0)
    await until(lambda: rig.alerter.failed_deliveries == 1)
    await rig.clock.advance(60)
    assert len(hook.got) == 1


async def test_a_stuck_webhook_never_blocks_the_engine_and_the_queue_is_bounded(
    receiver: tuple[Receiver, str],
) -> None:
    hook, url = receiver
    hook.hold.clear()
    rig = make_rig(url, hook.clock)
    rig.alerter = Alerter(
        rig.alerter.config,
        clock=rig.alerter_clock,
        engine=rig.sched.engine,
        hub=rig.sched.hub,
        store=rig.sched.store,
        queue_size=2,
    )
    await rig.sched.start()
    rig.alerter.start()
    try:
        ex = rig.task(RecordingExecutor(rig.clock, [fail()] * 6))
        await rig.create(max_retries=0, workflow_id="wf-0")
        await rig.clock.advance(1)
        await until(lambda: len(hook.got) == 1)  # in flight, held by the webhook
        for n in range(1, 6):
            await rig.create(max_retries=0, workflow_id=f"wf-{n}")
        await rig.clock.advance(1)
        assert len(ex.calls) == 6  # the engine went on while the webhook hung
        assert rig.alerter.raised == 6
        assert rig.alerter.dropped == 3  # two more fit in the queue
    finally:
        hook.hold.set()
        await rig.alerter.close(grace=1)
        await rig.sched.stop(grace=0)
    assert len(hook.got) == 3


async def test_without_webhook_urls_nothing_is_queued(receiver: tuple[Receiver, str]) -> None:
    hook, _ = receiver
    rig = make_rig(None, hook.clock)
    await rig.sched.start()
    rig.alerter.start()
    try:
        rig.task(RecordingExecutor(rig.clock, [fail()]))
        await rig.create(max_retries=0)
        await rig.clock.advance(60)
        assert rig.alerter.raised == 0
    finally:
        await rig.alerter.close()
        await rig.sched.stop(grace=0)


# --- the pieces --------------------------------------------------------------------------


def test_the_run_window_forgets_runs_older_than_its_span() -> None:
    window = RunWindow(600)
    window.add(T0, failed=True, duration=4.0)
    window.add(T0 + 300, failed=False, duration=2.0)
    assert window.totals(T0 + 300) == (2, 1, 6.0)
    assert window.totals(T0 + 610) == (1, 0, 2.0)
    assert window.totals(T0 + 910) == (0, 0, 0.0)


def test_a_threshold_changes_state_only_after_holding() -> None:
    gauge = Threshold("waiting_jobs", hold=2)
    assert [gauge.step(b) for b in (True, False, True, True, True, False, False)] == [
        None,
        None,
        None,
        True,
        None,
        None,
        False,
    ]


async def test_serve_can_run_in_the_callers_task_group_and_ends_on_close(
    receiver: tuple[Receiver, str],
) -> None:
    hook, url = receiver
    rig = make_rig(url, hook.clock)
    await rig.sched.start()
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(rig.alerter.serve())
            await asyncio.sleep(0)  # serve() starts listening
            rig.task(RecordingExecutor(rig.clock, [fail()]))
            await rig.create(max_retries=0)
            await rig.clock.advance(1)
            await until(lambda: rig.alerter.delivered == 1)
            await rig.alerter.close()
    finally:
        await rig.sched.stop(grace=0)
    assert [b["kind"] for b in hook.bodies()] == ["job_failed"]
