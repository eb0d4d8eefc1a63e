"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_block(section: str) -> str:
    text = (ROOT / "README.md").read_text()
    part = text.split(f"## {section}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", part, re.S)
    assert match, f"no python example under {section!r}"
    return match.group(1)


def test_the_library_example_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(python_block("Library API"))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "var").exists()  # persistence off, as the example says


def test_the_readme_starts_with_the_two_commands() -> None:
    first_block = (ROOT / "README.md").read_text().split("```")[1]
    assert "make run" in first_block
    assert "make test" in first_block
