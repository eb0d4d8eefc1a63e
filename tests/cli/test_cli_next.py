"""``scheduler next SPEC [--tz ZONE] [--after TIME] [-n N] [--json]``."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.cli import next as preview
from scheduler.cli.main import main


def run_next(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["next", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_it_prints_a_json_array_of_instants_with_the_zones_offset(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_next(
        capsys,
        "0 9 * * 1-5",
        "--tz",
        "America/New_York",
        "--after",
        "2026-03-06T10:00",
        "-n",
        "3",
        "--json",
    )
    assert (code, err) == (0, "")
    assert json.loads(out) == [
        "2026-03-09T09:00:00-04:00",
        "2026-03-10T09:00:00-04:00",
        "2026-03-11T09:00:00-04:00",
    ]


def test_without_json_it_prints_one_line_per_run_with_local_and_utc_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_next(
        capsys, "30 2 * * *", "--tz", "America/New_York", "--after", "2026-03-07T12:00", "-n", "2"
    )
    assert code == 0
    assert out.splitlines() == [
        "Sun 2026-03-08 03:00:00 -04:00 (EDT)   2026-03-08 07:00:00 UTC",
        "Mon 2026-03-09 02:30:00 -04:00 (EDT)   2026-03-09 06:30:00 UTC",
    ]


def test_the_default_zone_is_asia_seoul(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_next(capsys, "@daily", "--after", "2026-01-01T12:00", "-n", "1", "--json")
    assert json.loads(out) == ["2026-01-02T00:00:00+09:00"]


def test_time_with_an_offset_is_that_instant(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_next(capsys, "@hourly", "--after", "2026-01-01T12:30:00Z", "-n", "1", "--json")
    assert json.loads(out) == ["2026-01-01T22:00:00+09:00"]


def test_time_in_the_second_half_of_a_fold_starts_there(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_next(
        capsys,
        "*/30 * * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2026-11-01T01:15-05:00",
        "-n",
        "2",
        "--json",
    )
    assert json.loads(out) == ["2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00"]


def test_time_defaults_to_now(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Frozen:
        def time(self) -> float:
            return datetime(2026, 5, 5, 0, 10, tzinfo=UTC).timestamp()

    monkeypatch.setattr(preview, "SystemClock", Frozen)
    _, out, _ = run_next(capsys, "@every 1h", "--tz", "UTC", "-n", "2", "--json")
    assert json.loads(out) == ["2026-05-05T01:10:00+00:00", "2026-05-05T02:10:00+00:00"]


@pytest.mark.parametrize(
    "spec",
    [
        "DTSTART:20260101T090000\nRRULE:FREQ=MONTHLY;BYDAY=-1FR;COUNT=3",
        "DTSTART:20260101T090000 RRULE:FREQ=MONTHLY;BYDAY=-1FR;COUNT=3",
        "DTSTART:20260101T090000 FREQ=MONTHLY;BYDAY=-1FR;COUNT=3",
    ],
)
def test_an_rrule_that_ends_prints_fewer_than_n(
    spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_next(capsys, spec, "--after", "2026-01-01T00:00", "-n", "10", "--json")
    assert json.loads(out) == [
        "2026-01-30T09:00:00+09:00",
        "2026-02-27T09:00:00+09:00",
        "2026-03-27T09:00:00+09:00",
    ]


def test_the_readable_listing_says_when_the_rule_ends(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_next(capsys, "FREQ=DAILY;COUNT=2", "--after", "2026-01-01T00:00", "-n", "5")
    assert len(out.splitlines()) == 3
    assert out.splitlines()[-1] == "(no more runs)"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            '{"repeat": {"freq": "weekly", "weekdays": ["mon"], "time": "09:00"}}',
            ["2026-01-05T09:00:00+09:00", "2026-01-12T09:00:00+09:00"],
        ),
        ('{"at": "2026-12-24T09:00"}', ["2026-12-24T09:00:00+09:00"]),
        (
            '{"cron": "0 9 * * *", "timezone": "Europe/Berlin"}',
            ["2026-01-01T09:00:00+01:00", "2026-01-02T09:00:00+01:00"],
        ),
        ('{"delay": "15m"}', ["2026-01-01T00:15:00+09:00"]),
        ("{}", ["2026-01-01T00:00:00+09:00"]),
        ("@every 90m", ["2026-01-01T01:30:00+09:00", "2026-01-01T03:00:00+09:00"]),
    ],
)
def test_spec_may_be_a_json_schedule_object_or_every(
    spec: str, expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_next(capsys, spec, "--after", "2026-01-01T00:00", "-n", "2", "--json")
    assert json.loads(out) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0 0 30 2 *"], "schedule.cron: day-of-month '30' never occurs in month '2'"),
        (["61 * * * *"], "schedule.cron: bad minute field '61'"),
        (["FREQ=DAILY;BYDAY=XX"], "schedule.rrule: bad BYDAY 'XX'"),
        (
            ['{"repeat": {"freq": "weekly", "weekdays": ["mon", "xyz"]}}'],
            "schedule.repeat.weekdays[1]",
        ),
        (['{"cron": '], "not valid JSON"),
        (["[1, 2]"], "schedule.cron"),
        (["@daily", "--tz", "Mars/Olympus"], "--tz: unknown IANA time zone 'Mars/Olympus'"),
        (["@daily", "--after", "yesterday"], "--after: expected an ISO 8601 date-time"),
        (["@daily", "-n", "-1"], "-n: expected 0.."),
    ],
)
def test_bad_input_prints_what_is_wrong_and_exits_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_next(capsys, *args)
    assert code == 2
    assert out == ""
    assert message in err


@pytest.mark.integration
def test_the_installed_command_works() -> None:
    command = Path(sys.executable).parent / "scheduler"
    result = subprocess.run(
        [
            str(command),
            "next",
            "*/30 * * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-11-01T00:45",
            "-n",
            "4",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:30:00-05:00",
    ]
    bad = subprocess.run(
        [str(command), "next", "0 0 30 2 *"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2
    assert "never occurs" in bad.stderr


def test_an_rrule_without_dtstart_lists_its_runs_from_the_minute_of_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_next(
        capsys, "FREQ=MINUTELY;COUNT=3", "--tz", "UTC", "--after", "2026-01-01T10:00:20", "--json"
    )
    assert code == 0
    assert json.loads(out) == [
        "2026-01-01T10:00:00+00:00",
        "2026-01-01T10:01:00+00:00",
        "2026-01-01T10:02:00+00:00",
    ]


def test_a_cron_rule_with_a_no_break_space_is_refused_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_next(capsys, "0\u00a09 * * *")
    assert (code, out) == (2, "")
    assert "U+00A0 (NO-BREAK SPACE) is not a field separator" in err


def test_a_rule_that_matches_once_in_four_years_is_listed_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=23;BYMINUTE=59;BYSECOND=59"
    code, out, _ = run_next(
        capsys, spec, "--tz", "UTC", "--after", "2026-01-01", "-n", "3", "--json"
    )
    assert code == 0
    assert json.loads(out) == [
        "2028-02-29T23:59:59+00:00",
        "2032-02-29T23:59:59+00:00",
        "2036-02-29T23:59:59+00:00",
    ]


@pytest.mark.parametrize("after", ["0001-01-01T00:00", "9999-12-31T23:00"])
def test_an_after_time_out_of_range_is_refused_naming_it(
    capsys: pytest.CaptureFixture[str], after: str
) -> None:
    code, out, err = run_next(capsys, "0 9 * * *", "--after", after)
    assert code == 2
    assert out == ""
    assert "--after" in err
    assert "Traceback" not in err
