"""The DST and calendar policy as named vectors: the expected runs as ISO strings with offsets.

A plain module, not a test file: ``tests/triggers/test_dst_vectors.py`` runs the vectors
through the single box's pure functions, ``tests/cluster/test_claims_dst.py`` through a
cluster node's claims, and both must agree with the same table.

Each vector: a schedule object (as a user submits it), the job's zone, the instant the job is
created (also where the listing starts: runs strictly after it), and the expected runs.

Transitions used (from the tzdata package):
- America/New_York 2026: 03-08 02:00 EST -> 03:00 EDT; 11-01 02:00 EDT -> 01:00 EST.
- Europe/Berlin 2026: 03-29 02:00 CET -> 03:00 CEST; 10-25 03:00 CEST -> 02:00 CET.
- Australia/Lord_Howe 2026: 04-05 02:00 (+11) -> 01:30 (+10:30); 10-04 02:00 -> 02:30.
- Asia/Seoul 1987: 05-10 02:00 KST -> 03:00 KDT; 10-11 03:00 KDT -> 02:00 KST (no DST today).
"""

from __future__ import annotations

from typing import Any

NY = "America/New_York"
BERLIN = "Europe/Berlin"
LORD_HOWE = "Australia/Lord_Howe"
SEOUL = "Asia/Seoul"


Vector = tuple[str, dict[str, Any], str, str, list[str]]
"""``(name, schedule as submitted, zone, created, expected runs)``."""

VECTORS: list[Vector] = [
    # --- spring forward, fixed time: the first instant after the gap ---
    (
        "ny_cron_fixed_time_in_gap_runs_at_gap_end",
        {"cron": "30 2 * * *"},
        NY,
        "2026-03-07T12:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        "ny_cron_two_gap_times_run_once_at_gap_end",
        {"cron": "0,30 2 * * *"},
        NY,
        "2026-03-07T12:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        "berlin_cron_fixed_time_in_gap_runs_at_gap_end",
        {"cron": "30 2 * * *"},
        BERLIN,
        "2026-03-28T12:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    ),
    (
        "ny_repeat_in_gap_runs_at_gap_end",
        {"repeat": {"freq": "daily", "time": "02:30"}},
        NY,
        "2026-03-07T12:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        "ny_at_in_gap_runs_at_gap_end",
        {"at": "2026-03-08T02:30"},
        NY,
        "2026-03-01T00:00",
        ["2026-03-08T03:00:00-04:00"],
    ),
    (
        "lord_howe_half_hour_gap_runs_at_gap_end",
        {"cron": "15 2 * * *"},
        LORD_HOWE,
        "2026-10-03T12:00",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
    ),
    (
        "seoul_1987_gap_from_zone_data",
        {"cron": "30 2 * * *"},
        SEOUL,
        "1987-05-09T12:00",
        ["1987-05-10T03:00:00+10:00", "1987-05-11T02:30:00+10:00"],
    ),
    # --- spring forward, wildcard hour: every real occurrence, none inside the gap ---
    (
        "ny_cron_every_30_minutes_skips_the_gap",
        {"cron": "*/30 * * * *"},
        NY,
        "2026-03-08T01:00",
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"],
    ),
    (
        "berlin_cron_hourly_skips_the_gap",
        {"cron": "15 * * * *"},
        BERLIN,
        "2026-03-29T01:00",
        ["2026-03-29T01:15:00+01:00", "2026-03-29T03:15:00+02:00"],
    ),
    (
        "lord_howe_cron_every_15_minutes_skips_the_half_hour_gap",
        {"cron": "*/15 * * * *"},
        LORD_HOWE,
        "2026-10-04T01:40",
        ["2026-10-04T01:45:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00"],
    ),
    # --- fall back, fixed time: once, at the first occurrence ---
    (
        "ny_cron_fixed_time_in_fold_runs_once_first",
        {"cron": "30 1 * * *"},
        NY,
        "2026-10-31T12:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        "berlin_cron_fixed_time_in_fold_runs_once_first",
        {"cron": "30 2 * * *"},
        BERLIN,
        "2026-10-24T12:00",
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
    ),
    (
        "ny_repeat_in_fold_runs_once_first",
        {"repeat": {"freq": "daily", "time": "01:30"}},
        NY,
        "2026-10-31T12:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        "lord_howe_fixed_time_in_half_hour_fold_runs_once_first",
        {"cron": "45 1 * * *"},
        LORD_HOWE,
        "2026-04-04T12:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
    ),
    (
        "seoul_1987_fold_from_zone_data",
        {"cron": "30 2 * * *"},
        SEOUL,
        "1987-10-10T12:00",
        ["1987-10-11T02:30:00+10:00", "1987-10-12T02:30:00+09:00"],
    ),
    # --- fall back, wildcard hour: both halves of the fold ---
    (
        "ny_cron_every_30_minutes_runs_both_halves_of_the_fold",
        {"cron": "*/30 * * * *"},
        NY,
        "2026-11-01T00:45",
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    ),
    (
        "berlin_cron_hourly_runs_both_halves_of_the_fold",
        {"cron": "@hourly"},
        BERLIN,
        "2026-10-25T01:30",
        ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"],
    ),
    (
        "lord_howe_every_15_minutes_runs_both_halves_of_the_fold",
        {"cron": "*/15 * * * *"},
        LORD_HOWE,
        "2026-04-05T01:40+11:00",
        [
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-05T02:00:00+10:30",
        ],
    ),
    # --- rrule: RFC 5545 reads a gap time with the offset before the gap ---
    (
        "ny_rrule_gap_time_is_shifted_by_the_gap",
        {"rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=30"},
        NY,
        "2026-03-07T12:00",
        ["2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        "lord_howe_rrule_gap_time_is_shifted_by_half_an_hour",
        {"rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=15"},
        LORD_HOWE,
        "2026-10-03T12:00",
        ["2026-10-04T02:45:00+11:00", "2026-10-05T02:15:00+11:00"],
    ),
    (
        "ny_rrule_fold_time_is_the_first_occurrence",
        {"rrule": "FREQ=DAILY;BYHOUR=1;BYMINUTE=30"},
        NY,
        "2026-10-31T12:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        # COUNT counts the rule's wall times: 02:00 shifts onto 03:00, which runs once.
        "ny_rrule_hourly_gap_hour_shifts_onto_the_next_and_runs_once",
        {"rrule": "DTSTART:20260308T000000\nFREQ=HOURLY;COUNT=4"},
        NY,
        "2026-03-07T12:00",
        ["2026-03-08T00:00:00-05:00", "2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"],
    ),
    # --- Asia/Seoul today: never a fixed +09:00 by accident, but the zone's own offset ---
    (
        "seoul_1987_daily_follows_the_offset_change",
        {"cron": "0 9 * * *"},
        SEOUL,
        "1987-05-09T00:00",
        ["1987-05-09T09:00:00+09:00", "1987-05-10T09:00:00+10:00"],
    ),
    (
        "seoul_1988_repeat_follows_the_offset_change",
        {"repeat": {"freq": "daily", "time": "09:00"}},
        SEOUL,
        "1988-10-08T00:00",
        ["1988-10-08T09:00:00+10:00", "1988-10-09T09:00:00+09:00"],
    ),
    (
        "seoul_today_is_plus_nine",
        {"cron": "0 9 * * *"},
        SEOUL,
        "2026-05-09T00:00",
        ["2026-05-09T09:00:00+09:00", "2026-05-10T09:00:00+09:00"],
    ),
    # --- month ends and leap days (RFC 5545: a month without the day is skipped) ---
    (
        "repeat_day_31_skips_short_months",
        {"repeat": {"freq": "monthly", "monthDays": [31], "time": "09:00"}},
        SEOUL,
        "2026-01-15T00:00",
        ["2026-01-31T09:00:00+09:00", "2026-03-31T09:00:00+09:00", "2026-05-31T09:00:00+09:00"],
    ),
    (
        "repeat_day_minus_1_is_every_month_end",
        {"repeat": {"freq": "monthly", "monthDays": [-1], "time": "09:00"}},
        SEOUL,
        "2028-01-15T00:00",
        ["2028-01-31T09:00:00+09:00", "2028-02-29T09:00:00+09:00", "2028-03-31T09:00:00+09:00"],
    ),
    (
        "repeat_day_minus_2_uses_the_rule_engine",
        {"repeat": {"freq": "monthly", "monthDays": [-2], "time": "09:00"}},
        SEOUL,
        "2027-01-15T00:00",
        ["2027-01-30T09:00:00+09:00", "2027-02-27T09:00:00+09:00", "2027-03-30T09:00:00+09:00"],
    ),
    (
        "cron_day_31_skips_short_months",
        {"cron": "0 9 31 * *"},
        SEOUL,
        "2026-01-15T00:00",
        ["2026-01-31T09:00:00+09:00", "2026-03-31T09:00:00+09:00", "2026-05-31T09:00:00+09:00"],
    ),
    (
        "rrule_bymonthday_minus_1_is_every_month_end",
        {"rrule": "FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=9;BYMINUTE=0"},
        SEOUL,
        "2026-01-15T00:00",
        ["2026-01-31T09:00:00+09:00", "2026-02-28T09:00:00+09:00", "2026-03-31T09:00:00+09:00"],
    ),
    (
        "rrule_bymonthday_31_skips_short_months",
        {"rrule": "FREQ=MONTHLY;BYMONTHDAY=31;BYHOUR=9;BYMINUTE=0"},
        SEOUL,
        "2026-03-15T00:00",
        ["2026-03-31T09:00:00+09:00", "2026-05-31T09:00:00+09:00", "2026-07-31T09:00:00+09:00"],
    ),
    (
        "cron_feb_29_skips_2100",
        {"cron": "0 0 29 2 *"},
        SEOUL,
        "2095-01-01T00:00",
        ["2096-02-29T00:00:00+09:00", "2104-02-29T00:00:00+09:00"],
    ),
    (
        "rrule_feb_29_skips_2100",
        {"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=0;BYMINUTE=0;BYSECOND=0"},
        SEOUL,
        "2095-01-01T00:00",
        ["2096-02-29T00:00:00+09:00", "2104-02-29T00:00:00+09:00"],
    ),
    (
        "repeat_day_29_skips_february_2100",
        {"repeat": {"freq": "monthly", "monthDays": [29], "time": "00:00"}},
        SEOUL,
        "2100-01-15T00:00",
        ["2100-01-29T00:00:00+09:00", "2100-03-29T00:00:00+09:00"],
    ),
    # --- every is absolute; a daily local time is not ---
    (
        "ny_every_24h_moves_an_hour_across_spring_forward",
        {"every": "24h", "start": "2026-03-07T09:00"},
        NY,
        "2026-03-06T00:00",
        ["2026-03-07T09:00:00-05:00", "2026-03-08T10:00:00-04:00", "2026-03-09T10:00:00-04:00"],
    ),
    (
        "ny_daily_0900_stays_at_0900_across_spring_forward",
        {"repeat": {"freq": "daily", "time": "09:00"}},
        NY,
        "2026-03-06T12:00",
        ["2026-03-07T09:00:00-05:00", "2026-03-08T09:00:00-04:00", "2026-03-09T09:00:00-04:00"],
    ),
    (
        "berlin_every_24h_moves_an_hour_across_fall_back",
        {"every": "24h", "start": "2026-10-24T09:00"},
        BERLIN,
        "2026-10-23T00:00",
        ["2026-10-24T09:00:00+02:00", "2026-10-25T08:00:00+01:00", "2026-10-26T08:00:00+01:00"],
    ),
]


OVERRIDES: list[Vector] = [
    (
        "cron_gap_next",
        {"cron": "30 2 * * *", "dst": {"gap": "next"}},
        NY,
        "2026-03-07T12:00",
        ["2026-03-08T03:00:00-04:00"],
    ),
    (
        "cron_gap_shift",
        {"cron": "30 2 * * *", "dst": {"gap": "shift"}},
        NY,
        "2026-03-07T12:00",
        ["2026-03-08T03:30:00-04:00"],
    ),
    (
        "cron_gap_skip",
        {"cron": "30 2 * * *", "dst": {"gap": "skip"}},
        NY,
        "2026-03-07T12:00",
        ["2026-03-09T02:30:00-04:00"],
    ),
    (
        "cron_fold_first",
        {"cron": "30 1 * * *", "dst": {"fold": "first"}},
        NY,
        "2026-10-31T12:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        "cron_fold_last",
        {"cron": "30 1 * * *", "dst": {"fold": "last"}},
        NY,
        "2026-10-31T12:00",
        ["2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        "cron_fold_both",
        {"cron": "30 1 * * *", "dst": {"fold": "both"}},
        NY,
        "2026-10-31T12:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        "wildcard_cron_fold_first",
        {"cron": "*/30 * * * *", "dst": {"fold": "first"}},
        NY,
        "2026-11-01T00:45",
        ["2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T02:00:00-05:00"],
    ),
    (
        "wildcard_cron_gap_next",
        {"cron": "*/30 * * * *", "dst": {"gap": "next"}},
        NY,
        "2026-03-08T01:15",
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"],
    ),
    (
        "repeat_gap_skip",
        {"repeat": {"freq": "daily", "time": "02:30"}, "dst": {"gap": "skip"}},
        NY,
        "2026-03-07T12:00",
        ["2026-03-09T02:30:00-04:00"],
    ),
    (
        "repeat_fold_last",
        {"repeat": {"freq": "daily", "time": "01:30"}, "dst": {"fold": "last"}},
        NY,
        "2026-10-31T12:00",
        ["2026-11-01T01:30:00-05:00"],
    ),
    (
        "rrule_gap_next",
        {"rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "dst": {"gap": "next"}},
        NY,
        "2026-03-07T12:00",
        ["2026-03-08T03:00:00-04:00"],
    ),
    (
        "rrule_gap_skip",
        {"rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "dst": {"gap": "skip"}},
        NY,
        "2026-03-07T12:00",
        ["2026-03-09T02:30:00-04:00"],
    ),
    (
        "rrule_fold_both",
        {"rrule": "FREQ=DAILY;BYHOUR=1;BYMINUTE=30", "dst": {"fold": "both"}},
        NY,
        "2026-10-31T12:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00"],
    ),
    (
        "at_gap_shift",
        {"at": "2026-03-08T02:30", "dst": {"gap": "shift"}},
        NY,
        "2026-03-01T00:00",
        ["2026-03-08T03:30:00-04:00"],
    ),
    (
        "at_gap_skip_never_runs",
        {"at": "2026-03-08T02:30", "dst": {"gap": "skip"}},
        NY,
        "2026-03-01T00:00",
        [],
    ),
    (
        "at_fold_last",
        {"at": "2026-11-01T01:30", "dst": {"fold": "last"}},
        NY,
        "2026-10-01T00:00",
        ["2026-11-01T01:30:00-05:00"],
    ),
]
