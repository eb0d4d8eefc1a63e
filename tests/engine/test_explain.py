"""The pure parts of explain: DST shifts on real 2026 change days, the span of a missed group,
the downtime, the queue's standing of a held run, and the summary (the HTTP route's tests are in
tests/api/test_explain*.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from msgspec.structs import replace

from scheduler.engine.explain import Code, explain
from scheduler.engine.explain_facts import dst_shift, gather, missed_runs
from scheduler.engine.queue import DUE, ReadyQueue, Standing, TaskRuntime
from scheduler.engine.recovery import Downtime, downtime
from scheduler.model import (
    Coalesce,
    DstFold,
    DstGap,
    DstPolicy,
    Job,
    JobStatus,
    MisfirePolicy,
    Outcome,
    Policy,
    Run,
    Schedule,
)
from scheduler.triggers import Timeline, compile_schedule
from scheduler.views import iso
from tests.fakes import FakeClock, RecordingExecutor

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SEOUL = ZoneInfo("Asia/Seoul")
MINUTE = 60.0


def job_at(created: datetime, schedule: Schedule, **fields: Any) -> Job:
    """A job created at ``created`` (its id holds the instant), in ``created``'s zone."""
    job_id = int(created.timestamp() * 1000) << 22
    return Job(id=job_id, task="t", schedule=schedule, timezone=str(created.tzinfo), **fields)


def timeline_of(job: Job) -> Timeline:
    tz = ZoneInfo(job.timezone)
    created = datetime.fromtimestamp(job.created, tz)
    return Timeline(compile_schedule(job.schedule, tz, created=created))


def first_run(job: Job) -> float:
    found = timeline_of(job).next_after(job.created)
    assert found is not None
    return found


# --- DST: which rule moved, doubled or skipped a run ------------------------------------------

DST_VECTORS = [
    pytest.param(
        datetime(2026, 3, 7, 12, tzinfo=NEW_YORK),
        Schedule(cron="30 2 * * *"),
        ("gap", "next", "2026-03-08T03:00:00.000-04:00", False),
        id="new-york-spring-cron-runs-when-the-gap-ends",
    ),
    pytest.param(
        datetime(2026, 3, 7, 12, tzinfo=NEW_YORK),
        Schedule(cron="30 2 * * *", dst=DstPolicy(gap=DstGap.SHIFT)),
        ("gap", "shift", "2026-03-08T03:30:00.000-04:00", False),
        id="new-york-spring-cron-shifted-by-the-gap",
    ),
    pytest.param(
        datetime(2026, 3, 28, 12, tzinfo=BERLIN),
        Schedule(at="2026-03-29T02:30"),
        ("gap", "next", "2026-03-29T03:00:00.000+02:00", False),
        id="berlin-spring-one-off-at-a-missing-time",
    ),
    pytest.param(
        datetime(2026, 10, 24, 12, tzinfo=BERLIN),
        Schedule(cron="30 2 * * *"),
        ("fold", "first", "2026-10-25T02:30:00.000+02:00", False),
        id="berlin-autumn-cron-runs-the-first",
    ),
    pytest.param(
        datetime(2026, 10, 24, 12, tzinfo=BERLIN),
        Schedule(cron="*/30 2 * * *"),
        ("fold", "both", "2026-10-25T02:00:00.000+02:00", False),
        id="berlin-autumn-wildcard-cron-runs-both",
    ),
    pytest.param(
        datetime(2026, 10, 31, 12, tzinfo=NEW_YORK),
        Schedule(cron="30 1 * * *", dst=DstPolicy(fold=DstFold.LAST)),
        ("fold", "last", "2026-11-01T01:30:00.000-05:00", False),
        id="new-york-autumn-cron-runs-the-second",
    ),
]


@pytest.mark.parametrize(("created", "schedule", "expected"), DST_VECTORS)
def test_the_next_run_on_a_dst_change_names_the_kind_and_the_rule(
    created: datetime, schedule: Schedule, expected: tuple[str, str, str, bool]
) -> None:
    job = job_at(created, schedule)
    nxt = first_run(job)
    shift = dst_shift(job, job.created, None, nxt)
    assert shift is not None
    assert (shift.kind, shift.rule, iso(shift.at, job.timezone), shift.skipped) == expected


def test_a_run_the_gap_rule_skipped_is_named_with_the_gap_end() -> None:
    job = job_at(datetime(2026, 3, 7, 12, tzinfo=NEW_YORK), Schedule(cron="30 2 * * *",
                 dst=DstPolicy(gap=DstGap.SKIP)))  # fmt: skip
    nxt = first_run(job)
    assert iso(nxt, job.timezone) == "2026-03-09T02:30:00.000-04:00"
    shift = dst_shift(job, job.created, None, nxt)
    assert shift is not None
    assert (shift.kind, shift.rule, shift.skipped) == ("gap", "skip", True)
    assert iso(shift.at, job.timezone) == "2026-03-08T03:00:00.000-04:00"


@pytest.mark.parametrize(
    "schedule",
    [Schedule(cron="0 3 * * *"), Schedule(every=3600.0), Schedule(cron="30 2 * * *")],
    ids=["a-time-after-the-gap", "every-counts-real-seconds", "a-day-without-a-change"],
)
def test_a_run_no_dst_rule_touched_has_no_shift(schedule: Schedule) -> None:
    day = 29 if schedule.cron != "30 2 * * *" else 20
    job = job_at(datetime(2026, 3, day - 1, 12, tzinfo=BERLIN), schedule)
    assert dst_shift(job, job.created, None, first_run(job)) is None


# --- the span of a missed group ----------------------------------------------------------------


def every_minute(coalesce: Coalesce) -> Job:
    policy = Policy(misfire=MisfirePolicy(coalesce=coalesce))
    start = datetime(2030, 1, 7, 9, tzinfo=SEOUL)
    return job_at(start, Schedule(every=MINUTE), policy=policy)


def record(job: Job, fire: float, outcome: Outcome, *, at: float, count: int = 1) -> Run:
    return Run(job_id=job.id, fire=fire, attempt=0 if outcome is Outcome.MISSED else 1,
               outcome=outcome, started=at, ended=at, count=count)  # fmt: skip


@pytest.mark.parametrize(
    ("coalesce", "first", "ran"),
    [(Coalesce.LATEST, 1, 5), (Coalesce.EARLIEST, 2, 1)],
    ids=["latest-ran-the-newest", "earliest-ran-the-oldest"],
)
def test_a_missed_group_spans_its_occurrences_but_the_one_that_ran(
    coalesce: Coalesce, first: int, ran: int
) -> None:
    job = every_minute(coalesce)
    t0 = job.created
    made = t0 + 5.5 * MINUTE
    runs = [
        record(job, t0 + first * MINUTE, Outcome.MISSED, at=made, count=4),
        record(job, t0 + ran * MINUTE, Outcome.SUCCESS, at=made),
    ]
    down = Downtime(t0 + 30, made)
    missed = missed_runs(job, runs, timeline_of(job), down, None, tracks=True)
    assert missed is not None
    assert (missed.first - t0, missed.last - t0, missed.count) == (
        first * MINUTE,
        (first + 3) * MINUTE,
        4,
    )
    assert missed.daemon_down is True
    assert missed.downtime == down
    later = [*runs, record(job, t0 + 6 * MINUTE, Outcome.SUCCESS, at=t0 + 6 * MINUTE)]
    assert missed_runs(job, later, timeline_of(job), down, None, tracks=True) is None


def test_without_a_kept_downtime_daemon_down_is_unknown_rather_than_false() -> None:
    job = every_minute(Coalesce.LATEST)
    runs = [record(job, job.created + MINUTE, Outcome.MISSED, at=job.created + 90)]
    missed = missed_runs(job, runs, timeline_of(job), None, None, tracks=False)
    assert missed is not None
    assert missed.daemon_down is None


def test_the_downtime_runs_from_the_last_mark_not_after_this_start() -> None:
    assert downtime(100.0, 150.0, 200.0) == Downtime(150.0, 200.0)
    assert downtime(100.0, 900.0, 200.0) == Downtime(100.0, 200.0)  # a file from a clock ahead
    assert downtime(None, None, 200.0) is None
    assert Downtime(100.0, 200.0).covers(150.0, 150.0)
    assert not Downtime(100.0, 200.0).covers(200.0, 260.0)
    assert not Downtime(100.0, 200.0).covers(40.0, 100.0)


# --- the queue's standing of a held run ---------------------------------------------------------


def test_a_run_held_by_a_rate_window_waits_until_the_oldest_start_in_it_is_old_enough() -> None:
    clock = FakeClock(1_900_000_000.0)
    tasks = {"t": TaskRuntime(RecordingExecutor(clock), rate_limit=(2, 10.0))}
    queue = ReadyQueue(clock, tasks, lambda: None, limit=5, on_drop=lambda run, job: None)
    jobs = {i: Job(id=i, task="t", timezone="UTC") for i in (1, 2, 3, 4)}
    for i in (1, 2):
        queue.push(jobs[i], clock.time(), DUE)
        assert queue.take(jobs) is not None
        clock.mono += 4.0
        clock.now += 4.0
    for i in (3, 4):
        queue.push(jobs[i], clock.time(), DUE)
    assert queue.take(jobs) is None
    assert queue.standing(1, "t") is None  # taken: no longer queued
    assert queue.standing(3, "t") == Standing(
        "rate", 0, 2, 2, until=clock.time() + 2.0, per=10.0
    )  # the first start, 8 s ago, leaves the 10 s window in 2 s
    assert queue.standing(4, "t") == Standing("rate", 1, 2, 2, until=clock.time() + 2.0, per=10.0)


# --- the summary --------------------------------------------------------------------------------


def test_the_summary_names_the_first_reason_and_counts_the_others() -> None:
    created = datetime(2030, 1, 7, 9, tzinfo=SEOUL)
    job = job_at(created, Schedule(every=MINUTE), status=JobStatus.PAUSED, pause_reason="x")
    job = replace(job, scheduled=job.created + MINUTE)
    facts = gather(
        job,
        job.created + 2 * MINUTE,
        runs=[],
        scheduler_paused=True,
        windows=None,
        standing=None,
        downtime=None,
        tracks_downtime=True,
    )
    found = explain(facts)
    assert [r.code for r in found.reasons] == [Code.PAUSED, Code.SCHEDULER_PAUSED]
    assert found.summary == (
        "Job 't' will not run until it is resumed because it was paused (reason: 'x') "
        "(and 1 more reason below)."
    )
    doc = found.document()
    assert doc["reasons"][1] == {
        "code": "scheduler_paused",
        "message": (
            "The whole scheduler is paused: no run starts until it is resumed "
            "(POST /api/scheduler/resume)."
        ),
        "details": {},
    }


def test_a_job_whose_zone_tzdata_no_longer_lists_is_explained_in_utc() -> None:
    created = datetime(2030, 1, 7, 9, tzinfo=SEOUL)
    job = replace(job_at(created, Schedule(cron="0 10 * * *")), timezone="Mars/Olympus_Mons")
    job = replace(job, scheduled=job.created + 3600)
    facts = gather(
        job,
        job.created,
        runs=[],
        scheduler_paused=False,
        windows=None,
        standing=None,
        downtime=None,
        tracks_downtime=True,
    )
    doc = explain(facts).document()
    assert doc["nextRun"] == "2030-01-07T01:00:00.000+00:00"
    assert doc["reasons"] == []
