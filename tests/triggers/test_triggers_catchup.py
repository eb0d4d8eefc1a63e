"""What catch-up asks of a trigger: ``latest`` (the last run in a span) and ``count`` (how many),
without walking the runs, checked against a walk of ``next_after``."""

from __future__ import annotations

import importlib.resources
import itertools
import struct
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.schedules import load_zone, parse_schedule
from scheduler.triggers import Tally, Trigger, compile_schedule
from scheduler.triggers.dst import CHANGE_STEP, offset_changes
from scheduler.triggers.wallclock import EXACT_YEARS, last_run

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Seoul", "UTC"]
SPECS: list[dict[str, Any]] = [
    {"cron": "*/15 * * * *"},
    {"cron": "30 2 * * *"},
    {"cron": "0,30 1-3 * * *"},
    {"cron": "0 0 L * *"},
    {"rrule": "FREQ=HOURLY"},
    {"rrule": "FREQ=MINUTELY;INTERVAL=7"},
    {"rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=30"},
    {"rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=1,2,3"},
    {"rrule": "FREQ=MONTHLY;BYDAY=-1SU;BYHOUR=2;BYSETPOS=1"},
    {"rrule": "FREQ=DAILY;BYHOUR=1,2;COUNT=300"},
    {"repeat": {"freq": "daily", "time": "02:30"}},
    {"repeat": {"freq": "daily", "interval": 2, "time": "01:30", "until": "2026-12-01"}},
    {"every": "37m"},
]
DST = [
    {},
    {"dst": {"gap": "shift", "fold": "both"}},
    {"dst": {"gap": "skip", "fold": "last"}},
    {"dst": {"gap": "next", "fold": "both"}},
]


def trigger(raw: dict[str, Any], zone: str) -> Trigger:
    schedule, _ = parse_schedule(raw)
    return compile_schedule(schedule, load_zone(zone), created=CREATED)


def walk(trig: Trigger, after: datetime, until: datetime) -> list[datetime]:
    found = []
    current = trig.next_after(after)
    while current is not None and current <= until:
        found.append(current)
        current = trig.next_after(current)
    return found


@settings(
    max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    spec=st.sampled_from(SPECS),
    dst=st.sampled_from(DST),
    zone=st.sampled_from(ZONES),
    start=st.integers(0, 330 * 86400),
    span=st.sampled_from([3600, 86400, 4 * 86400, 40 * 86400]),
)
def test_latest_and_count_equal_a_walk(
    spec: dict[str, Any], dst: dict[str, Any], zone: str, start: int, span: int
) -> None:
    trig = trigger({**spec, **dst} if "every" not in spec else spec, zone)
    after = CREATED + timedelta(seconds=start)
    until = after + timedelta(seconds=span)
    runs = walk(trig, after, until)
    assert trig.count(after, until) == Tally(len(runs), True)
    latest = trig.latest(after + timedelta(microseconds=1), until)
    assert latest == (runs[-1] if runs else None)


@pytest.mark.parametrize(
    ("raw", "zone"),
    [
        ({"cron": "* * * * *"}, "America/New_York"),
        ({"rrule": "FREQ=SECONDLY;INTERVAL=3;BYHOUR=0"}, "Europe/Berlin"),
        ({"repeat": {"freq": "daily", "interval": 3, "time": "02:30"}}, "America/New_York"),
    ],
)
def test_latest_needs_logarithmically_many_queries(raw: dict[str, Any], zone: str) -> None:
    trig = trigger(raw, zone)
    queries = 0

    def next_after(moment: datetime) -> datetime | None:
        nonlocal queries
        queries += 1
        return trig.next_after(moment)

    until = CREATED + timedelta(days=365, microseconds=-1)
    found = last_run(next_after, CREATED, until)
    assert found == walk(trig, until - timedelta(days=3), until)[-1]
    assert queries <= 2 * 20 + 3  # 2 log2(n) + 3 for up to 2**20 runs (a year of minutes)


def test_a_count_over_more_than_the_exact_span_is_a_lower_bound() -> None:
    trig = trigger({"cron": "0 9 * * *"}, "America/New_York")
    until = CREATED + timedelta(days=366 * (EXACT_YEARS + 10))
    tally = trig.count(CREATED, until)
    assert not tally.exact
    assert 365 * EXACT_YEARS <= tally.runs <= 366 * EXACT_YEARS


def test_a_per_second_rule_across_an_offset_change_is_counted_exactly() -> None:
    trig = trigger({"rrule": "FREQ=SECONDLY"}, "America/New_York")
    after = datetime(2026, 3, 8, tzinfo=load_zone("America/New_York"))
    until = after + timedelta(hours=6)
    # Every real second runs: the gap's wall times are shifted onto the hour after it.
    assert trig.count(after, until) == Tally(5 * 3600, True)


def test_a_per_second_rule_across_a_year_of_offset_changes_is_counted_exactly() -> None:
    trig = trigger({"rrule": "FREQ=SECONDLY"}, "America/New_York")
    after = datetime(2026, 3, 1, tzinfo=load_zone("America/New_York"))
    until = datetime(2026, 12, 1, tzinfo=load_zone("America/New_York"))
    elapsed = int(until.timestamp() - after.timestamp())
    # The fold's second hour has no run (fold=first), counted without resolving its 3,600
    # wall times; the gap's 7,200 (its hour, moved onto the next) are resolved.
    assert trig.count(after, until) == Tally(elapsed - 3600, True)


def test_a_count_that_would_resolve_too_many_wall_times_is_a_lower_bound() -> None:
    trig = trigger({"rrule": "FREQ=SECONDLY"}, "America/New_York")
    after = datetime(2026, 3, 1, tzinfo=load_zone("America/New_York"))
    until = datetime(2027, 4, 1, tzinfo=load_zone("America/New_York"))
    elapsed = int(until.timestamp() - after.timestamp())
    # Two gaps of 7,200 wall times each are more than a count resolves: the second gap's
    # 3,600 runs are left out, and the count says it is a lower bound.
    assert trig.count(after, until) == Tally(elapsed - 3600 - 3600, False)


def test_every_counts_and_finds_the_latest_run_arithmetically() -> None:
    trig = trigger({"every": "1s", "start": "2026-01-01T00:00"}, "UTC")
    until = CREATED + timedelta(days=365 * 30, microseconds=500)
    assert trig.count(CREATED, until) == Tally(365 * 30 * 86400, True)
    assert trig.latest(CREATED, until) == until - timedelta(microseconds=500)


def test_first_run_of_a_new_job_is_after_its_creation_unless_anchored_at_its_minute() -> None:
    created = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    cron = trigger({"cron": "0 9 * * *"}, "UTC")
    assert cron.first_run(created) == created + timedelta(days=1)
    schedule, _ = parse_schedule({"rrule": "FREQ=DAILY;BYHOUR=9;BYMINUTE=0"})
    anchored = compile_schedule(schedule, load_zone("UTC"), created=created + timedelta(seconds=20))
    assert anchored.first_run(created + timedelta(seconds=20)) == created


# --- finding offset changes by sampling --------------------------------------------------------


def _tzif_changes(name: str) -> list[int]:
    """The instants at which ``name``'s UTC offset changes, read from tzdata's TZif file."""
    data = (importlib.resources.files("tzdata.zoneinfo") / name).read_bytes()
    counts = struct.unpack(">6l", data[20:44])
    isutc, isstd, leap, times, types, chars = counts
    skip = 44 + times * 5 + types * 6 + chars + leap * 8 + isstd + isutc
    isutc, isstd, leap, times, types, chars = struct.unpack(">6l", data[skip + 20 : skip + 44])
    base = skip + 44
    stamps = struct.unpack(f">{times}q", data[base : base + 8 * times])
    indexes = data[base + 8 * times : base + 9 * times]
    table = base + 9 * times
    offsets = [struct.unpack(">l", data[table + 6 * i : table + 6 * i + 4])[0] for i in indexes]
    return [
        stamp
        for stamp, offset, previous in zip(stamps[1:], offsets[1:], offsets, strict=False)
        if offset != previous
    ]


def test_no_two_offset_changes_of_any_zone_are_closer_than_the_sampling_step() -> None:
    """What :func:`offset_changes` rests on: sampled CHANGE_STEP apart, no change is missed."""
    closest = min(
        (later - earlier, name)
        for name in zoneinfo.available_timezones()
        if (importlib.resources.files("tzdata.zoneinfo") / name).is_file()
        for changes in [_tzif_changes(name)]
        for earlier, later in itertools.pairwise(changes)
        if earlier > -2208988800  # from 1900 on
    )
    assert closest[0] > CHANGE_STEP, closest


def test_offset_changes_finds_each_change_to_the_second() -> None:
    zone = load_zone("Europe/Berlin")
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    changes = offset_changes(zone, start, start + 365 * 86400)
    assert [
        (datetime.fromtimestamp(c.at, UTC).isoformat(), c.before, c.after) for c in changes
    ] == [
        ("2026-03-29T01:00:00+00:00", timedelta(hours=1), timedelta(hours=2)),
        ("2026-10-25T01:00:00+00:00", timedelta(hours=2), timedelta(hours=1)),
    ]
