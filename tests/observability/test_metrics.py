"""``/metrics``: the families SPEC.md names, checked by parsing the exposition after known runs
driven on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient

from scheduler.config import Config, SchedulerConfig
from scheduler.events import RunRecorded
from scheduler.observability.metrics import SchedulerMetrics
from scheduler.runtime.library import Scheduler
from tests.api.harness import app_for
from tests.fakes import FakeClock, RecordingExecutor, fail, ok
from tests.observability import harness

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Seoul")).timestamp()

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Rig(harness.Rig):
    def __init__(self, sched: Scheduler, clock: FakeClock) -> None:
        super().__init__(sched, clock)
        self.metrics = SchedulerMetrics(sched.store, sched.engine)

    def scrape(self) -> Samples:
        body, _ = self.metrics.render()
        return parse(body.decode())


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    clock = FakeClock(T0)
    slots = getattr(request, "param", 10)
    config = Config(scheduler=SchedulerConfig(max_concurrency=slots))
    sched = Scheduler(config, clock=clock, persistence=False)
    await sched.start()
    yield Rig(sched, clock)
    await sched.stop(grace=0)


async def test_job_counts_by_status_are_read_from_the_store(rig: Rig) -> None:
    rig.task()
    await rig.create()
    await rig.create(schedule={"delay": "1h"})
    await rig.create(schedule={"delay": "2h"})
    await rig.clock.advance(1)
    samples = rig.scrape()
    assert value(samples, "scheduler_jobs", status="pending") == 2
    assert value(samples, "scheduler_jobs", status="completed") == 1
    assert value(samples, "scheduler_jobs", status="failed") == 0
    assert value(samples, "scheduler_jobs", status="paused") == 0


async def test_runs_are_counted_by_outcome_with_their_duration_and_lateness(rig: Rig) -> None:
    rig.task(RecordingExecutor(rig.clock, [fail(), ok()], duration=2))
    await rig.create(schedule={"delay": "1m"}, retry={"jitter": 0})
    await rig.clock.advance(120)
    samples = rig.scrape()
    assert value(samples, "scheduler_runs_total", outcome="error") == 1
    assert value(samples, "scheduler_runs_total", outcome="success") == 1
    assert value(samples, "scheduler_runs_total", outcome="timeout") == 0
    assert value(samples, "scheduler_run_duration_seconds_count") == 2
    assert value(samples, "scheduler_run_duration_seconds_sum") == 4.0
    assert value(samples, "scheduler_run_duration_seconds_bucket", le="1.0") == 0
    assert value(samples, "scheduler_run_duration_seconds_bucket", le="2.5") == 2
    # The retry's start is backoff, not lateness: only the first attempt is observed.
    assert value(samples, "scheduler_lateness_seconds_count") == 1
    assert value(samples, "scheduler_lateness_seconds_sum") == 0.0


async def test_a_coalesced_group_of_missed_runs_counts_each_occurrence(rig: Rig) -> None:
    rig.task()
    await rig.create(schedule={"every": "1h"})
    rig.sched.engine.set_paused(True)
    await rig.clock.advance(3 * 3600 + 1800)
    rig.sched.engine.set_paused(False)
    await rig.clock.advance(0)
    samples = rig.scrape()
    assert value(samples, "scheduler_missed_runs_total", reason="misfire") == 2
    assert value(samples, "scheduler_runs_total", outcome="missed") == 1
    assert value(samples, "scheduler_runs_total", outcome="success") == 1
    # A missed run never started: it is not a run time.
    assert value(samples, "scheduler_run_duration_seconds_count") == 1


async def test_occurrences_skipped_by_overlap_count_as_missed(rig: Rig) -> None:
    rig.task(RecordingExecutor(rig.clock, duration=25))
    await rig.create(schedule={"every": "10s"}, overlap="skip")
    await rig.clock.advance(45)
    samples = rig.scrape()
    assert value(samples, "scheduler_missed_runs_total", reason="overlap") == 2
    assert value(samples, "scheduler_runs_total", outcome="skipped_overlap") == 2


async def test_the_next_run_time_is_the_next_pending_job(rig: Rig) -> None:
    assert "scheduler_next_run_timestamp_seconds" not in {name for name, _ in rig.scrape()}
    rig.task()
    await rig.create(schedule={"delay": "2h"})
    await rig.create(schedule={"delay": "1h"})
    assert value(rig.scrape(), "scheduler_next_run_timestamp_seconds") == T0 + 3600


@pytest.mark.parametrize("rig", [2], indirect=True)
async def test_slot_use_and_waiting_jobs_are_exported(rig: Rig) -> None:
    rig.task(RecordingExecutor(rig.clock, duration=60))
    for _ in range(3):
        await rig.create()
    await rig.clock.advance(1)
    samples = rig.scrape()
    assert value(samples, "scheduler_runs_in_flight") == 2
    assert value(samples, "scheduler_max_concurrency") == 2
    assert value(samples, "scheduler_waiting_jobs") == 1


async def test_no_label_names_a_job(rig: Rig) -> None:
    rig.task(RecordingExecutor(rig.clock, [fail()] * 4))
    ids = [await rig.create(max_retries=0), await rig.create(schedule={"delay": "1h"})]
    await rig.clock.advance(1)
    labels = {v for _, pairs in rig.scrape() for _, v in pairs}
    assert not labels & set(ids)
    names = {k for _, pairs in rig.scrape() for k, _ in pairs}
    assert names <= {
        "status",
        "outcome",
        "reason",
        "le",
        "implementation",
        "major",
        "minor",
        "patchlevel",
        "version",
        "result",
    }


async def test_process_metrics_are_exported(rig: Rig) -> None:
    names = {name for name, _ in rig.scrape()}
    assert "process_resident_memory_bytes" in names
    assert "process_cpu_seconds_total" in names
    assert "python_info" in names


# --- the route ---------------------------------------------------------------------------


async def test_the_route_serves_the_prometheus_text_format(
    rig: Rig, aiohttp_client: AiohttpClient
) -> None:
    rig.task()
    await rig.create()
    client = await aiohttp_client(app_for(rig.sched))
    await rig.clock.advance(1)
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    samples = parse(await resp.text())
    assert value(samples, "scheduler_runs_total", outcome="success") == 1
    assert value(samples, "scheduler_jobs", status="completed") == 1


async def test_the_route_speaks_openmetrics_when_asked(
    rig: Rig, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(app_for(rig.sched))
    resp = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await resp.text()).endswith("# EOF\n")


async def test_each_app_has_its_own_registry_and_detaches_on_cleanup(
    rig: Rig, aiohttp_client: AiohttpClient
) -> None:
    hub = rig.sched.hub
    before = len(hub._callbacks.get(RunRecorded, []))
    first = await aiohttp_client(app_for(rig.sched))
    second = await aiohttp_client(app_for(rig.sched))
    per_app = 2  # each app's metrics and its run statistics (GET /api/stats) listen
    assert len(hub._callbacks[RunRecorded]) == before + 2 * per_app
    assert (await first.get("/metrics")).status == 200
    assert (await second.get("/metrics")).status == 200
    await first.close()
    await second.close()
    assert len(hub._callbacks.get(RunRecorded, [])) == before
