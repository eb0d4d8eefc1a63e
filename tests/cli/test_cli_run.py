"""``scheduler run`` refuses a bad config the way ``check`` reports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs python -m scheduler


def run_with(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.toml"
    config.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "scheduler", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_run_with_a_bad_config_exits_78_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    done = run_with(tmp_path, '[scheduler]\nmax_concurrency = 0\ntimezone = "Mars/Olympus"\n')
    assert done.returncode == 78
    lines = done.stderr.strip().splitlines()
    assert any("scheduler.max_concurrency" in line for line in lines), lines
    assert any("scheduler.timezone" in line for line in lines), lines
    assert all(str(config) in line or "config.toml" in line for line in lines), lines


def test_run_with_a_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    done = run_with(tmp_path, "[server]\nport = = 8080\n")
    assert done.returncode == 78
    assert ":2:" in done.stderr
