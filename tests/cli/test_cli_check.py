"""``scheduler check``: ok and each static job's next 5 runs, or one line per problem and 78."""

from __future__ import annotations

import itertools
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from scheduler.cli.main import main
from tests import ROOT

BROKEN = """\
[server]
port = 0
[tasks.backup]
kind = "command"
argv = "tar czf /tmp/b.tgz /etc"
[[jobs]]
name = "nightly"
task = "backup"
cron = "0 3 * * *"
priority = "urgent"
"""
BROKEN_LINES = [
    "{path}: server.port: expected an integer from 1 to 65535, got 0",
    "{path}: tasks.backup.argv: expected a non-empty list of strings,"
    " got 'tar czf /tmp/b.tgz /etc'",
    "{path}: jobs[0].priority: expected one of critical, high, normal, low, got 'urgent'",
]


def runs_by_job(output: str) -> dict[str, list[datetime]]:
    """Parse check's output: a line per job, then its runs indented."""
    jobs: dict[str, list[datetime]] = {}
    for line in output.splitlines()[1:]:
        if line.startswith("  "):
            jobs[list(jobs)[-1]].append(datetime.fromisoformat(line.strip()))
        else:
            jobs[line.split(":")[0]] = []
    return jobs


def test_the_shipped_config_checks_ok_with_five_runs_per_job(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = ROOT / "config.toml"
    assert main(["check", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"ok: {path}"
    jobs = runs_by_job(out)
    assert list(jobs) == ["hello-every-5-minutes", "weekday-morning-hello"]
    every, weekday = jobs.values()
    assert len(every) == len(weekday) == 5
    assert all(b - a == timedelta(minutes=5) for a, b in itertools.pairwise(every))
    for run in weekday:
        assert run.utcoffset() == timedelta(hours=9)  # local Asia/Seoul time with its offset
        assert (run.hour, run.minute) == (9, 0)
        assert run.isoweekday() <= 5


def test_a_job_that_will_not_run_again_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "past.toml"
    path.write_text(
        '[tasks.t]\nkind = "command"\nargv = ["true"]\n'
        '[[jobs]]\nname = "once"\ntask = "t"\nat = "2001-01-01T09:00"\n'
    )
    assert main(["check", "-c", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "once: at 2001-01-01T09:00:00 in Asia/Seoul, task t",
        "  (no upcoming runs)",
    ]


def test_a_broken_file_prints_one_line_per_problem_and_exits_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    assert main(["check", "-c", str(path), "--state", str(tmp_path)]) == 78
    assert capsys.readouterr().out.splitlines() == [line.format(path=path) for line in BROKEN_LINES]


def test_a_toml_syntax_error_prints_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "syntax.toml"
    path.write_text("[server]\nport = = 1\n")
    assert main(["check", "-c", str(path)]) == 78
    assert capsys.readouterr().out == f"{path}:2:8: Invalid value\n"


def test_a_missing_file_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nope.toml"
    assert main(["check", "-c", str(path)]) == 78
    assert capsys.readouterr().out == f"{path}: cannot read the file: No such file or directory\n"


@pytest.mark.integration
def test_the_installed_command_exits_78_on_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    script = Path(sys.executable).parent / "scheduler"
    done = subprocess.run(
        [str(script), "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 78
    assert done.stdout.splitlines() == [line.format(path=path) for line in BROKEN_LINES]
    assert done.stderr == ""
