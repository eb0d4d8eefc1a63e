"""Issue 12's two behaviours the docs lagged behind: job reads refused while the state loads
(``docs/api.md``), and exit 70 for any long-lived task that stops on its own, not only the
engine (``docs/operations.md``). Each check reads the names from the code, so a route or a
task added later shows up here."""

from __future__ import annotations

from scheduler.api.app import _STATE_ROUTES
from scheduler.runtime.library import SNAPSHOT_LOOP
from tests.docs_text import DOCS, text

#: What the log and the docs call the scheduler's long-lived tasks (the daemon's alert sender
#: is named where it is added; see tests/daemon/test_i12_supervision.py).
LONG_LIVED = ("engine", SNAPSHOT_LOOP, "alert sender")


def row(path: str, first_cell: str) -> str:
    [line] = [line for line in text(DOCS / path).splitlines() if line.startswith(first_cell)]
    return line


def test_the_503_row_names_the_job_reads_refused_while_the_state_loads() -> None:
    line = row("api.md", "| 503 |")
    assert "while the state loads" in line
    for prefix in _STATE_ROUTES:
        assert f"`{prefix}" in line, f"docs/api.md's 503 row does not name {prefix}"


def test_the_paragraph_under_the_status_table_says_reads_wait_for_the_state() -> None:
    body = text(DOCS / "api.md")
    assert "read routes answer from the state loaded so far" not in body
    assert "answer 503 `unavailable` with `Retry-After: 1` until its state is loaded" in body


def test_exit_70_names_every_long_lived_task() -> None:
    exits = row("operations.md", "| `scheduler run [-c FILE]` |")
    cell = exits[exits.index("; 70 ") :].split(";")[1]
    troubleshooting = row("operations.md", "| exit 70,")
    for name in LONG_LIVED:
        assert name in cell, f"operations.md's exit 70 does not name the {name}"
        assert f"the {name}" in troubleshooting, f"the troubleshooting row lacks the {name}"
