"""``scheduler check --state DIR`` works on its own, as the README shows it: no ``-c`` needed
(there may be no /etc/scheduler/config.toml at all), and it never writes to the directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.cli import check
from scheduler.cli import main as cli
from scheduler.cli.main import main
from scheduler.errors import PersistenceError
from scheduler.model import Job, PutJob
from scheduler.persistence.codec import RecordCodec
from scheduler.persistence.statelock import LOCK_NAME
from tests import ROOT
from tests.persistence.harness import files_of


def healthy_state(directory: Path) -> Path:
    directory.mkdir(mode=0o700)
    segment = directory / "journal-00000000000000000001.log"
    segment.write_bytes(RecordCodec().encode(1, PutJob(Job(id=1, task="t", timezone="UTC"))))
    return segment


def test_state_alone_checks_only_the_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "DEFAULT_CONFIG", str(tmp_path / "no-such-config.toml"))
    state = tmp_path / "var"
    healthy_state(state)
    before = files_of(state)
    assert main(["check", "--state", str(state)]) == 0
    assert capsys.readouterr().out == f"ok: state {state}\n"
    assert files_of(state) == before  # no lock file created, nothing written


def test_state_alone_reports_damage_with_65(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "var"
    segment = healthy_state(state)
    good = segment.read_bytes()
    segment.write_bytes(good[:10] + bytes([good[10] ^ 1]) + good[11:] + good)
    assert main(["check", "--state", str(state)]) == 65
    out = capsys.readouterr().out
    assert out.startswith(f"{segment}: byte 0:")
    assert "ok:" not in out


def test_a_state_path_that_is_a_file_is_78_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "var"
    path.write_text("not a directory")
    assert main(["check", "--state", str(path)]) == 78
    assert capsys.readouterr().out == f"{path}: state directory is not a directory\n"


def test_without_either_option_the_default_config_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "etc" / "config.toml"
    monkeypatch.setattr(cli, "DEFAULT_CONFIG", str(missing))
    assert main(["check"]) == 78
    assert (
        capsys.readouterr().out == f"{missing}: cannot read the file: No such file or directory\n"
    )


def test_config_and_state_together_check_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "var"
    healthy_state(state)
    config = ROOT / "config.toml"
    assert main(["check", "-c", str(config), "--state", str(state)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"ok: {config}"
    assert lines[-1] == f"ok: state {state}"


def test_a_lock_file_left_by_a_dead_daemon_does_not_count_as_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "var"
    healthy_state(state)
    (state / LOCK_NAME).write_text("4242\n")
    assert main(["check", "--state", str(state)]) == 0
    assert capsys.readouterr().out == f"ok: state {state}\n"


@pytest.mark.integration
def test_the_installed_command_checks_a_state_dir_without_c(tmp_path: Path) -> None:
    state = tmp_path / "var"
    healthy_state(state)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "scheduler"), "check", "--state", str(state)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"ok: state {state}\n", "")


@pytest.mark.parametrize(("in_use", "calls", "code"), [(True, 2, 0), (False, 1, 78)])
def test_on_a_live_directory_an_error_is_confirmed_by_a_second_read(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    in_use: bool,
    calls: int,
    code: int,
) -> None:
    """A live scheduler's snapshot cleanup may remove a file between check's listing and its
    read: a read error on a directory in use is read again before it is reported."""
    answers = [PersistenceError(f"{tmp_path}: cannot read state: vanished"), None]
    seen: list[Path] = []

    def state_error(directory: Path) -> PersistenceError | None:
        seen.append(directory)
        return answers[len(seen) - 1]

    monkeypatch.setattr(check, "holder", lambda directory: (in_use, 4242 if in_use else None))
    monkeypatch.setattr(check, "state_error", state_error)
    assert main(["check", "--state", str(tmp_path)]) == code
    assert len(seen) == calls
    out = capsys.readouterr().out
    assert ("in use by a running scheduler (pid 4242)" in out) is in_use
