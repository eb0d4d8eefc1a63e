"""``misfire.plan_fire``: named vectors (fire, now, rule, policy -> run, missed, next), its cost
in trigger queries, and its fast path against a brute-force walk of every due occurrence."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.engine.misfire import ALL_LIMIT, FirePlan, plan_fire
from scheduler.model import Coalesce, MisfirePolicy
from scheduler.schedules import load_zone, parse_schedule
from scheduler.triggers import Timeline, compile_schedule

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def timeline(raw: dict[str, Any], zone: str = "UTC") -> Timeline:
    schedule, _ = parse_schedule(raw)
    return Timeline(compile_schedule(schedule, load_zone(zone), created=CREATED))


def at(text: str, zone: str = "UTC") -> float:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=load_zone(zone))
    return moment.timestamp()


def show(instant: float | None, zone: str = "UTC") -> str | None:
    if instant is None:
        return None
    return datetime.fromtimestamp(instant, load_zone(zone)).isoformat()


@dataclass
class Counting:
    """A timeline that counts the queries made of it."""

    inner: Timeline
    calls: list[str] = field(default_factory=list)

    def next_after(self, instant: float) -> float | None:
        self.calls.append("next_after")
        return self.inner.next_after(instant)

    def latest(self, since: float, until: float) -> float | None:
        self.calls.append("latest")
        return self.inner.latest(since, until)

    def count(self, after: float, until: float) -> tuple[int, bool]:
        self.calls.append("count")
        return self.inner.count(after, until)


HOURLY = {"every": "1h", "start": "2026-01-01T00:00"}
SECONDS = {"every": "1s", "start": "2026-01-01T00:00"}

# name, schedule, zone, fire, now, (coalesce, grace) ->
#   run, missed first, missed last, missed count, next, exact
VECTORS: list[tuple[Any, ...]] = [
    (
        "on_time_runs_it_and_misses_nothing",
        HOURLY,
        "UTC",
        "2026-01-01T01:00",
        "2026-01-01T01:00:00.5",
        ("latest", None),
        "2026-01-01T01:00:00+00:00",
        None,
        None,
        0,
        "2026-01-01T02:00:00+00:00",
        True,
    ),
    (
        "latest_runs_the_newest_and_records_the_older_ones",
        HOURLY,
        "UTC",
        "2026-01-01T01:00",
        "2026-01-01T04:30",
        ("latest", None),
        "2026-01-01T04:00:00+00:00",
        "2026-01-01T01:00:00+00:00",
        "2026-01-01T03:00:00+00:00",
        3,
        "2026-01-01T05:00:00+00:00",
        True,
    ),
    (
        "earliest_runs_the_oldest_and_records_the_newer_ones",
        HOURLY,
        "UTC",
        "2026-01-01T01:00",
        "2026-01-01T04:30",
        ("earliest", None),
        "2026-01-01T01:00:00+00:00",
        "2026-01-01T02:00:00+00:00",
        "2026-01-01T04:00:00+00:00",
        3,
        "2026-01-01T05:00:00+00:00",
        True,
    ),
    (
        "all_runs_the_oldest_and_stays_due_at_the_next",
        HOURLY,
        "UTC",
        "2026-01-01T01:00",
        "2026-01-01T04:30",
        ("all", None),
        "2026-01-01T01:00:00+00:00",
        None,
        None,
        0,
        "2026-01-01T02:00:00+00:00",
        True,
    ),
    (
        "all_beyond_its_limit_runs_the_oldest_and_records_the_rest",
        SECONDS,
        "UTC",
        "2026-01-01T00:00:01",
        "2026-01-01T01:00:00",
        ("all", None),
        "2026-01-01T00:00:01+00:00",
        "2026-01-01T00:00:02+00:00",
        "2026-01-01T01:00:00+00:00",
        3599,
        "2026-01-01T01:00:01+00:00",
        True,
    ),
    (
        "grace_records_the_chosen_run_as_missed_too",
        HOURLY,
        "UTC",
        "2026-01-01T01:00",
        "2026-01-01T04:30",
        ("latest", 600.0),
        None,
        "2026-01-01T01:00:00+00:00",
        "2026-01-01T04:00:00+00:00",
        4,
        "2026-01-01T05:00:00+00:00",
        True,
    ),
    (
        "a_late_single_run_past_its_grace_is_missed",
        HOURLY,
        "UTC",
        "2026-01-01T01:00",
        "2026-01-01T01:30",
        ("latest", 60.0),
        None,
        "2026-01-01T01:00:00+00:00",
        "2026-01-01T01:00:00+00:00",
        1,
        "2026-01-01T02:00:00+00:00",
        True,
    ),
    (
        "a_year_of_one_second_runs_is_counted_exactly",
        SECONDS,
        "UTC",
        "2026-01-01T00:00:01",
        "2027-01-01T00:00:00.5",
        ("latest", None),
        "2027-01-01T00:00:00+00:00",
        "2026-01-01T00:00:01+00:00",
        "2026-12-31T23:59:59+00:00",
        365 * 86400 - 1,
        "2027-01-01T00:00:01+00:00",
        True,
    ),
    (
        "cron_counts_both_halves_of_a_fold_and_none_of_a_gap",
        {"cron": "*/30 * * * *"},
        "America/New_York",
        "2026-03-07T00:00",
        "2026-11-02T00:00",
        ("latest", None),
        "2026-11-02T00:00:00-05:00",
        "2026-03-07T00:00:00-05:00",
        "2026-11-01T23:30:00-05:00",
        # 240 days of 48 runs, less the 2 of the spring gap, plus the 2 of the autumn fold
        240 * 48,
        "2026-11-02T00:30:00-05:00",
        True,
    ),
    (
        "a_daily_rrule_with_count_ends_while_down",
        {"rrule": "DTSTART:20260101T090000\nFREQ=DAILY;COUNT=5"},
        "Asia/Seoul",
        "2026-01-02T09:00",
        "2026-02-01T00:00",
        ("latest", None),
        "2026-01-05T09:00:00+09:00",
        "2026-01-02T09:00:00+09:00",
        "2026-01-04T09:00:00+09:00",
        3,
        None,
        True,
    ),
    (
        "monthly_last_friday_over_ten_years",
        {"rrule": "DTSTART:20160101T180000\nFREQ=MONTHLY;BYDAY=-1FR"},
        "Europe/Berlin",
        "2016-01-29T18:00",
        "2026-01-01T00:00",
        ("earliest", None),
        "2016-01-29T18:00:00+01:00",
        "2016-02-26T18:00:00+01:00",
        "2025-12-26T18:00:00+01:00",
        119,
        "2026-01-30T18:00:00+01:00",
        True,
    ),
    (
        "on_time_under_earliest_misses_nothing",
        HOURLY,
        "UTC",
        "2026-01-01T01:00",
        "2026-01-01T01:00:00.5",
        ("earliest", None),
        "2026-01-01T01:00:00+00:00",
        None,
        None,
        0,
        "2026-01-01T02:00:00+00:00",
        True,
    ),
    (
        "on_time_under_all_misses_nothing",
        HOURLY,
        "UTC",
        "2026-01-01T01:00",
        "2026-01-01T01:00:00.5",
        ("all", None),
        "2026-01-01T01:00:00+00:00",
        None,
        None,
        0,
        "2026-01-01T02:00:00+00:00",
        True,
    ),
    (
        "all_just_under_its_limit_replays_the_oldest",
        SECONDS,
        "UTC",
        "2026-01-01T00:00:01",
        "2026-01-01T00:16:40",
        ("all", None),
        "2026-01-01T00:00:01+00:00",
        None,
        None,
        0,
        "2026-01-01T00:00:02+00:00",
        True,
    ),
    (
        "all_at_its_limit_runs_the_oldest_and_records_the_rest",
        SECONDS,
        "UTC",
        "2026-01-01T00:00:01",
        "2026-01-01T00:16:41",
        ("all", None),
        "2026-01-01T00:00:01+00:00",
        "2026-01-01T00:00:02+00:00",
        "2026-01-01T00:16:41+00:00",
        1000,
        "2026-01-01T00:16:42+00:00",
        True,
    ),
    (
        "latest_within_grace_runs_the_newest",
        HOURLY,
        "UTC",
        "2026-01-01T01:00",
        "2026-01-01T04:30",
        ("latest", 3600.0),
        "2026-01-01T04:00:00+00:00",
        "2026-01-01T01:00:00+00:00",
        "2026-01-01T03:00:00+00:00",
        3,
        "2026-01-01T05:00:00+00:00",
        True,
    ),
    (
        "earliest_past_grace_records_the_oldest_as_missed_too",
        HOURLY,
        "UTC",
        "2026-01-01T01:00",
        "2026-01-01T04:30",
        ("earliest", 600.0),
        None,
        "2026-01-01T01:00:00+00:00",
        "2026-01-01T04:00:00+00:00",
        4,
        "2026-01-01T05:00:00+00:00",
        True,
    ),
    (
        "all_past_grace_records_the_late_oldest_as_missed",
        HOURLY,
        "UTC",
        "2026-01-01T01:00",
        "2026-01-01T04:30",
        ("all", 600.0),
        None,
        "2026-01-01T01:00:00+00:00",
        "2026-01-01T01:00:00+00:00",
        1,
        "2026-01-01T02:00:00+00:00",
        True,
    ),
    (
        "a_run_exactly_at_its_grace_still_runs",
        HOURLY,
        "UTC",
        "2026-01-01T01:00",
        "2026-01-01T01:01",
        ("latest", 60.0),
        "2026-01-01T01:00:00+00:00",
        None,
        None,
        0,
        "2026-01-01T02:00:00+00:00",
        True,
    ),
    (
        "the_last_occurrence_of_an_ended_rule_runs_with_no_next",
        {"rrule": "DTSTART:20260101T090000\nFREQ=DAILY;COUNT=5"},
        "Asia/Seoul",
        "2026-01-05T09:00",
        "2026-01-05T09:00:01",
        ("latest", None),
        "2026-01-05T09:00:00+09:00",
        None,
        None,
        0,
        None,
        True,
    ),
]


@pytest.mark.parametrize(
    (
        "schedule",
        "zone",
        "fire",
        "now",
        "policy",
        "run",
        "first",
        "last",
        "count",
        "nxt",
        "exact",
    ),
    [vector[1:] for vector in VECTORS],
    ids=[vector[0] for vector in VECTORS],
)
def test_plan_fire_vectors(
    schedule: dict[str, Any],
    zone: str,
    fire: str,
    now: str,
    policy: tuple[str, float | None],
    run: str | None,
    first: str | None,
    last: str | None,
    count: int,
    nxt: str | None,
    exact: bool,
) -> None:
    coalesce, grace = policy
    plan = plan_fire(
        at(fire, zone),
        at(now, zone),
        timeline(schedule, zone),
        MisfirePolicy(grace=grace, coalesce=Coalesce(coalesce)),
    )
    assert (
        show(plan.run, zone),
        show(plan.missed_first, zone),
        show(plan.missed_last, zone),
        plan.missed_count,
        show(plan.next, zone),
        plan.exact,
    ) == (run, first, last, count, nxt, exact)


@pytest.mark.parametrize("coalesce", list(Coalesce))
@pytest.mark.parametrize(
    ("schedule", "zone"),
    [
        (SECONDS, "UTC"),
        ({"cron": "* * * * *"}, "America/New_York"),
        ({"rrule": "FREQ=SECONDLY;INTERVAL=7"}, "Europe/Berlin"),
    ],
    ids=["every_1s", "cron_each_minute", "rrule_each_7s"],
)
def test_a_year_of_missed_runs_costs_a_handful_of_queries(
    coalesce: Coalesce, schedule: dict[str, Any], zone: str
) -> None:
    counted = Counting(timeline(schedule, zone))
    fire = counted.inner.next_after(CREATED.timestamp())
    assert fire is not None
    plan = plan_fire(fire, fire + 365 * 86400 + 0.5, counted, MisfirePolicy(coalesce=coalesce))
    assert plan.missed_count > ALL_LIMIT
    assert len(counted.calls) <= 5  # latest, count and at most three neighbours


# --- the fast path against a brute-force walk ------------------------------------------------


def brute_force(fire: float, now: float, tl: Timeline, policy: MisfirePolicy) -> FirePlan:
    """The plan by walking every due occurrence (what plan_fire used to do)."""
    due = [fire]
    following = tl.next_after(fire)
    while following is not None and following <= now:
        due.append(following)
        following = tl.next_after(following)
    if policy.coalesce is Coalesce.ALL and len(due) <= ALL_LIMIT:
        chosen, missed, nxt = due[0], [], (due[1] if len(due) > 1 else following)
    elif policy.coalesce is Coalesce.LATEST:
        chosen, missed, nxt = due[-1], due[:-1], following
    else:
        chosen, missed, nxt = due[0], due[1:], following
    run: float | None = chosen
    if policy.grace is not None and now - chosen > policy.grace:
        missed, run = sorted([*missed, chosen]), None
    if not missed:
        return FirePlan(run, None, None, 0, nxt)
    return FirePlan(run, missed[0], missed[-1], len(missed), nxt)


SPECS: list[tuple[dict[str, Any], str]] = [
    ({"every": "17m"}, "UTC"),
    ({"every": "1h", "start": "2026-03-08T01:00"}, "America/New_York"),
    ({"cron": "*/20 1-3 * * *"}, "America/New_York"),
    ({"cron": "30 2 * * *"}, "Europe/Berlin"),
    ({"cron": "0 0 L * *"}, "Asia/Seoul"),
    ({"repeat": {"freq": "daily", "interval": 2, "time": "02:30"}}, "Europe/Berlin"),
    ({"rrule": "FREQ=HOURLY;INTERVAL=5"}, "America/New_York"),
    ({"rrule": "FREQ=MINUTELY;INTERVAL=45;BYHOUR=1,2,3"}, "Australia/Lord_Howe"),
    ({"rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=1,2;COUNT=30"}, "America/New_York"),
]


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    spec=st.sampled_from(SPECS),
    start_hours=st.integers(0, 24 * 330),
    down_hours=st.integers(0, 24 * 12),
    coalesce=st.sampled_from(list(Coalesce)),
    grace=st.sampled_from([None, 60.0, 3600.0, 86400.0]),
)
def test_plan_fire_equals_a_brute_force_walk(
    spec: tuple[dict[str, Any], str],
    start_hours: int,
    down_hours: int,
    coalesce: Coalesce,
    grace: float | None,
) -> None:
    schedule, zone = spec
    tl = timeline(schedule, zone)
    fire = tl.next_after(CREATED.timestamp() + start_hours * 3600)
    if fire is None:
        return
    now = fire + down_hours * 3600 + 0.25
    policy = MisfirePolicy(grace=grace, coalesce=coalesce)
    limit_free = brute_force(fire, now, tl, policy)
    assert plan_fire(fire, now, tl, policy) == limit_free
