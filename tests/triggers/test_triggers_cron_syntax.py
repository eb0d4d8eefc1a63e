"""Cron input the peers' test suites exercise (issue 10.6) and the cost of cron searches (11).

Vectors compare ISO strings with offsets, in America/New_York (DST starts 2026-03-08).
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from cronsim import CronSim

from scheduler.cli.next import upcoming
from scheduler.errors import InvalidSchedule
from scheduler.schedules import load_zone, parse_schedule
from scheduler.triggers import compile_schedule
from scheduler.triggers.cron import HORIZON_YEARS, _calendar, parse_cron

NY = load_zone("America/New_York")
START = datetime(2026, 1, 1, tzinfo=NY)


def runs(expr: str, n: int = 4, start: datetime = START) -> list[str]:
    schedule, _ = parse_schedule({"cron": expr})
    trigger = compile_schedule(schedule, NY, created=start)
    return [run.isoformat() for run in upcoming(trigger, start, n)]


def refusal(expr: str) -> str:
    with pytest.raises(InvalidSchedule) as caught:
        parse_schedule({"cron": expr})
    assert caught.value.field == "schedule.cron"
    return caught.value.message


# --- extensions users of croniter and Quartz expect ------------------------------------------

EXTENSIONS = [
    (
        "last_day_of_month_L",
        "0 9 L * *",
        ["2026-01-31T09:00:00-05:00", "2026-02-28T09:00:00-05:00", "2026-03-31T09:00:00-04:00"],
    ),
    (
        "last_weekday_of_month_LW",
        "0 9 LW * *",
        ["2026-01-30T09:00:00-05:00", "2026-02-27T09:00:00-05:00", "2026-03-31T09:00:00-04:00"],
    ),
    (
        "nearest_weekday_W_moves_a_sunday_to_monday",  # 15 Feb and 15 Mar 2026 are Sundays
        "0 9 15W * *",
        ["2026-01-15T09:00:00-05:00", "2026-02-16T09:00:00-05:00", "2026-03-16T09:00:00-04:00"],
    ),
    (
        "nearest_weekday_W_never_leaves_the_month",  # 1 Aug 2026 is a Saturday
        "0 9 1W 8 *",
        ["2026-08-03T09:00:00-04:00", "2027-08-02T09:00:00-04:00", "2028-08-01T09:00:00-04:00"],
    ),
    (
        "nearest_weekday_W_of_a_day_the_month_lacks_is_skipped",  # 31 Jan 2026 is a Saturday
        "0 9 31W * *",
        ["2026-01-30T09:00:00-05:00", "2026-03-31T09:00:00-04:00", "2026-05-29T09:00:00-04:00"],
    ),
    (
        "nth_weekday_hash",
        "0 9 * * 5#2",
        ["2026-01-09T09:00:00-05:00", "2026-02-13T09:00:00-05:00", "2026-03-13T09:00:00-04:00"],
    ),
    (
        "last_friday_5L",
        "0 9 * * 5L",
        ["2026-01-30T09:00:00-05:00", "2026-02-27T09:00:00-05:00", "2026-03-27T09:00:00-04:00"],
    ),
    (
        "seven_is_sunday",
        "0 9 * * 7",
        ["2026-01-04T09:00:00-05:00", "2026-01-11T09:00:00-05:00", "2026-01-18T09:00:00-05:00"],
    ),
    (
        "mon_sun_is_every_day",
        "0 9 * * MON-SUN",
        ["2026-01-01T09:00:00-05:00", "2026-01-02T09:00:00-05:00", "2026-01-03T09:00:00-05:00"],
    ),
    (
        "a_range_ending_on_sunday_in_lower_case",
        "0 9 * * fri-sun",
        ["2026-01-02T09:00:00-05:00", "2026-01-03T09:00:00-05:00", "2026-01-04T09:00:00-05:00"],
    ),
]


@pytest.mark.parametrize(
    ("expr", "expected"), [v[1:] for v in EXTENSIONS], ids=[v[0] for v in EXTENSIONS]
)
def test_cron_extension_vectors(expr: str, expected: list[str]) -> None:
    assert runs(expr, len(expected)) == expected


@pytest.mark.parametrize("spelling", ["MON-SUN", "mon-sun", "Mon-Sun", "1-7", "MON-0"])
def test_every_spelling_of_monday_to_sunday_means_every_day(spelling: str) -> None:
    assert runs(f"0 9 * * {spelling}", 10) == runs("0 9 * * *", 10)


@pytest.mark.parametrize("expr", ["0 9 L * *", "0 9 LW * *", "0 9 * * 5#2", "0 9 * * 0L"])
def test_the_extensions_cronsim_parses_agree_with_cronsim(expr: str) -> None:
    sim = CronSim(expr, START)
    assert runs(expr, 24) == [next(sim).isoformat() for _ in range(24)]


# --- what is refused, and how it is explained -------------------------------------------------


@pytest.mark.parametrize("expr", ["5-5/0 * * * *", "*/0 * * * *", "1-10/0 * * * *"])
def test_a_zero_step_is_refused(expr: str) -> None:
    message = refusal(expr)
    assert "bad minute field" in message
    assert "a step must be 1 or more" in message


@pytest.mark.parametrize(
    ("space", "name"),
    [
        ("\u00a0", "U+00A0 (NO-BREAK SPACE)"),
        ("\u3000", "U+3000 (IDEOGRAPHIC SPACE)"),
        ("\u2003", "U+2003 (EM SPACE)"),
        ("\u202f", "U+202F (NARROW NO-BREAK SPACE)"),
        ("\n", "U+000A"),
    ],
)
def test_only_ascii_space_and_tab_separate_fields(space: str, name: str) -> None:
    message = refusal(f"0{space}9 * * *")
    assert name in message
    assert "ASCII spaces or tabs" in message


def test_tabs_and_repeated_spaces_separate_fields() -> None:
    assert parse_cron("0\t9  *\t * *", field="cron").text == "0 9 * * *"


@pytest.mark.parametrize(
    ("expr", "field", "suggestion"),
    [
        ("0 9 * NOV-MAR *", "month", "NOV-DEC,JAN-MAR"),
        ("0 9 * * fri-mon", "day-of-week", "FRI-SAT,SUN-MON"),
        ("0 22-2 * * *", "hour", "22-23,0-2"),
        ("0 9 28-3 * *", "day-of-month", "28-31,1-3"),
    ],
)
def test_a_range_that_wraps_around_is_refused_with_how_to_write_it(
    expr: str, field: str, suggestion: str
) -> None:
    message = refusal(expr)
    assert f"bad {field} field" in message
    assert "do not wrap around" in message
    assert suggestion in message


def test_the_suggested_ranges_mean_what_the_wrapped_range_would() -> None:
    assert runs("0 9 * NOV-DEC,JAN-MAR *", 3, datetime(2026, 3, 31, tzinfo=NY)) == [
        "2026-03-31T09:00:00-04:00",
        "2026-11-01T09:00:00-05:00",
        "2026-11-02T09:00:00-05:00",
    ]


@pytest.mark.parametrize("expr", ["0 9 0W * *", "0 9 32W * *", "0 9 W * *"])
def test_a_bad_nearest_weekday_is_refused(expr: str) -> None:
    assert "bad day-of-month field" in refusal(expr)


# --- bounded searches ---------------------------------------------------------------------------


def test_every_kind_of_month_recurs_within_the_horizon() -> None:
    """What HORIZON_YEARS rests on: which days of a month match depends only on (month, weekday
    of the 1st, length), and each such kind recurs within 40 years in the 400-year cycle."""
    years = defaultdict(list)
    for year in range(2000, 2400):
        for month in range(1, 13):
            years[(month, *calendar.monthrange(year, month))].append(year)
    gaps = [
        later - earlier
        for seen in years.values()
        for earlier, later in zip(seen, [*seen[1:], seen[0] + 400], strict=True)
    ]
    assert len(years) == 91
    assert max(gaps) == HORIZON_YEARS


@pytest.mark.parametrize(
    ("expr", "first"),
    [
        ("0 0 29 2 */7", "2032-02-29T00:00:00-05:00"),  # 29 February that is a Sunday
        ("0 0 * 2 1#5", "2044-02-29T00:00:00-05:00"),  # the fifth Monday of a February
        ("0 0 29W 2 *", "2028-02-29T00:00:00-05:00"),
    ],
)
def test_rare_dates_are_found(expr: str, first: str) -> None:
    assert runs(expr, 1) == [first]


@pytest.mark.parametrize("expr", ["0 0 */31 * 1#5", "0 0 30 2 *", "0 0 31W 2,4 *"])
def test_a_rule_that_never_matches_is_refused_after_a_bounded_search(expr: str) -> None:
    assert "never" in refusal(expr)
    fields = parse_cron(expr, field="cron").fields if "30 2" not in expr else None
    if fields is not None:
        assert len(_calendar(fields)._kinds) <= 91  # each kind of month tested once


def test_counting_cron_runs_needs_no_walk() -> None:
    schedule, _ = parse_schedule({"cron": "* * * * *"})
    trigger = compile_schedule(schedule, NY, created=START)
    # 20 years of minutes: 10 million runs, counted from a year table, and only the 120 + 60
    # minutes around each year's offset changes one by one (each year's gap and fold cancel
    # out: -60 in March, +60 in November).
    tally = trigger.count(START, START + timedelta(days=7305))
    assert tally == (7305 * 1440, True)
