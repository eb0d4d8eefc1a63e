"""Triggers kind by kind: what ``next_after`` answers, and that it agrees with the libraries."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from dateutil import rrule as du

from scheduler.cli.next import upcoming
from scheduler.errors import InvalidInput, InvalidSchedule
from scheduler.model import DstFold, DstGap, Frequency, Repeat, Schedule
from scheduler.schedules import load_zone, parse_schedule
from scheduler.triggers import DstRule, Trigger, compile_schedule, resolve_local
from scheduler.triggers.dst import CRON_FIXED, REPEAT, RRULE
from scheduler.triggers.repeat import as_cron, cron_repeat, normalise_repeat, rrule_repeat

NY = load_zone("America/New_York")
SEOUL = load_zone("Asia/Seoul")
BERLIN = load_zone("Europe/Berlin")
LORD_HOWE = load_zone("Australia/Lord_Howe")
CREATED = datetime(2026, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def trigger_for(raw: dict[str, Any], tz: ZoneInfo = SEOUL, created: datetime = CREATED) -> Trigger:
    schedule, _ = parse_schedule(raw)
    return compile_schedule(schedule, tz, created=created)


def isos(trigger: Trigger, after: datetime, n: int) -> list[str]:
    return [run.isoformat() for run in upcoming(trigger, after, n)]


# --- one-off kinds -------------------------------------------------------------------------


def test_immediate_runs_once_at_creation() -> None:
    trigger = trigger_for({})
    assert trigger.next_after(CREATED - timedelta(microseconds=1)) == CREATED
    assert trigger.next_after(CREATED) is None


def test_delay_runs_once_after_the_delay_from_creation() -> None:
    trigger = trigger_for({"delay": "15m"})
    first = trigger.next_after(CREATED - timedelta(microseconds=1))
    assert first == CREATED + timedelta(minutes=15)
    assert first is not None
    assert first.utcoffset() == timedelta(hours=9)  # rendered in the job's zone
    assert trigger.next_after(first) is None


def test_delay_and_every_count_real_seconds_across_a_dst_change() -> None:
    created = datetime(2026, 11, 1, 0, 30, tzinfo=NY)  # 01:00-02:00 happens twice after this
    delay = trigger_for({"delay": "2h"}, NY, created).next_after(created)
    every = trigger_for({"every": "2h"}, NY, created).next_after(created)
    assert delay is not None
    assert every is not None
    assert delay.isoformat() == every.isoformat() == "2026-11-01T01:30:00-05:00"


def test_at_with_an_offset_is_that_instant_in_the_jobs_zone() -> None:
    trigger = trigger_for({"at": "2026-12-24T09:00+01:00"})
    assert isos(trigger, CREATED, 5) == ["2026-12-24T17:00:00+09:00"]


def test_at_local_is_read_in_the_jobs_zone() -> None:
    trigger = trigger_for({"at": "2026-12-24T09:00"}, NY)
    assert isos(trigger, CREATED, 5) == ["2026-12-24T09:00:00-05:00"]


def test_at_in_the_past_has_no_run_after_creation() -> None:
    trigger = trigger_for({"at": "2020-01-01T00:00"})
    assert trigger.next_after(CREATED) is None


def test_next_after_rejects_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        trigger_for({"cron": "0 9 * * *"}).next_after(datetime(2026, 1, 1))


def test_next_after_accepts_an_instant_in_any_zone() -> None:
    trigger = trigger_for({"cron": "0 9 * * *"})
    in_utc = trigger.next_after(datetime(2026, 1, 1, 0, 30, tzinfo=UTC))
    in_ny = trigger.next_after(datetime(2025, 12, 31, 19, 30, tzinfo=NY))
    assert in_utc == in_ny
    assert in_utc is not None
    assert in_utc.isoformat() == "2026-01-02T09:00:00+09:00"


# --- every ---------------------------------------------------------------------------------


def test_every_starts_one_interval_after_creation_by_default() -> None:
    trigger = trigger_for({"every": "90m"})
    assert isos(trigger, CREATED, 2) == [
        "2026-01-01T22:30:00.250000+09:00",
        "2026-01-02T00:00:00.250000+09:00",
    ]


def test_every_runs_from_start_to_end_inclusive() -> None:
    trigger = trigger_for({"every": "1h", "start": "2026-02-01T09:00", "end": "2026-02-01T11:00"})
    assert isos(trigger, CREATED, 10) == [
        "2026-02-01T09:00:00+09:00",
        "2026-02-01T10:00:00+09:00",
        "2026-02-01T11:00:00+09:00",
    ]


def test_every_answers_strictly_after_an_instant_on_the_grid() -> None:
    trigger = trigger_for({"every": "1h", "start": "2026-02-01T09:00"})
    on_grid = datetime(2026, 2, 1, 10, tzinfo=SEOUL)
    assert trigger.next_after(on_grid) == datetime(2026, 2, 1, 11, tzinfo=SEOUL)


def test_cron_at_every_is_an_interval() -> None:
    assert parse_schedule({"cron": "@every 1h30m"})[0] == Schedule(every=5400.0)
    trigger = compile_schedule(Schedule(cron="@every 2h"), SEOUL, created=CREATED)
    first = trigger.next_after(CREATED)
    assert first == CREATED + timedelta(hours=2)


# --- cron ----------------------------------------------------------------------------------


def test_cron_day_of_month_and_day_of_week_combine_with_or() -> None:
    # The 13th of each month, and every Friday.
    trigger = trigger_for({"cron": "0 0 13 * 5"})
    assert isos(trigger, datetime(2026, 2, 1, tzinfo=SEOUL), 4) == [
        "2026-02-06T00:00:00+09:00",
        "2026-02-13T00:00:00+09:00",
        "2026-02-20T00:00:00+09:00",
        "2026-02-27T00:00:00+09:00",
    ]
    assert isos(trigger, datetime(2026, 3, 10, tzinfo=SEOUL), 2) == [
        "2026-03-13T00:00:00+09:00",
        "2026-03-20T00:00:00+09:00",
    ]


def test_cron_with_a_star_in_day_fields_combines_with_and() -> None:
    trigger = trigger_for({"cron": "0 0 */10 * 1"})  # Debian: a field starting with * -> AND
    runs = upcoming(trigger, datetime(2026, 1, 1, tzinfo=SEOUL), 5)
    assert all(run.weekday() == 0 and run.day in (1, 11, 21, 31) for run in runs)


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("@hourly", "2026-01-01T22:00:00+09:00"),
        ("@daily", "2026-01-02T00:00:00+09:00"),
        ("@midnight", "2026-01-02T00:00:00+09:00"),
        ("@weekly", "2026-01-04T00:00:00+09:00"),
        ("@monthly", "2026-02-01T00:00:00+09:00"),
        ("@yearly", "2027-01-01T00:00:00+09:00"),
        ("@annually", "2027-01-01T00:00:00+09:00"),
    ],
)
def test_cron_shortcuts(alias: str, expected: str) -> None:
    assert isos(trigger_for({"cron": alias}), CREATED, 1) == [expected]


CRONSIM_CASES = [
    ("30 2 * * *", "America/New_York", datetime(2026, 3, 6)),
    ("30 1 * * *", "America/New_York", datetime(2026, 10, 30)),
    ("0,30 2 * * *", "Europe/Berlin", datetime(2026, 3, 27)),
    ("15 2 * * 0", "Europe/Berlin", datetime(2026, 10, 20)),
    ("*/15 * * * *", "America/New_York", datetime(2026, 10, 31, 22)),
    ("*/20 * * * *", "Europe/Berlin", datetime(2026, 3, 28, 22)),
    ("0 * * * *", "Australia/Lord_Howe", datetime(2026, 4, 4, 20)),
    ("*/10 1-3 * * *", "Australia/Lord_Howe", datetime(2026, 10, 3, 20)),
    ("5 2 * * *", "Australia/Lord_Howe", datetime(2026, 10, 2)),
    ("0 9 * * 1-5", "Asia/Seoul", datetime(1987, 5, 1)),
    ("30 2 * * *", "Asia/Seoul", datetime(1987, 10, 8)),
    ("0 0 L * *", "America/New_York", datetime(2026, 1, 1)),
    ("0 12 * * MON#2", "Europe/Berlin", datetime(2026, 1, 1)),
]


@pytest.mark.parametrize(("expr", "zone", "start"), CRONSIM_CASES)
def test_cron_default_policy_equals_cronsims_own_aware_results(
    expr: str, zone: str, start: datetime
) -> None:
    tz = load_zone(zone)
    begin = start.replace(tzinfo=tz)
    sim = CronSim(expr, begin)
    expected = [next(sim).isoformat() for _ in range(30)]
    assert isos(trigger_for({"cron": expr}, tz), begin, 30) == expected


def test_cron_that_matches_rarely_is_found_within_its_horizon() -> None:
    trigger = trigger_for({"cron": "0 0 29 2 1"})  # 29 February OR any Monday
    assert trigger.next_after(CREATED) is not None
    rare = trigger_for({"cron": "0 0 29 2 */7"})  # 29 February that is a Sunday (AND)
    assert isos(rare, CREATED, 1) == ["2032-02-29T00:00:00+09:00"]


# --- repeat --------------------------------------------------------------------------------


def test_repeat_weekly_interval_counts_weeks_from_creation() -> None:
    created = datetime(2026, 1, 7, 8, 0, tzinfo=SEOUL)  # a Wednesday
    trigger = trigger_for(
        {"repeat": {"freq": "weekly", "interval": 2, "weekdays": ["mon", "wed"], "time": "09:00"}},
        created=created,
    )
    assert isos(trigger, created, 4) == [
        "2026-01-07T09:00:00+09:00",
        "2026-01-19T09:00:00+09:00",
        "2026-01-21T09:00:00+09:00",
        "2026-02-02T09:00:00+09:00",
    ]


def test_repeat_weekly_without_weekdays_runs_on_the_creation_weekday() -> None:
    created = datetime(2026, 1, 8, 12, 0, tzinfo=SEOUL)  # a Thursday
    trigger = trigger_for({"repeat": {"freq": "weekly", "time": "09:00"}}, created=created)
    assert isos(trigger, created, 2) == ["2026-01-15T09:00:00+09:00", "2026-01-22T09:00:00+09:00"]


def test_repeat_monthly_without_days_runs_on_the_creation_day() -> None:
    created = datetime(2026, 1, 31, 8, 0, tzinfo=SEOUL)
    trigger = trigger_for({"repeat": {"freq": "monthly", "time": "09:00"}}, created=created)
    assert isos(trigger, created, 3) == [
        "2026-01-31T09:00:00+09:00",
        "2026-03-31T09:00:00+09:00",
        "2026-05-31T09:00:00+09:00",
    ]


def test_repeat_daily_interval_counts_days_from_creation() -> None:
    created = datetime(2026, 1, 1, 10, 0, tzinfo=SEOUL)
    trigger = trigger_for(
        {"repeat": {"freq": "daily", "interval": 3, "time": "09:00"}}, created=created
    )
    assert isos(trigger, created, 3) == [
        "2026-01-04T09:00:00+09:00",
        "2026-01-07T09:00:00+09:00",
        "2026-01-10T09:00:00+09:00",
    ]


@pytest.mark.parametrize("interval", [1, 2])
def test_repeat_count_caps_the_runs(interval: int) -> None:
    created = datetime(2026, 1, 1, 10, 0, tzinfo=SEOUL)
    raw = {"repeat": {"freq": "daily", "interval": interval, "time": "09:00", "count": 3}}
    runs = isos(trigger_for(raw, created=created), created, 10)
    assert len(runs) == 3
    assert runs[0] == (
        "2026-01-02T09:00:00+09:00" if interval == 1 else "2026-01-03T09:00:00+09:00"
    )


def test_repeat_until_a_date_includes_that_day() -> None:
    created = datetime(2026, 1, 1, 10, 0, tzinfo=SEOUL)
    raw = {"repeat": {"freq": "daily", "time": "23:30", "until": "2026-01-03"}}
    assert isos(trigger_for(raw, created=created), created, 10) == [
        "2026-01-01T23:30:00+09:00",
        "2026-01-02T23:30:00+09:00",
        "2026-01-03T23:30:00+09:00",
    ]


def test_repeat_until_with_an_offset_is_an_instant() -> None:
    created = datetime(2026, 1, 1, 10, 0, tzinfo=SEOUL)
    raw = {"repeat": {"freq": "daily", "time": "09:00", "until": "2026-01-03T00:00+00:00"}}
    assert isos(trigger_for(raw, created=created), created, 10) == [
        "2026-01-02T09:00:00+09:00",
        "2026-01-03T09:00:00+09:00",
    ]


def test_repeat_until_before_creation_is_rejected() -> None:
    schedule = Schedule(repeat=Repeat(freq=Frequency.DAILY, until="2025-01-01"))
    with pytest.raises(InvalidSchedule, match="never runs"):
        compile_schedule(schedule, SEOUL, created=CREATED)
    schedule = Schedule(repeat=Repeat(freq=Frequency.DAILY, interval=2, until="2025-01-01"))
    with pytest.raises(InvalidSchedule, match="never runs"):
        compile_schedule(schedule, SEOUL, created=CREATED)


REPEAT_PATTERNS = [
    Repeat(freq=Frequency.DAILY, time="02:30"),
    Repeat(freq=Frequency.DAILY, time="01:30", weekdays=("sun", "sat")),
    Repeat(freq=Frequency.WEEKLY, time="02:15", weekdays=("sun",)),
    Repeat(freq=Frequency.WEEKLY, time="09:00"),
    Repeat(freq=Frequency.MONTHLY, time="02:30", month_days=(1, 8, 29, 31, -1)),
    Repeat(freq=Frequency.MONTHLY, time="00:00"),
    Repeat(freq=Frequency.DAILY, time="02:30", count=40),
    Repeat(freq=Frequency.DAILY, time="01:45", until="2026-11-03"),
]
RULES = [REPEAT, DstRule(DstGap.SHIFT, DstFold.LAST), DstRule(DstGap.SKIP, DstFold.BOTH)]


@pytest.mark.parametrize("pattern", REPEAT_PATTERNS, ids=str)
@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe"])
@pytest.mark.parametrize("rule", RULES, ids=str)
def test_repeat_as_cron_reads_the_same_times_as_repeat_as_rrule(
    pattern: Repeat, zone: str, rule: DstRule
) -> None:
    tz = load_zone(zone)
    start = datetime(2026, 3, 1, 5, 0)
    repeat = normalise_repeat(pattern, "repeat")
    cron = as_cron(repeat, start)
    assert cron is not None
    fast = cron_repeat(repeat, tz, cron=cron, start=start, rule=rule, field="repeat")
    slow = rrule_repeat(repeat, tz, start=start, rule=rule, field="repeat")
    after = start.replace(tzinfo=tz)
    assert isos(fast, after, 300) == isos(slow, after, 300)


# --- rrule ---------------------------------------------------------------------------------


def test_rrule_last_workday_of_the_month_with_bysetpos() -> None:
    trigger = trigger_for({"rrule": "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;BYHOUR=18"})
    assert isos(trigger, CREATED, 3) == [
        "2026-01-30T18:00:00+09:00",
        "2026-02-27T18:00:00+09:00",
        "2026-03-31T18:00:00+09:00",
    ]


def test_rrule_last_friday_with_count_from_a_distant_dtstart() -> None:
    trigger = trigger_for(
        {"rrule": "DTSTART:20000101T090000\nRRULE:FREQ=MONTHLY;BYDAY=-1FR;COUNT=400"}
    )
    assert isos(trigger, datetime(2033, 1, 1, tzinfo=SEOUL), 10) == [
        "2033-01-28T09:00:00+09:00",
        "2033-02-25T09:00:00+09:00",
        "2033-03-25T09:00:00+09:00",
        "2033-04-29T09:00:00+09:00",
    ]


def test_rrule_without_dtstart_is_anchored_at_creation_without_microseconds() -> None:
    trigger = trigger_for({"rrule": "FREQ=DAILY;INTERVAL=2"})
    assert isos(trigger, CREATED - timedelta(seconds=1), 2) == [
        "2026-01-01T21:00:00+09:00",
        "2026-01-03T21:00:00+09:00",
    ]


def test_rrule_dtstart_in_utc_evaluates_the_rule_in_utc() -> None:
    trigger = trigger_for({"rrule": "DTSTART:20260101T090000Z\nFREQ=DAILY;COUNT=2"}, NY)
    assert isos(trigger, CREATED - timedelta(days=1), 5) == [
        "2026-01-01T04:00:00-05:00",
        "2026-01-02T04:00:00-05:00",
    ]


def test_rrule_dtstart_with_tzid_evaluates_the_rule_there() -> None:
    raw = {"rrule": "DTSTART;TZID=Europe/Berlin:20260325T090000\nFREQ=DAILY;COUNT=6"}
    assert isos(trigger_for(raw, NY), CREATED, 6) == [
        "2026-03-25T04:00:00-04:00",
        "2026-03-26T04:00:00-04:00",
        "2026-03-27T04:00:00-04:00",
        "2026-03-28T04:00:00-04:00",
        "2026-03-29T03:00:00-04:00",
        "2026-03-30T03:00:00-04:00",
    ]


def test_rrule_until_in_utc_is_an_inclusive_instant() -> None:
    # 2026-01-03T00:00Z is 09:00 in Seoul: read as a Seoul wall time it would end a run earlier.
    raw = {"rrule": "DTSTART:20260101T090000\nFREQ=DAILY;UNTIL=20260103T000000Z"}
    assert isos(trigger_for(raw), CREATED - timedelta(days=1), 5) == [
        "2026-01-01T09:00:00+09:00",
        "2026-01-02T09:00:00+09:00",
        "2026-01-03T09:00:00+09:00",
    ]


def test_rrule_until_as_a_date_includes_that_day() -> None:
    raw = {"rrule": "DTSTART:20260101T090000\nFREQ=DAILY;UNTIL=20260102"}
    assert len(isos(trigger_for(raw), CREATED - timedelta(days=1), 5)) == 2


def test_rrule_count_counts_from_dtstart_not_from_the_query() -> None:
    raw = {"rrule": "DTSTART:20260101T090000\nFREQ=DAILY;COUNT=10"}
    assert isos(trigger_for(raw), datetime(2026, 1, 9, tzinfo=SEOUL), 5) == [
        "2026-01-09T09:00:00+09:00",
        "2026-01-10T09:00:00+09:00",
    ]


RRULES = [
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR;BYHOUR=9;BYMINUTE=30",
    "FREQ=WEEKLY;INTERVAL=3;WKST=SU;BYDAY=SU,SA",
    "FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=1,-1",
    "FREQ=YEARLY;INTERVAL=3;BYWEEKNO=1,52;BYDAY=MO",
    "FREQ=YEARLY;BYMONTH=3,9;BYDAY=-1SU;BYHOUR=1,13",
    "FREQ=DAILY;INTERVAL=10;BYHOUR=8,20",
    "FREQ=HOURLY;INTERVAL=5;BYMINUTE=7",
    "FREQ=MINUTELY;INTERVAL=97;BYHOUR=3,4,5",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1,-1",
    "FREQ=YEARLY;BYYEARDAY=-1,100",
]


@pytest.mark.parametrize("rule", RRULES)
def test_rrule_restarted_near_the_query_equals_dateutil_from_dtstart(rule: str) -> None:
    dtstart = datetime(2001, 5, 17, 13, 41, 7)
    raw = {"rrule": f"DTSTART:{dtstart:%Y%m%dT%H%M%S}\n{rule}"}
    trigger = trigger_for(raw, load_zone("UTC"))
    plain = du.rrulestr(rule + ";WKST=MO" * ("WKST" not in rule), dtstart=dtstart)
    for query in (datetime(2001, 5, 1), datetime(2002, 7, 9, 13, 41, 7), datetime(2004, 2, 28, 23)):
        expected = [run.replace(tzinfo=UTC).isoformat() for run in plain.xafter(query, count=12)]
        assert isos(trigger, query.replace(tzinfo=UTC), 12) == expected


def test_rrule_read_ahead_answers_like_a_fresh_trigger_in_any_query_order() -> None:
    raw = {"rrule": "DTSTART:20260101T020000\nFREQ=DAILY;BYHOUR=2;BYMINUTE=30;COUNT=400"}
    used = trigger_for(raw, NY)
    queries = [*upcoming(used, datetime(2026, 3, 1, tzinfo=NY), 30)]
    queries += [datetime(2026, 3, 8, 2, 0, tzinfo=NY), datetime(2026, 2, 1, tzinfo=NY)]
    queries += [datetime(2027, 1, 30, tzinfo=NY), datetime(2026, 3, 9, 2, 30, tzinfo=NY)]
    for query in queries:
        assert used.next_after(query) == trigger_for(raw, NY).next_after(query), query


# --- bounded searches ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        {"rrule": "DTSTART:20000101T000000\nFREQ=MINUTELY;UNTIL=20000102T000000"},
        {"rrule": "DTSTART:20000101T000000\nFREQ=SECONDLY;COUNT=5"},
        {"repeat": {"freq": "daily", "until": "2026-01-05"}},
        {"cron": "0 0 1 1 *"},  # next would be in year 10000
    ],
)
def test_a_rule_that_never_fires_again_answers_none_quickly(raw: dict[str, Any]) -> None:
    trigger = trigger_for(raw)
    started = time.perf_counter()
    assert trigger.next_after(datetime(9999, 3, 1, tzinfo=UTC)) is None
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("freq", ["YEARLY", "MONTHLY", "DAILY"])
def test_an_rrule_that_never_produces_a_date_is_rejected_quickly(freq: str) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidSchedule, match="never produces") as caught:
        parse_schedule({"rrule": f"DTSTART:20260101T000000\nFREQ={freq};BYMONTH=2;BYMONTHDAY=30"})
    assert caught.value.field == "schedule.rrule"
    schedule = Schedule(rrule=f"FREQ={freq};BYMONTH=2;BYMONTHDAY=30")
    with pytest.raises(InvalidSchedule, match="never produces"):
        compile_schedule(schedule, SEOUL, created=CREATED)
    assert time.perf_counter() - started < 3


def test_whether_a_rule_anchored_at_creation_runs_is_decided_with_the_creation() -> None:
    leap_days_every_4_years = {"rrule": "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29"}
    schedule, _ = parse_schedule(leap_days_every_4_years)  # fine for a job created in 2028
    created_2028 = datetime(2028, 1, 1, tzinfo=SEOUL)
    assert isos(compile_schedule(schedule, SEOUL, created=created_2028), created_2028, 2) == [
        "2028-02-29T00:00:00+09:00",
        "2032-02-29T00:00:00+09:00",
    ]
    with pytest.raises(InvalidSchedule, match="never produces"):  # but not for one from 2026
        compile_schedule(schedule, SEOUL, created=CREATED)


# --- the DST rule itself -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wall", "rule", "expected"),
    [
        (datetime(2026, 7, 1, 12), CRON_FIXED, ["2026-07-01T12:00:00-04:00"]),
        (datetime(2026, 3, 8, 2, 30), CRON_FIXED, ["2026-03-08T03:00:00-04:00"]),
        (datetime(2026, 3, 8, 2, 30), RRULE, ["2026-03-08T03:30:00-04:00"]),
        (datetime(2026, 3, 8, 2, 30), DstRule(DstGap.SKIP, DstFold.FIRST), []),
        (datetime(2026, 11, 1, 1, 30), CRON_FIXED, ["2026-11-01T01:30:00-04:00"]),
        (
            datetime(2026, 11, 1, 1, 30),
            DstRule(DstGap.NEXT, DstFold.LAST),
            ["2026-11-01T01:30:00-05:00"],
        ),
        (
            datetime(2026, 11, 1, 1, 30),
            DstRule(DstGap.NEXT, DstFold.BOTH),
            ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00"],
        ),
    ],
)
def test_resolve_local(wall: datetime, rule: DstRule, expected: list[str]) -> None:
    instants = resolve_local(wall, NY, rule)
    assert [instant.isoformat() for instant in instants] == expected
    # each instant is real: converting through UTC gives the same wall clock reading
    for instant in instants:
        assert instant.astimezone(UTC).astimezone(NY).isoformat() == instant.isoformat()


# --- zones ---------------------------------------------------------------------------------


def test_load_zone_returns_one_shared_zone_per_name() -> None:
    assert load_zone("Asia/Seoul") is load_zone("Asia/Seoul")
    assert load_zone("Asia/Seoul").key == "Asia/Seoul"


def test_load_zone_reads_the_tzdata_package_not_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    assert datetime(2026, 1, 1, tzinfo=load_zone("Asia/Seoul")).utcoffset() == timedelta(hours=9)
    assert load_zone("US/Eastern").key == "US/Eastern"  # links are listed by tzdata too


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("asia/seoul", "did you mean 'Asia/Seoul'"),
        ("Asia/Seul", "did you mean 'Asia/Seoul'"),
        ("", "expected an IANA time zone name"),
        ("../../etc/passwd", "unknown IANA time zone"),
        ("zone.tab", "unknown IANA time zone"),
    ],
)
def test_load_zone_rejects_unknown_names_naming_the_field(name: str, hint: str) -> None:
    with pytest.raises(InvalidInput, match=hint) as caught:
        load_zone(name, field="jobs[0].timezone")
    assert caught.value.field == "jobs[0].timezone"
    assert str(caught.value).startswith("jobs[0].timezone: ")
