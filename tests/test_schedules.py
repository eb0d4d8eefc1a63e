"""parse_schedule: user input -> a normalised Schedule, or an error naming the exact field."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from scheduler.errors import InvalidSchedule
from scheduler.model import DstFold, DstGap, DstPolicy, Frequency, Repeat, Schedule
from scheduler.schedules import SCHEDULE_KEYS, parse_schedule


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, Schedule()),
        ({}, Schedule()),
        ({"delay": "90s"}, Schedule(delay=90.0)),
        ({"delay": "1h30m"}, Schedule(delay=5400.0)),
        ({"delay": 45}, Schedule(delay=45.0)),
        ({"delay": 0}, Schedule(delay=0.0)),
        ({"at": "2026-12-24T09:00"}, Schedule(at="2026-12-24T09:00:00")),
        ({"at": "2026-12-24 09:00:00Z"}, Schedule(at="2026-12-24T09:00:00+00:00")),
        ({"every": "1h"}, Schedule(every=3600.0)),
        (
            {"every": "15m", "start": "2026-01-01T08:00", "end": "2026-01-02T08:00+09:00"},
            Schedule(every=900.0, start="2026-01-01T08:00:00", end="2026-01-02T08:00:00+09:00"),
        ),
        ({"cron": "@every 2h"}, Schedule(every=7200.0)),
        ({"cron": "  0  9 * *   1-5 "}, Schedule(cron="0 9 * * 1-5")),
        ({"cron": "@Daily"}, Schedule(cron="@daily")),
        ({"cron": "0 9 * * MON-FRI"}, Schedule(cron="0 9 * * MON-FRI")),
        (
            {"rrule": "  FREQ=WEEKLY;BYDAY=MO  "},
            Schedule(rrule="FREQ=WEEKLY;BYDAY=MO"),
        ),
        (
            {"cron": "30 2 * * *", "dst": {"gap": "SKIP"}},
            Schedule(cron="30 2 * * *", dst=DstPolicy(gap=DstGap.SKIP)),
        ),
        ({"delay": None, "cron": "@hourly"}, Schedule(cron="@hourly")),
    ],
)
def test_it_normalises_each_form(raw: dict[str, Any] | None, expected: Schedule) -> None:
    assert parse_schedule(raw) == (expected, None)


def test_it_normalises_a_repeat_pattern() -> None:
    raw = {
        "freq": "Weekly",
        "interval": 2,
        "time": "9:05",
        "weekdays": ["Wed", "monday", "wed"],
        "until": " 2027-01-01 ",
        "count": 10,
    }
    schedule, _ = parse_schedule({"repeat": raw})
    assert schedule.repeat == Repeat(
        freq=Frequency.WEEKLY,
        interval=2,
        time="09:05",
        weekdays=("mon", "wed"),
        until="2027-01-01",
        count=10,
    )


@pytest.mark.parametrize("key", ["monthDays", "month_days"])
def test_repeat_month_days_are_accepted_in_camel_and_snake_case(key: str) -> None:
    schedule, _ = parse_schedule(
        {"repeat": {"freq": "monthly", key: [-1, 15, 1], "time": "07:30:15"}}
    )
    assert schedule.repeat == Repeat(
        freq=Frequency.MONTHLY, time="07:30:15", month_days=(1, 15, -1)
    )


def test_it_returns_the_time_zone_named_inside_the_schedule() -> None:
    schedule, zone = parse_schedule({"cron": "0 9 * * *", "timezone": "America/New_York"})
    assert (schedule, zone) == (Schedule(cron="0 9 * * *"), "America/New_York")


def test_a_normalised_schedule_parses_to_itself() -> None:
    raw = {
        "repeat": {"freq": "monthly", "month_days": [31, -1], "time": "9:00"},
        "dst": {"fold": "last"},
    }
    schedule, _ = parse_schedule(raw)
    again, _ = parse_schedule(msgspec.to_builtins(schedule))
    assert again == schedule
    assert schedule.dst == DstPolicy(fold=DstFold.LAST)


ERRORS: list[tuple[str, Any, str, str]] = [
    ("not_an_object", ["cron"], "schedule", "expected an object"),
    ("unknown_key", {"cronn": "* * * * *"}, "schedule.cronn", "unknown key"),
    ("two_kinds", {"cron": "@daily", "delay": "1m"}, "schedule", "at most one of"),
    ("delay_word", {"delay": "soon"}, "schedule.delay", "expected a duration"),
    ("delay_negative", {"delay": -5}, "schedule.delay", "positive"),
    ("delay_bool", {"delay": True}, "schedule.delay", "expected a duration"),
    ("at_not_iso", {"at": "tomorrow 9am"}, "schedule.at", "ISO 8601"),
    ("at_number", {"at": 1700000000}, "schedule.at", "ISO 8601"),
    ("every_too_small", {"every": "100ms"}, "schedule.every", "at least 1s"),
    ("every_zero", {"every": 0}, "schedule.every", "positive"),
    ("every_bad_start", {"every": "1h", "start": "noon"}, "schedule.start", "ISO 8601"),
    (
        "every_end_before_start",
        {"every": "1h", "start": "2026-01-02T00:00", "end": "2026-01-01T00:00"},
        "schedule.end",
        "before start",
    ),
    (
        "start_without_every",
        {"cron": "@daily", "start": "2026-01-01T00:00"},
        "schedule.start",
        "only",
    ),
    ("cron_at_every_bad", {"cron": "@every often"}, "schedule.cron", "expected a duration"),
    ("cron_empty", {"cron": "  "}, "schedule.cron", "expected a cron expression"),
    ("cron_six_fields", {"cron": "0 0 9 * * *"}, "schedule.cron", "expected 5 fields"),
    ("cron_bad_minute", {"cron": "61 * * * *"}, "schedule.cron", "bad minute field '61'"),
    ("cron_bad_hour", {"cron": "0 24 * * *"}, "schedule.cron", "bad hour field '24'"),
    ("cron_bad_dom", {"cron": "0 0 0 * *"}, "schedule.cron", "bad day-of-month field '0'"),
    ("cron_bad_month", {"cron": "0 0 1 13 *"}, "schedule.cron", "bad month field '13'"),
    ("cron_bad_dow", {"cron": "0 0 * * MOON"}, "schedule.cron", "bad day-of-week field 'MOON'"),
    ("cron_bad_step", {"cron": "*/0 * * * *"}, "schedule.cron", "bad minute field"),
    ("cron_impossible_date", {"cron": "0 0 30 2 *"}, "schedule.cron", "never occurs in month '2'"),
    ("cron_31_in_april", {"cron": "0 0 31 4,6 *"}, "schedule.cron", "never occurs"),
    ("cron_unknown_shortcut", {"cron": "@reboot"}, "schedule.cron", "unknown shortcut '@reboot'"),
    ("repeat_not_object", {"repeat": "daily"}, "schedule.repeat", "expected an object"),
    (
        "repeat_no_freq",
        {"repeat": {"time": "09:00"}},
        "schedule.repeat",
        "missing required field `freq`",
    ),
    ("repeat_bad_freq", {"repeat": {"freq": "hourly"}}, "schedule.repeat.freq", "daily"),
    (
        "repeat_unknown_key",
        {"repeat": {"freq": "daily", "hour": 9}},
        "schedule.repeat",
        "unknown field `hour`",
    ),
    (
        "repeat_bad_weekday",
        {"repeat": {"freq": "weekly", "weekdays": ["mon", "xyz"]}},
        "schedule.repeat.weekdays[1]",
        "expected one of mon, tue",
    ),
    (
        "repeat_weekday_not_text",
        {"repeat": {"freq": "weekly", "weekdays": ["mon", 2]}},
        "schedule.repeat.weekdays[1]",
        "expected `str`",
    ),
    (
        "repeat_weekdays_with_monthly",
        {"repeat": {"freq": "monthly", "weekdays": ["mon"]}},
        "schedule.repeat.weekdays",
        "only for freq daily or weekly",
    ),
    (
        "repeat_bad_month_day",
        {"repeat": {"freq": "monthly", "monthDays": [1, 0]}},
        "schedule.repeat.monthDays[1]",
        "expected a day 1..31",
    ),
    (
        "repeat_month_day_too_big",
        {"repeat": {"freq": "monthly", "month_days": [32]}},
        "schedule.repeat.monthDays[0]",
        "expected a day 1..31",
    ),
    (
        "repeat_month_days_with_daily",
        {"repeat": {"freq": "daily", "monthDays": [1]}},
        "schedule.repeat.monthDays",
        "only for freq monthly",
    ),
    (
        "repeat_both_spellings",
        {"repeat": {"freq": "monthly", "monthDays": [1], "month_days": [2]}},
        "schedule.repeat.monthDays",
        "not both",
    ),
    (
        "repeat_bad_time",
        {"repeat": {"freq": "daily", "time": "25:00"}},
        "schedule.repeat.time",
        "24-hour",
    ),
    (
        "repeat_time_words",
        {"repeat": {"freq": "daily", "time": "9am"}},
        "schedule.repeat.time",
        "24-hour",
    ),
    (
        "repeat_interval_zero",
        {"repeat": {"freq": "daily", "interval": 0}},
        "schedule.repeat.interval",
        "1 to",
    ),
    (
        "repeat_interval_text",
        {"repeat": {"freq": "daily", "interval": "2"}},
        "schedule.repeat.interval",
        "expected `int`",
    ),
    (
        "repeat_count_zero",
        {"repeat": {"freq": "daily", "count": 0}},
        "schedule.repeat.count",
        "1 to",
    ),
    (
        "repeat_bad_until",
        {"repeat": {"freq": "daily", "until": "next year"}},
        "schedule.repeat.until",
        "date",
    ),
    ("rrule_empty", {"rrule": ""}, "schedule.rrule", "expected an RFC 5545 rule"),
    ("rrule_no_freq", {"rrule": "BYDAY=MO"}, "schedule.rrule", "missing FREQ"),
    ("rrule_bad_freq", {"rrule": "FREQ=FORTNIGHTLY"}, "schedule.rrule", "bad FREQ 'FORTNIGHTLY'"),
    (
        "rrule_unknown_part",
        {"rrule": "FREQ=DAILY;BYEASTER=1"},
        "schedule.rrule",
        "unknown part 'BYEASTER'",
    ),
    ("rrule_bad_byday", {"rrule": "FREQ=MONTHLY;BYDAY=-1FX"}, "schedule.rrule", "bad BYDAY '-1FX'"),
    (
        "rrule_bad_ordinal",
        {"rrule": "FREQ=MONTHLY;BYDAY=60MO"},
        "schedule.rrule",
        "bad BYDAY '60MO'",
    ),
    (
        "rrule_bad_bymonthday",
        {"rrule": "FREQ=MONTHLY;BYMONTHDAY=0"},
        "schedule.rrule",
        "bad BYMONTHDAY '0'",
    ),
    ("rrule_bad_byhour", {"rrule": "FREQ=DAILY;BYHOUR=9,24"}, "schedule.rrule", "bad BYHOUR '24'"),
    (
        "rrule_bad_bysetpos",
        {"rrule": "FREQ=MONTHLY;BYSETPOS=0"},
        "schedule.rrule",
        "bad BYSETPOS '0'",
    ),
    (
        "rrule_bad_interval",
        {"rrule": "FREQ=DAILY;INTERVAL=0"},
        "schedule.rrule",
        "bad INTERVAL '0'",
    ),
    ("rrule_not_pairs", {"rrule": "FREQ=DAILY;COUNT"}, "schedule.rrule", "expected NAME=VALUE"),
    ("rrule_twice", {"rrule": "FREQ=DAILY;FREQ=WEEKLY"}, "schedule.rrule", "FREQ given twice"),
    (
        "rrule_count_and_until",
        {"rrule": "FREQ=DAILY;COUNT=2;UNTIL=20270101"},
        "schedule.rrule",
        "not both",
    ),
    ("rrule_bad_until", {"rrule": "FREQ=DAILY;UNTIL=2027-01-01"}, "schedule.rrule", "bad UNTIL"),
    (
        "rrule_bad_dtstart",
        {"rrule": "DTSTART:2026-01-01\nFREQ=DAILY"},
        "schedule.rrule",
        "bad DTSTART",
    ),
    (
        "rrule_bad_date",
        {"rrule": "DTSTART:20260230T000000\nFREQ=DAILY"},
        "schedule.rrule",
        "bad date-time",
    ),
    (
        "rrule_bad_tzid",
        {"rrule": "DTSTART;TZID=Mars/Olympus:20260101T000000\nFREQ=DAILY"},
        "schedule.rrule",
        "Mars/Olympus",
    ),
    (
        "rrule_exdate",
        {"rrule": "FREQ=DAILY\nEXDATE:20260101T000000"},
        "schedule.rrule",
        "unsupported line",
    ),
    (
        "rrule_two_rules",
        {"rrule": "FREQ=DAILY\nRRULE:FREQ=WEEKLY"},
        "schedule.rrule",
        "more than one RRULE",
    ),
    (
        "timezone_unknown",
        {"cron": "@daily", "timezone": "Europe/Atlantis"},
        "schedule.timezone",
        "unknown IANA",
    ),
    (
        "timezone_not_text",
        {"cron": "@daily", "timezone": 9},
        "schedule.timezone",
        "expected an IANA",
    ),
    (
        "dst_bad_gap",
        {"cron": "@daily", "dst": {"gap": "later"}},
        "schedule.dst.gap",
        "invalid enum value",
    ),
    (
        "dst_unknown_key",
        {"cron": "@daily", "dst": {"fall": "first"}},
        "schedule.dst",
        "unknown field `fall`",
    ),
    (
        "dst_at_both",
        {"at": "2026-11-01T01:30", "dst": {"fold": "both"}},
        "schedule.dst.fold",
        "runs once",
    ),
    (
        "dst_with_every",
        {"every": "1h", "dst": {"gap": "skip"}},
        "schedule.dst",
        "only for at, cron",
    ),
    ("dst_with_immediate", {"dst": {"gap": "skip"}}, "schedule.dst", "only for at, cron"),
]


@pytest.mark.parametrize(
    ("raw", "field", "message"), [pytest.param(*case[1:], id=case[0]) for case in ERRORS]
)
def test_bad_input_is_refused_naming_the_field_and_what_was_expected(
    raw: Any, field: str, message: str
) -> None:
    with pytest.raises(InvalidSchedule) as caught:
        parse_schedule(raw)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert message.lower() in str(caught.value).lower()


def test_errors_use_the_callers_field_prefix() -> None:
    with pytest.raises(InvalidSchedule) as caught:
        parse_schedule({"repeat": {"freq": "weekly", "weekdays": ["funday"]}}, field="jobs[2]")
    assert caught.value.field == "jobs[2].repeat.weekdays[0]"


def test_the_schedule_keys_are_the_spec_keys() -> None:
    assert set(SCHEDULE_KEYS) == {
        "delay",
        "at",
        "every",
        "start",
        "end",
        "cron",
        "repeat",
        "rrule",
        "timezone",
        "dst",
    }
