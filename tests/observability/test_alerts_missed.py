"""Missed-run alerts (issue 15, part 3): ``job_missed`` once per job per window with the count,
``job_recovered`` when it next runs on time; posted to a local receiver, on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from scheduler import ids
from scheduler.config import (
    AlertsConfig,
    Config,
    FsyncMode,
    PersistenceConfig,
    SchedulerConfig,
)
from scheduler.config.load import load_config
from scheduler.engine.planning import Missed, missed_record
from scheduler.engine.queue import TaskRuntime
from scheduler.errors import ConfigError
from scheduler.maintenance import WindowSpec
from scheduler.observability.alerts import Alerter
from scheduler.observability.alerts_missed import MISSED_MEMORY, missed_span
from scheduler.runtime.library import Scheduler
from tests.fakes import FakeClock, RecordingExecutor, job
from tests.polling import until

SEOUL = ZoneInfo("Asia/Seoul")
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=SEOUL).timestamp()
EVERY_MINUTE: dict[str, Any] = {"schedule": {"every": "1m"}, "misfire": {"grace": "10s"}}


def at(minutes: int, seconds: int = 0) -> str:
    """The instant ``T0 + minutes:seconds`` as the alerts write it (the job's zone)."""
    return datetime.fromtimestamp(T0 + minutes * 60 + seconds, SEOUL).isoformat(
        timespec="milliseconds"
    )


class Receiver:
    """A webhook that records the alerts it is sent."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append(await request.json())
        return web.Response(status=204)

    def kinds(self) -> list[str]:
        return [body["kind"] for body in self.got]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [body for body in self.got if body["kind"] == kind]


@pytest.fixture
async def hook(aiohttp_server: AiohttpServer) -> tuple[Receiver, str]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return receiver, str(server.make_url("/hook"))


class Box:
    """A scheduler and its alerter on one fake clock: what the daemon runs, in process."""

    def __init__(self, config: Config, clock: FakeClock, executor: RecordingExecutor) -> None:
        self.clock = clock
        self.sched = Scheduler(config, clock=clock, persistence=config.persistence.dir is not None)
        self.sched.runtimes["work"] = TaskRuntime(executor)
        self.alerter = Alerter(
            config.alerts,
            clock=clock,
            engine=self.sched.engine,
            hub=self.sched.hub,
            store=self.sched.store,
        )

    async def start(self) -> Box:
        await self.sched.start()
        self.alerter.start()
        return self

    async def stop(self) -> None:
        await self.alerter.close(grace=1)
        await self.sched.stop(grace=0)

    async def create(self, **options: Any) -> str:
        return (await self.sched.create_task("work", None, **options)).id


def config_for(url: str, state: Path | None = None, **alerts: Any) -> Config:
    persistence = PersistenceConfig(
        dir=None if state is None else str(state), fsync=FsyncMode.NEVER
    )
    return Config(
        scheduler=SchedulerConfig(timezone="Asia/Seoul"),
        alerts=AlertsConfig(webhook_urls=(url,), **alerts),
        persistence=persistence,
    )


@pytest.fixture
async def boxes() -> AsyncIterator[list[Box]]:
    """The boxes a test started; each still running is stopped at the end."""
    started: list[Box] = []
    yield started
    for box in started:
        await box.stop()  # a second stop does nothing


async def running(boxes: list[Box], box: Box) -> Box:
    boxes.append(box)
    return await box.start()


# --- what is missed, and when it alerts --------------------------------------------------


async def test_a_daemon_down_across_five_occurrences_alerts_once_with_the_count(
    hook: tuple[Receiver, str], tmp_path: Path, boxes: list[Box]
) -> None:
    receiver, url = hook
    clock = FakeClock(T0)
    config = config_for(url, tmp_path)
    executor = RecordingExecutor(clock)
    first = await running(boxes, Box(config, clock, executor))
    job_id = await first.create(workflow_name="nightly", **EVERY_MINUTE)
    await clock.advance(61)  # 09:01 runs on time
    await first.stop()
    await clock.advance(314)  # down until 09:06:15: 09:02 to 09:06 missed, 09:06 past its grace
    second = await running(boxes, Box(config, clock, executor))
    await clock.advance(0)
    await until(lambda: receiver.got, "the job_missed alert")
    [missed] = receiver.got
    assert missed["kind"] == "job_missed"
    assert missed["alert"] == "job_missed"
    assert missed["severity"] == "warning"
    assert missed["count"] == 5
    assert (missed["firstMissed"], missed["lastMissed"]) == (at(2), at(6))
    assert missed["cause"] == "daemon_down"
    assert missed["reason"].startswith("5 runs missed from 2026-11-23T09:02:00+09:00")
    assert missed["summary"] == (
        f"Job nightly missed 5 runs from {at(2)} to {at(6)}: the daemon was not running"
    )
    assert missed["job"]["id"] == job_id
    assert missed["job"]["scheduledTime"] == at(7)  # as it is now: rescheduled
    await clock.advance(45)  # 09:07 runs on time
    await until(lambda: len(receiver.got) == 2, "the job_recovered alert")
    recovered = receiver.got[1]
    assert (recovered["kind"], recovered["alert"]) == ("job_recovered", "job_missed")
    assert recovered["severity"] == "resolved"
    assert recovered["count"] == 5
    assert recovered["summary"] == f"Job nightly runs on time again (5 runs missed since {at(2)})"
    await clock.advance(600)  # ten more on-time runs: nothing more to say
    assert second.alerter.raised == 2
    assert len(executor.calls) == 12  # 09:01, then 09:07 to 09:17


async def test_overlap_skips_in_one_window_alert_once_and_their_counts_add_up(
    hook: tuple[Receiver, str], boxes: list[Box]
) -> None:
    receiver, url = hook
    clock = FakeClock(T0)
    executor = RecordingExecutor(clock, duration=200)
    box = await running(boxes, Box(config_for(url, window=600.0), clock, executor))
    await box.create(workflow_name="sync", **EVERY_MINUTE)
    await clock.advance(60)  # 09:01 starts and runs until 09:04:20
    executor.duration = 0
    await clock.advance(190)  # 09:02, 09:03 and 09:04 skipped
    await until(lambda: receiver.got, "the job_missed alert")
    await clock.settle()
    [missed] = receiver.got
    assert (missed["kind"], missed["count"], missed["cause"]) == ("job_missed", 1, "overlap")
    assert missed["summary"] == (
        f"Job sync missed its run of {at(2)}: the previous run was still running (overlap=skip)"
    )
    assert box.alerter.raised == 1  # not one per skip
    await clock.advance(60)  # 09:04:20 the long run ends (no recovery: it is older); 09:05 runs
    await until(lambda: len(receiver.got) == 2, "the job_recovered alert")
    recovered = receiver.got[1]
    assert recovered["kind"] == "job_recovered"
    assert recovered["time"] == "2026-11-23T00:05:00.000+00:00"  # 09:05 KST, not 09:04:20
    assert (recovered["count"], recovered["firstMissed"], recovered["lastMissed"]) == (
        3,
        at(2),
        at(4),
    )
    await clock.advance(350)  # 09:11; the window (from 09:02) ends at 09:12
    executor.duration = 100
    await clock.advance(130)  # 09:12 starts a long run: 09:13 is skipped, in a new window
    await until(lambda: len(receiver.got) == 3, "a second job_missed")
    again = receiver.got[2]
    assert (again["kind"], again["count"], again["firstMissed"]) == ("job_missed", 1, at(13))


async def test_runs_a_maintenance_window_held_back_alert_with_the_window_named(
    hook: tuple[Receiver, str], boxes: list[Box]
) -> None:
    receiver, url = hook
    clock = FakeClock(T0)
    backup = WindowSpec(
        name="backup", cron="5 9 * * *", duration=1200.0, timezone="Asia/Seoul", tasks=("work",)
    )
    config = msgspec.structs.replace(config_for(url), maintenance=(backup,))
    box = await running(boxes, Box(config, clock, RecordingExecutor(clock)))
    await box.create(schedule={"every": "5m"}, misfire={"grace": "10s"})
    await clock.advance(1500)  # 09:05 to 09:20 held back; 09:25, as the window closes, runs
    await until(lambda: len(receiver.got) == 2, "job_missed, then job_recovered")
    missed, recovered = receiver.got
    assert (missed["kind"], missed["count"], missed["cause"]) == ("job_missed", 4, "maintenance")
    assert (missed["firstMissed"], missed["lastMissed"]) == (at(5), at(20))
    assert "(maintenance window backup until " in missed["reason"]
    assert (
        f"4 runs from {at(5)} to {at(20)}: held back by maintenance window backup"
        in (missed["summary"])
    )
    assert (recovered["kind"], recovered["count"]) == ("job_recovered", 4)


async def test_a_miss_after_recovering_inside_the_window_is_counted_without_an_alert(
    hook: tuple[Receiver, str], boxes: list[Box]
) -> None:
    receiver, url = hook
    clock = FakeClock(T0)
    executor = RecordingExecutor(clock, duration=70)
    box = await running(boxes, Box(config_for(url, window=600.0), clock, executor))
    job_id = await box.create(**EVERY_MINUTE)
    await clock.advance(60)  # 09:01 runs until 09:02:10: 09:02 is skipped
    executor.duration = 0
    await clock.advance(120)  # 09:03 on time: recovered
    await until(lambda: len(receiver.got) == 2, "job_missed then job_recovered")
    executor.duration = 70
    await clock.advance(60)  # 09:04 runs long: 09:05 skipped, inside the window
    executor.duration = 0
    await clock.advance(180)
    assert receiver.kinds() == ["job_missed", "job_recovered"]
    assert box.alerter.missed.tracked[ids.decode(job_id)].count == 2


async def test_a_one_off_that_misses_its_time_alerts_job_failed_only(
    hook: tuple[Receiver, str], boxes: list[Box]
) -> None:
    receiver, url = hook
    clock = FakeClock(T0)
    box = await running(boxes, Box(config_for(url), clock, RecordingExecutor(clock)))
    await box.create(schedule={"delay": "1m"}, misfire={"grace": "10s"})
    await box.sched.service.set_paused(True)
    await clock.advance(120)
    await box.sched.service.set_paused(False)
    await clock.advance(1)
    await until(lambda: receiver.got, "the job_failed alert")
    await clock.advance(60)
    assert receiver.kinds() == ["job_failed"]
    assert not box.alerter.missed.tracked


@pytest.mark.parametrize("setting", [False, None])
async def test_missed_run_alerts_are_off_with_false_and_on_by_default(
    hook: tuple[Receiver, str], boxes: list[Box], setting: bool | None
) -> None:
    receiver, url = hook
    clock = FakeClock(T0)
    executor = RecordingExecutor(clock, duration=200)
    box = await running(boxes, Box(config_for(url, missed_runs=setting), clock, executor))
    await box.create(**EVERY_MINUTE)
    await clock.advance(60)
    executor.duration = 0
    await clock.advance(300)
    if setting is False:
        await clock.settle()
        assert receiver.got == []
        assert box.alerter.raised == 0
        assert not box.alerter.missed.tracked
    else:
        await until(lambda: len(receiver.got) == 2)
        assert receiver.kinds() == ["job_missed", "job_recovered"]


async def test_a_reload_that_turns_them_off_forgets_what_was_tracked(
    hook: tuple[Receiver, str], boxes: list[Box]
) -> None:
    receiver, url = hook
    clock = FakeClock(T0)
    executor = RecordingExecutor(clock, duration=100)
    box = await running(boxes, Box(config_for(url), clock, executor))
    await box.create(**EVERY_MINUTE)
    await clock.advance(121)  # 09:02 skipped: alerted
    await until(lambda: receiver.got)
    box.alerter.reconfigure(AlertsConfig(webhook_urls=(url,), missed_runs=False))
    assert not box.alerter.missed.tracked
    executor.duration = 0
    await clock.advance(240)
    assert receiver.kinds() == ["job_missed"]  # no recovery owed any more


async def test_a_deleted_job_is_forgotten_on_the_next_check(
    hook: tuple[Receiver, str], boxes: list[Box]
) -> None:
    receiver, url = hook
    clock = FakeClock(T0)
    box = await running(boxes, Box(config_for(url), clock, RecordingExecutor(clock, duration=100)))
    job_id = await box.create(**EVERY_MINUTE)
    await clock.advance(121)
    await until(lambda: receiver.got)
    assert len(box.alerter.missed.tracked) == 1
    await box.sched.service.delete(job_id)
    await clock.advance(15)  # a check pass
    assert not box.alerter.missed.tracked


# --- many jobs at the same instant -------------------------------------------------------


#: No threshold alert from 1,000 runs due at once (10 slots): only missed-run alerts are sent.
QUIET: dict[str, Any] = {"waiting_jobs": 1_000_000, "slot_utilisation": 1.0}


async def a_thousand_jobs_miss_at_once(box: Box, clock: FakeClock) -> list[str]:
    """1,000 jobs every minute, each missing 09:02 to 09:06 while the scheduler is paused."""
    job_ids = [await box.create(**EVERY_MINUTE) for _ in range(1000)]
    await clock.advance(61)
    await box.sched.service.set_paused(True)
    await clock.advance(314)
    await box.sched.service.set_paused(False)
    await clock.advance(0)
    return job_ids


async def test_a_thousand_jobs_missing_at_once_alert_once_each_and_are_then_forgotten(
    hook: tuple[Receiver, str], boxes: list[Box]
) -> None:
    receiver, url = hook
    clock = FakeClock(T0)
    short = config_for(url, window=120.0, **QUIET)
    box = await running(boxes, Box(short, clock, RecordingExecutor(clock)))
    job_ids = await a_thousand_jobs_miss_at_once(box, clock)
    await until(lambda: len(receiver.got) == 1000, "1,000 job_missed alerts", within=40)
    assert sorted(body["job"]["id"] for body in receiver.got) == sorted(job_ids)
    assert {(b["kind"], b["count"], b["cause"]) for b in receiver.got} == {
        ("job_missed", 5, "misfire")
    }
    assert receiver.got[0]["summary"].endswith(
        ": misfired (late or coalesced: grace 10s, coalesce=latest)"
    )
    assert box.alerter.dropped == 0
    await clock.advance(45)  # 09:07: every job on time again
    await until(lambda: len(receiver.got) == 2000, "1,000 job_recovered alerts", within=40)
    assert len(receiver.of("job_recovered")) == 1000
    assert len(box.alerter.missed.tracked) == 1000  # one alert per window: kept until it ends
    await clock.advance(90)  # the windows (from 09:06:15) end; a check pass forgets them
    assert not box.alerter.missed.tracked
    assert not box.alerter.missed.due


async def test_tracking_is_capped_and_the_least_recently_missed_are_forgotten(
    hook: tuple[Receiver, str], boxes: list[Box]
) -> None:
    receiver, url = hook
    clock = FakeClock(T0)
    box = await running(boxes, Box(config_for(url, **QUIET), clock, RecordingExecutor(clock)))
    box.alerter.missed.memory = 100
    await a_thousand_jobs_miss_at_once(box, clock)
    await until(lambda: not box.alerter.missed.due, "the alerts to be queued")
    await until(lambda: box.alerter.delivered == box.alerter.raised, "the alerts to be sent")
    missed = box.alerter.missed
    assert len(missed.tracked) == 100
    assert missed.forgotten == 900
    assert len(receiver.got) + missed.unsent == 1000  # each job alerted or forgotten unsent
    assert len({body["job"]["id"] for body in receiver.got}) == len(receiver.got)
    assert MISSED_MEMORY == 10_000


# --- the pieces --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("missed", "span"),
    [
        (Missed(T0 + 120, T0 + 360, 5, True), (T0 + 120, T0 + 360)),
        (Missed(T0 + 120, T0 + 7200, 120, False), (T0 + 120, T0 + 7200)),
        (Missed(T0 + 120, T0 + 120, 1, True), (T0 + 120, T0 + 120)),
        (Missed(T0 + 0.25, T0 + 1.5, 2, True), (T0 + 0.25, T0 + 1.5)),
    ],
    ids=["five", "at-least", "one", "sub-second"],
)
def test_a_missed_records_span_is_read_back_from_the_reason_planning_writes(
    missed: Missed, span: tuple[float, float]
) -> None:
    record = missed_record(job(7, timezone="Asia/Seoul"), missed, T0 + 7300)
    assert missed_span(record) == span


def test_missed_runs_is_a_boolean_in_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[alerts]\nmissed_runs = "yes"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert "alerts.missed_runs" in problem
    path.write_text("[alerts]\nmissed_runs = false\n")
    assert load_config(path).alerts.missed_runs is False
