"""``[[maintenance]]`` in config.toml: what loads, every problem named by its key path, what
``scheduler check`` shows and refuses, and what a reload says it changed."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from msgspec.structs import replace

from scheduler.cli.main import main
from scheduler.config import load_config
from scheduler.config.reload import summarize
from scheduler.maintenance import WindowSpec
from tests.config.files import problems_of, write

TASKS = """\
[scheduler]
timezone = "America/New_York"
[tasks.report]
kind = "command"
argv = ["true"]
[tasks.email]
kind = "command"
argv = ["true"]
"""


def test_windows_load_with_the_scheduler_zone_as_their_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        TASKS
        + """
[[maintenance]]
name = "backup-window"
cron = "0 2 * * *"
duration = "1h"
timezone = "Asia/Seoul"
tasks = ["report"]

[[maintenance]]
name = "sunday"
rrule = "FREQ=WEEKLY;BYDAY=SU;BYHOUR=3;BYMINUTE=0"
duration = "90m"
""",
    )
    config = load_config(path)
    assert config.maintenance == (
        WindowSpec(
            name="backup-window",
            cron="0 2 * * *",
            duration=3600.0,
            timezone="Asia/Seoul",
            tasks=("report",),
        ),
        WindowSpec(
            name="sunday",
            rrule="FREQ=WEEKLY;BYDAY=SU;BYHOUR=3;BYMINUTE=0",
            duration=5400.0,
            timezone="America/New_York",
        ),
    )


BAD = (
    TASKS
    + """
[[maintenance]]
name = "a"
cron = "0 2 * * *"
rrule = "FREQ=DAILY"
duration = "1h"

[[maintenance]]
name = "a"
cron = "0 3 * * *"
duration = "0s"

[[maintenance]]
cron = "61 3 * * *"
timezone = "Mars/Olympus"
tasks = ["reprot"]
durations = "1h"

[[maintenance]]
name = "empty"
duration = "1h"
tasks = []

[[maintenance]]
name = "never"
cron = "0 0 30 2 *"
duration = "1h"
"""
)


def test_every_problem_is_one_line_naming_its_key(tmp_path: Path) -> None:
    lines = problems_of(tmp_path, BAD)
    assert lines == [
        "cfg.toml: maintenance[0]: expected exactly one of cron, rrule (when it opens),"
        " got cron and rrule",
        "cfg.toml: maintenance[1].duration: expected a positive duration, got '0s'",
        "cfg.toml: maintenance[1].name: expected a unique name (maintenance[0] has it too),"
        " got 'a'",
        "cfg.toml: maintenance[2].timezone: unknown IANA time zone 'Mars/Olympus'",
        "cfg.toml: maintenance[2].durations: unknown key; did you mean 'duration'?",
        "cfg.toml: maintenance[2].name: expected a unique name; every window needs one",
        "cfg.toml: maintenance[2].duration: expected a duration such as '1h'; every window"
        " needs one",
        "cfg.toml: maintenance[2].tasks[0]: expected a task defined in [tasks]"
        " (known: email, report), got 'reprot'",
        "cfg.toml: maintenance[3].tasks: expected a non-empty list of strings, got an array",
        "cfg.toml: maintenance[3]: expected exactly one of cron, rrule (when it opens),"
        " got neither",
        "cfg.toml: maintenance[4].cron: day-of-month '30' never occurs in month '2'",
    ]


def test_maintenance_must_be_an_array_of_tables(tmp_path: Path) -> None:
    lines = problems_of(tmp_path, 'maintenance = "nightly"\n' + TASKS)
    assert lines == [
        "cfg.toml: maintenance: expected an array of tables ([[maintenance]]), got 'nightly'"
    ]


WINDOWED = (
    TASKS
    + """
[[maintenance]]
name = "backup-window"
cron = "0 2 * * *"
duration = "1h"
timezone = "Asia/Seoul"
tasks = ["report"]
"""
)


def test_check_lists_each_window_with_its_next_five_openings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, WINDOWED)
    assert main(["check", "-c", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"ok: {path}"
    assert lines[1] == ("maintenance backup-window: cron '0 2 * * *' for 1h in Asia/Seoul, report")
    spans = [line.strip().split(" to ") for line in lines[2:]]
    assert len(spans) == 5
    for start, end in spans:
        opens, closes = datetime.fromisoformat(start), datetime.fromisoformat(end)
        assert (opens.hour, opens.minute, opens.utcoffset()) == (2, 0, timedelta(hours=9))
        assert closes - opens == timedelta(hours=1)


def test_check_refuses_a_window_naming_an_unknown_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, WINDOWED.replace('tasks = ["report"]', 'tasks = ["reports"]'))
    assert main(["check", "-c", str(path)]) == 78
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: maintenance[0].tasks[0]: expected a task defined in [tasks]"
        " (known: email, report), got 'reports'"
    ]


def test_a_reload_names_the_windows_it_adds_changes_and_removes(tmp_path: Path) -> None:
    old = load_config(write(tmp_path, WINDOWED))
    longer = replace(old.maintenance[0], duration=7200.0)
    added = WindowSpec(name="extra", cron="0 5 * * *", duration=60.0, timezone="UTC")
    assert summarize(old, replace(old, maintenance=(longer, added))) == (
        "maintenance added: extra; maintenance changed: backup-window"
    )
    assert summarize(old, replace(old, maintenance=())) == "maintenance removed: backup-window"
