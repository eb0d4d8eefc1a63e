"""``scheduler jobs`` output without a daemon: tables that fit, cells made safe, times,
durations, the job card, the run table, the explanation; and docs/cli.md against the parser.

The command driven against the real daemon is in ``test_cli_jobs.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from scheduler.cli.exits import EXIT_CODES
from scheduler.cli.jobs_view import explanation, job_card, job_list, run_table
from scheduler.cli.tables import clip, safe, short_time, span, table, width
from tests.docs_text import DOCS, section, ticked

LONG_NAME = "nightly-" + "x" * 192  # 200 characters
KOREAN = "야간-백업-작업-" * 6


def job(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "18a4c1e9c1800000",
        "workflowName": "nightly-backup",
        "status": "pending",
        "scheduledTime": "2030-01-07T03:00:00.000+09:00",
        "task": "backup",
        "timezone": "Asia/Seoul",
        "type": "recurring",
        "schedule": {"cron": "0 3 * * *"},
        "attempt": 0,
        "maxRetries": 3,
    }
    return doc | fields


# --- cells and tables --------------------------------------------------------------------------


def test_a_200_character_name_is_cut_with_an_ellipsis_so_the_table_fits_80_columns() -> None:
    page = {"items": [job(), job(workflowName=LONG_NAME)], "total": 2, "page": 1, "limit": 20}
    lines = job_list(page, 80).splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATUS", "SCHEDULED", "TASK"]
    assert all(width(line) <= 80 for line in lines), lines
    assert max(width(line) for line in lines) == 80  # the name takes what is left
    assert "nightly-xxx" in lines[2]
    assert "…" in lines[2]
    assert lines[2].split()[0] == "18a4c1e9c1800000"
    assert lines[2].split()[-3:] == ["2030-01-07", "03:00", "backup"]
    assert lines[1].split()[1] == "nightly-backup"  # short names are not cut
    assert all(line == line.rstrip() for line in lines)


def test_wide_characters_count_two_columns() -> None:
    assert width("야간") == 4
    assert width("e\u0301") == 1  # a combining accent takes no column
    lines = table(["NAME", "X"], [[KOREAN, "y"]], columns=30, flexible=[0])
    assert width(lines[1]) <= 30
    assert lines[1].split()[-1] == "y"
    assert clip("야간백업", 5) == "야간…"


def test_control_characters_cannot_reach_the_terminal() -> None:
    assert safe("a\x1b[2Jb") == "a\ufffd[2Jb"
    assert safe("line one\r\nline two\tend") == "line one line two end"
    assert safe("evil\u202etxt.exe") == "evil\ufffdtxt.exe"
    assert safe(None) == ""
    lines = table(["NAME"], [["bad\x07name\nhere"]], columns=80, flexible=[0])
    assert lines[1] == "bad\ufffdname here"


def test_a_page_that_is_not_the_last_says_how_to_get_the_next() -> None:
    page = {"items": [job()] * 3, "total": 8, "page": 2, "limit": 3}
    assert job_list(page, 80).splitlines()[-1] == "jobs 4-6 of 8; --page 3 for more"
    assert job_list({"items": [], "total": 0, "page": 1, "limit": 20}, 80) == "no jobs\n"


def test_times_are_the_jobs_own_short_and_long() -> None:
    assert short_time("2030-01-07T03:00:59.999+09:00") == "2030-01-07 03:00"
    assert short_time(None) == "-"
    card = job_card(job(createdAt="2030-01-06T21:15:02.250+09:00"))
    assert "Created       2030-01-06 21:15:02+09:00" in card


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.254, "0.25 s"), (12.46, "12.5 s"), (200, "3 min 20 s"), (7500, "2 h 5 min"), (3600, "1 h")],
)
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert span(seconds) == text


def test_show_is_label_value_lines_with_the_pause_and_progress() -> None:
    doc = job(
        status="paused",
        pausedUntil="2030-01-08T09:00:00.000+09:00",
        pauseReason="disk swap",
        progress={"percent": 42.7, "message": "copying"},
        payload={"team": "ops"},
        error="exit code 1\nrsync: closed",
    )
    lines = job_card(doc).splitlines()
    assert lines[0] == "ID            18a4c1e9c1800000"
    assert "Status        paused until 2030-01-08 09:00:00+09:00 (disk swap)" in lines
    assert "Progress      42%  copying" in lines
    assert "Schedule      cron 0 3 * * *" in lines
    assert 'Payload       {"team":"ops"}' in lines
    assert "Error         exit code 1 rsync: closed" in lines
    assert "Attempt       0 (retried up to 3 times)" in lines


def test_runs_are_a_table_with_the_error_or_reason_cut_to_fit() -> None:
    runs = {
        "items": [
            {
                "scheduledTime": "2030-01-07T03:00:00.000+09:00",
                "attempt": 2,
                "outcome": "error",
                "duration": 2.049,
                "error": "exit code 1: " + "e" * 200,
            },
            {"scheduledTime": "2030-01-06T03:00:00.000+09:00", "attempt": 1, "outcome": "missed",
             "duration": None, "reason": "the daemon was down"},
        ],
        "total": 2,
    }  # fmt: skip
    lines = run_table(runs, 80).splitlines()
    assert lines[0].split() == ["SCHEDULED", "ATTEMPT", "OUTCOME", "TOOK", "NOTE"]
    assert lines[1].split()[:6] == ["2030-01-07", "03:00", "2", "error", "2.05", "s"]
    assert width(lines[1]) == 80
    assert lines[1].endswith("…")
    assert lines[2].split()[4:] == ["-", "the", "daemon", "was", "down"]
    assert run_table({"items": [], "total": 0}, 80) == "no runs kept yet\n"


def test_explain_prints_the_summary_times_and_each_reason_code_and_message() -> None:
    doc = {
        "jobId": "18a4c1e9c1800000",
        "status": "paused",
        "summary": "Paused by ops until 2030-01-08 09:00.",
        "lastExpected": "2030-01-07T03:00:00.000+09:00",
        "nextRun": None,
        "timezone": "Asia/Seoul",
        "reasons": [
            {"code": "paused", "message": "paused by ops", "details": {}},
            {"code": "maintenance", "message": "window backup-window until 04:00", "details": {}},
        ],
    }
    assert explanation(doc).splitlines() == [
        "Paused by ops until 2030-01-08 09:00.",
        "Status         paused",
        "Last expected  2030-01-07 03:00:00+09:00",
        "Next run       -",
        "Time zone      Asia/Seoul",
        "Reasons",
        "  paused       paused by ops",
        "  maintenance  window backup-window until 04:00",
    ]
    assert "Reasons        none" in explanation(doc | {"reasons": []})


# --- docs/cli.md ------------------------------------------------------------------------------

CLI_DOC = DOCS / "cli.md"


def test_the_docs_list_every_subcommand_and_exit_code() -> None:
    listed = {
        match[1] for match in re.finditer(r"^\| `scheduler jobs (\w+)", CLI_DOC.read_text(), re.M)
    }
    assert listed == {"list", "show", "runs", "explain", "run", "pause", "resume", "cancel",
                      "retry", "delete"}  # fmt: skip
    table_ = section(CLI_DOC, "## ", "Exit codes")
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", table_, re.M)
    assert [int(code) for code, _ in rows] == list(EXIT_CODES)
    options = ticked(section(CLI_DOC, "## ", "Which daemon"))
    assert {"-c FILE", "--url URL", "--token-file FILE", "--json"} <= options
