"""RRULE evaluation within a fixed budget (issue 11), the rules the peers' suites found (10.6),
a rule's start without DTSTART (10.5), and the scheduler's own evaluator against dateutil."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dateutil import rrule as du
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scheduler.cli.next import upcoming
from scheduler.errors import InvalidSchedule
from scheduler.model import Schedule
from scheduler.schedules import load_zone, parse_schedule
from scheduler.triggers import compile_schedule
from scheduler.triggers.recur import Budget, TooCostly

UTC_ZONE = load_zone("UTC")
SEOUL = load_zone("Asia/Seoul")
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def runs(text: str, n: int, *, created: datetime = CREATED, zone: str = "UTC") -> list[str]:
    schedule, _ = parse_schedule({"rrule": text})
    tz = load_zone(zone)
    trigger = compile_schedule(schedule, tz, created=created)
    first = trigger.first_run(created)
    if first is None:
        return []
    return [run.isoformat() for run in [first, *upcoming(trigger, first, n - 1)]]


# --- issue 11: the rule that froze the loop -------------------------------------------------------

LEAP_SECOND = "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=23;BYMINUTE=59;BYSECOND=59"


def test_a_per_second_rule_that_matches_once_in_four_years_is_evaluated_by_the_day() -> None:
    assert runs(LEAP_SECOND, 3) == [
        "2028-02-29T23:59:59+00:00",
        "2032-02-29T23:59:59+00:00",
        "2036-02-29T23:59:59+00:00",
    ]


def test_its_count_variant_is_accepted_and_ends_before_year_10000() -> None:
    schedule, _ = parse_schedule({"rrule": f"{LEAP_SECOND};COUNT=100000"})
    trigger = compile_schedule(schedule, UTC_ZONE, created=CREATED)
    last = trigger.latest(CREATED, datetime(9999, 12, 31, tzinfo=UTC))
    assert last is not None
    assert last.isoformat() == "9996-02-29T23:59:59+00:00"
    assert trigger.next_after(last) is None


def test_a_budget_names_the_field_when_it_runs_out() -> None:
    budget = Budget(3, field="jobs[0].schedule.rrule")
    budget.spend(3)
    with pytest.raises(TooCostly, match=r"^jobs\[0\]\.schedule\.rrule: ") as caught:
        budget.spend()
    assert caught.value.field == "jobs[0].schedule.rrule"


def test_a_count_too_large_to_resolve_within_the_budget_is_refused_at_validation() -> None:
    text = "DTSTART:20260101T000000\nFREQ=WEEKLY;BYDAY=MO,TU;BYSETPOS=1;BYMONTH=2;COUNT=100000"
    with pytest.raises(TooCostly) as caught:
        parse_schedule({"rrule": text})
    assert caught.value.field == "schedule.rrule"
    assert "COUNT" in caught.value.message


# --- issue 10.6 -----------------------------------------------------------------------------------


def test_a_rule_with_a_century_between_runs_produces_all_of_them() -> None:
    text = "DTSTART:19970902T090000\nFREQ=YEARLY;COUNT=3;INTERVAL=100"
    assert runs(text, 5, created=datetime(1997, 1, 1, tzinfo=UTC)) == [
        "1997-09-02T09:00:00+00:00",
        "2097-09-02T09:00:00+00:00",
        "2197-09-02T09:00:00+00:00",
    ]


def test_plain_and_numbered_weekdays_combine_as_a_union() -> None:
    # RFC 5545: every Monday and the first Tuesday (dateutil intersects them: no run at all).
    assert runs("DTSTART:20260101T090000\nFREQ=MONTHLY;BYDAY=MO,1TU", 4) == [
        "2026-01-05T09:00:00+00:00",
        "2026-01-06T09:00:00+00:00",
        "2026-01-12T09:00:00+00:00",
        "2026-01-19T09:00:00+00:00",
    ]


def test_week_numbers_follow_iso_8601_where_dateutil_miscounts() -> None:
    # Saturdays of ISO week 53. 1 January 2050 lies in week 52 of 2049 (ISO 8601), but
    # dateutil counts 53 weeks in 2049 (it starts on a Friday) and runs then too.
    assert datetime(2050, 1, 1).isocalendar()[:2] == (2049, 52)
    text = "DTSTART:20490101T000000\nFREQ=YEARLY;BYWEEKNO=53;BYDAY=SA"
    assert runs(text, 3) == [
        "2049-01-02T00:00:00+00:00",
        "2055-01-02T00:00:00+00:00",
        "2061-01-01T00:00:00+00:00",
    ]
    plain = du.rrulestr("FREQ=YEARLY;BYWEEKNO=53;BYDAY=SA;WKST=MO", dtstart=datetime(2049, 1, 1))
    assert datetime(2050, 1, 1) in list(itertools.islice(plain, 3))


@pytest.mark.parametrize(
    ("rule", "part"),
    [
        ("FREQ=WEEKLY;BYDAY=1MO", "BYDAY '1MO'"),
        ("FREQ=DAILY;BYDAY=-1FR", "BYDAY '-1FR'"),
        ("FREQ=YEARLY;BYWEEKNO=1;BYDAY=1MO", "BYDAY '1MO'"),
        ("FREQ=MONTHLY;BYWEEKNO=1", "BYWEEKNO"),
        ("FREQ=DAILY;BYYEARDAY=1", "BYYEARDAY"),
        ("FREQ=WEEKLY;BYMONTHDAY=1", "BYMONTHDAY"),
    ],
)
def test_parts_rfc_5545_forbids_for_a_frequency_are_refused(rule: str, part: str) -> None:
    with pytest.raises(InvalidSchedule) as caught:
        parse_schedule({"rrule": rule})
    assert part in caught.value.message
    assert "RFC 5545" in caught.value.message


# --- issue 10.5: a rule without DTSTART -----------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;COUNT=2",
            ["2026-01-01T09:00:00+00:00", "2026-01-02T09:00:00+00:00"],
        ),
        (
            "FREQ=SECONDLY;INTERVAL=2;COUNT=3",
            ["2026-01-01T09:00:21+00:00", "2026-01-01T09:00:23+00:00", "2026-01-01T09:00:25+00:00"],
        ),
        (
            "FREQ=MINUTELY;COUNT=3",
            ["2026-01-01T09:00:00+00:00", "2026-01-01T09:01:00+00:00", "2026-01-01T09:02:00+00:00"],
        ),
        (
            "FREQ=HOURLY;BYMINUTE=30;COUNT=2",
            ["2026-01-01T09:30:00+00:00", "2026-01-01T10:30:00+00:00"],
        ),
    ],
)
def test_a_rule_without_dtstart_starts_at_the_creation_minute_and_runs_all_its_count(
    rule: str, expected: list[str]
) -> None:
    created = datetime(2026, 1, 1, 9, 0, 20, 400_000, tzinfo=UTC)
    assert runs(rule, 5, created=created) == expected


def test_the_creation_instant_read_from_a_job_id_gives_the_same_start() -> None:
    # The engine compiles with the creation to the millisecond (from the id), the service with
    # the clock's microseconds: both must start a SECONDLY rule at the same second.
    schedule, _ = parse_schedule({"rrule": "FREQ=SECONDLY;COUNT=3"})
    precise = datetime(2026, 1, 1, 9, 0, 20, 999_600, tzinfo=UTC)
    from_id = precise.replace(microsecond=999_000)
    one = compile_schedule(schedule, UTC_ZONE, created=precise)
    other = compile_schedule(schedule, UTC_ZONE, created=from_id)
    assert one.first_run(precise) == other.first_run(from_id)
    assert upcoming(one, precise, 3) == upcoming(other, precise, 3)


# --- every accepted rule is evaluated within the budget -------------------------------------------

DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


@st.composite
def rules(draw: st.DrawFn) -> str:
    """Random rules, rare combinations included (29-31 February, week 53, day 366, the fifth
    weekday, large intervals, positions beyond the set)."""
    freq = draw(
        st.sampled_from(["YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY"])
    )
    interval = draw(st.sampled_from([1, 1, 2, 3, 5, 7, 12, 25, 53, 400, 773, 9973]))
    parts = [f"FREQ={freq}", f"INTERVAL={interval}"]
    numbered = freq in {"MONTHLY", "YEARLY"} and draw(st.booleans())
    if draw(st.booleans()):
        days = draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=3, unique=True))
        if numbered:
            days = [f"{draw(st.sampled_from([-5, -1, 1, 2, 5]))}{day}" for day in days]
        parts.append("BYDAY=" + ",".join(days))
    if freq != "WEEKLY" and draw(st.booleans()):
        month_days = st.sampled_from([1, 15, 28, 29, 30, 31, -1, -29, -31])
        picked = draw(st.lists(month_days, min_size=1, max_size=2, unique=True))
        parts.append("BYMONTHDAY=" + ",".join(map(str, picked)))
    if draw(st.booleans()):
        months = draw(st.lists(st.sampled_from([1, 2, 4, 12]), min_size=1, max_size=2, unique=True))
        parts.append("BYMONTH=" + ",".join(map(str, months)))
    if freq in {"YEARLY", "HOURLY", "MINUTELY", "SECONDLY"} and draw(st.booleans()):
        parts.append(f"BYYEARDAY={draw(st.sampled_from([1, 60, 366, -1, -366]))}")
    if freq == "YEARLY" and not numbered and draw(st.booleans()):
        parts.append(f"BYWEEKNO={draw(st.sampled_from([1, 20, 52, 53, -1, -53]))}")
    for name, values in (("BYHOUR", range(24)), ("BYMINUTE", range(60)), ("BYSECOND", range(60))):
        if draw(st.booleans()):
            picked = draw(st.lists(st.sampled_from(list(values)), min_size=1, max_size=2))
            parts.append(f"{name}=" + ",".join(map(str, sorted(set(picked)))))
    if draw(st.integers(0, 3)) == 0:
        parts.append(f"BYSETPOS={draw(st.sampled_from([1, -1, 2, 3, 7]))}")
    if draw(st.integers(0, 3)) == 0:
        parts.append(f"COUNT={draw(st.sampled_from([1, 5, 1000, 100000]))}")
    start = draw(st.none() | st.datetimes(datetime(1980, 1, 1), datetime(2040, 1, 1)))
    rule = ";".join(parts)
    return rule if start is None else f"DTSTART:{start:%Y%m%dT%H%M%S}\n{rule}"


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    text=rules(),
    zone=st.sampled_from(["UTC", "America/New_York", "Asia/Seoul"]),
    queries=st.lists(st.integers(0, 60 * 365 * 86400), min_size=1, max_size=3),
    span=st.sampled_from([60, 86400, 40 * 86400, 3 * 365 * 86400]),
)
def test_an_accepted_rule_answers_every_query_within_the_step_budget(
    text: str, zone: str, queries: list[int], span: int
) -> None:
    """Deterministic: a query that needs more than QUERY_STEPS steps raises TooCostly."""
    tz = load_zone(zone)
    try:
        trigger = compile_schedule(Schedule(rrule=text), tz, created=CREATED)
    except InvalidSchedule:  # refused at validation: never runs, too costly, or RFC-invalid
        assume(False)
    base = datetime(1990, 1, 1, tzinfo=UTC)
    for offset in queries:
        moment = base + timedelta(seconds=offset)
        following = trigger.next_after(moment)
        until = moment + timedelta(seconds=span)
        tally = trigger.count(moment, until)
        latest = trigger.latest(moment, until)
        if tally.exact:
            assert (latest is None) == (tally.runs == 0)
        if following is not None and following <= until:
            assert latest is not None
            assert tally.runs >= 1


# --- the scheduler's evaluator against dateutil ---------------------------------------------------

FINE = ["DAILY", "HOURLY", "MINUTELY", "SECONDLY", "WEEKLY"]


@st.composite
def fine_rules(draw: st.DrawFn) -> tuple[str, datetime]:
    """Rules dateutil evaluates quickly enough to compare: no rare day parts."""
    freq = draw(st.sampled_from(FINE))
    parts = [f"FREQ={freq}", f"INTERVAL={draw(st.sampled_from([1, 2, 3, 5, 7, 13, 25, 90]))}"]
    if draw(st.booleans()):
        days = draw(st.lists(st.sampled_from(DAYS), min_size=2, max_size=5, unique=True))
        parts.append("BYDAY=" + ",".join(days))
    if freq != "SECONDLY" and draw(st.booleans()):
        parts.append(
            "BYHOUR="
            + ",".join(
                map(str, sorted(set(draw(st.lists(st.integers(0, 23), min_size=1, max_size=4)))))
            )
        )
    if freq not in {"SECONDLY"} and draw(st.booleans()):
        parts.append(
            "BYMINUTE="
            + ",".join(
                map(str, sorted(set(draw(st.lists(st.integers(0, 59), min_size=1, max_size=3)))))
            )
        )
    if draw(st.booleans()):
        parts.append(
            "BYSECOND="
            + ",".join(
                map(str, sorted(set(draw(st.lists(st.integers(0, 59), min_size=1, max_size=3)))))
            )
        )
    if freq != "WEEKLY" and draw(st.integers(0, 2)) == 0:
        parts.append(f"BYSETPOS={draw(st.sampled_from([1, -1, 2, -2]))}")
    if draw(st.booleans()):
        parts.append(f"WKST={draw(st.sampled_from(DAYS))}")
    start = draw(st.datetimes(datetime(2000, 1, 1), datetime(2030, 1, 1))).replace(microsecond=0)
    return ";".join(parts), start


@settings(
    max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(rule=fine_rules(), later=st.integers(-3600, 40 * 86400))
def test_fine_frequencies_match_dateutil(rule: tuple[str, datetime], later: int) -> None:
    body, start = rule
    text = f"DTSTART:{start:%Y%m%dT%H%M%S}\n{body}"
    try:
        trigger = compile_schedule(Schedule(rrule=text), UTC_ZONE, created=CREATED)
    except InvalidSchedule:
        assume(False)
    query = start + timedelta(seconds=later)
    plain = du.rrulestr(body if "WKST" in body else f"{body};WKST=MO", dtstart=start)
    expected = [run.isoformat() for run in itertools.islice(plain.xafter(query), 6)]
    got = upcoming(trigger, query.replace(tzinfo=UTC), 6)
    assert [run.replace(tzinfo=None).isoformat() for run in got] == expected


def test_year_and_month_rules_match_dateutil_on_named_cases() -> None:
    cases: list[tuple[str, Any]] = [
        ("FREQ=YEARLY;BYYEARDAY=1,100,-1;BYHOUR=6", datetime(2001, 5, 17, 13, 41, 7)),
        ("FREQ=YEARLY;BYWEEKNO=1,20;BYDAY=MO,SU;WKST=SU", datetime(2001, 5, 17)),
        ("FREQ=YEARLY;BYMONTH=1,7;BYDAY=1MO,-1FR", datetime(2003, 2, 1, 8)),
        ("FREQ=MONTHLY;BYMONTHDAY=-1,-31,15;BYSETPOS=-1,1", datetime(2010, 1, 31, 10)),
        ("FREQ=MONTHLY;INTERVAL=7;BYDAY=5FR", datetime(2012, 3, 3, 3)),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH,SA;BYSETPOS=2;BYHOUR=1,2", datetime(2020, 2, 29)),
    ]
    for body, start in cases:
        text = f"DTSTART:{start:%Y%m%dT%H%M%S}\n{body}"
        trigger = compile_schedule(Schedule(rrule=text), UTC_ZONE, created=CREATED)
        plain = du.rrulestr(body if "WKST" in body else f"{body};WKST=MO", dtstart=start)
        expected = [run.isoformat() for run in itertools.islice(plain, 25)]
        got = upcoming(trigger, start.replace(tzinfo=UTC) - timedelta(seconds=1), 25)
        assert [run.replace(tzinfo=None).isoformat() for run in got] == expected, body
