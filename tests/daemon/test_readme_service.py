"""The README's "Run as a service" commands work as shown.

Each command in the section is run here with its paths moved under a temporary directory
(``/opt/scheduler`` and ``/etc/scheduler``), except plain ``systemctl``/``journalctl`` lines and
``scheduler status``, which ``tests/cli/test_cli_status.py`` drives against a real daemon. The unit
file itself is checked by ``tests/daemon/test_systemd_unit.py``.
"""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests import ROOT

NOT_RUN_HERE = ("systemctl ", "journalctl ")
COVERED_ELSEWHERE = {"status": "tests/cli/test_cli_status.py"}


def section_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    part = text.split("## Run as a service\n", 1)[1].split("\n## ", 1)[0]
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", part, re.S):
        for raw in block.splitlines():
            line = raw.split("  #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def test_every_command_is_run_here_or_covered(tmp_path: Path) -> None:
    commands = section_commands()
    assert any("pip install" in c for c in commands)
    for command in commands:
        if command.startswith(NOT_RUN_HERE):
            continue
        words = command.split()
        if words[0].endswith("/scheduler") and words[1] in COVERED_ELSEWHERE:
            assert (ROOT / COVERED_ELSEWHERE[words[1]]).exists()


@pytest.mark.timeout(240)
@pytest.mark.integration
def test_the_install_commands_work_as_shown(tmp_path: Path) -> None:
    prefix = {
        "/opt/scheduler": str(tmp_path / "opt" / "scheduler"),
        "/etc/systemd/system": str(tmp_path / "units"),
        "/etc/scheduler": str(tmp_path / "etc" / "scheduler"),
        "/path/to/scheduler": str(ROOT),
    }
    (tmp_path / "units").mkdir()
    script = ["set -euo pipefail"]
    for command in section_commands():
        words = command.split()
        if command.startswith(NOT_RUN_HERE) or (
            words[0].endswith("/scheduler") and words[1] in COVERED_ELSEWHERE
        ):
            continue
        line = command
        for old, new in prefix.items():
            line = line.replace(old, new)
        script.append(line)
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    etc = tmp_path / "etc" / "scheduler"
    assert "ok:" in done.stdout  # scheduler check passed on the installed config
    token = etc / "api_token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert len(token.read_text().strip()) >= 32
    assert (tmp_path / "units" / "scheduler.service").read_text() == (
        ROOT / "systemd" / "scheduler.service"
    ).read_text()
