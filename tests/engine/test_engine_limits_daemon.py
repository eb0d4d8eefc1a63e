"""Task limits through the real daemon: runs due at one instant, with persistence on (the
journal's fsync is the await that let a limited task's runs through together)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.daemon_proc import DaemonProcess

pytestmark = pytest.mark.integration

# Each run appends "<start> <end>" (epoch seconds, from the shell's clock) to its own file.
RECORD = (
    'start=$(date +%s.%N); sleep 0.25; echo "$start $(date +%s.%N)" '
    '> "$OUT/$SCHEDULER_JOB_ID-$SCHEDULER_ATTEMPT"'
)


def spans(folder: Path) -> list[tuple[float, float]]:
    out = []
    for path in folder.iterdir():
        start, end = path.read_text().split()
        out.append((float(start), float(end)))
    return sorted(out)


def peak(runs: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in runs] + [(e, -1) for _, e in runs])
    level = best = 0
    for _, step in events:
        level += step
        best = max(best, level)
    return best


def files_in(folder: Path) -> int:
    return len(list(folder.iterdir()))


async def wait_for_files(folder: Path, count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while files_in(folder) < count and time.monotonic() < deadline:  # noqa: ASYNC110 - files
        await asyncio.sleep(0.05)


def task_config(folder: Path, limits: str) -> str:
    return f"""
[tasks.limited]
kind = "command"
argv = ["sh", "-c", '{RECORD}']
env = {{ OUT = "{folder}" }}
{limits}
"""


async def test_six_runs_due_together_respect_a_concurrency_of_one(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    daemon = DaemonProcess(tmp_path, task_config(out, "concurrency = 1"), fsync="always")
    await daemon.start()
    try:
        at = datetime.fromtimestamp(time.time() + 1.5, UTC).isoformat()
        for _ in range(6):
            status, body, _ = await daemon.request(
                "POST", "/api/jobs", json={"task": "limited", "schedule": {"at": at}}
            )
            assert status == 201, body
        await wait_for_files(out, 6, 10.0)
        runs = spans(out)
        assert len(runs) == 6
        assert peak(runs) == 1, runs
    finally:
        await daemon.stop()


async def test_a_rate_limit_holds_in_every_sliding_window(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    limits = 'rate_limit = "2/1s"'
    daemon = DaemonProcess(tmp_path, task_config(out, limits), fsync="always")
    await daemon.start()
    try:
        for _ in range(6):
            status, body, _ = await daemon.request("POST", "/api/jobs", json={"task": "limited"})
            assert status == 201, body
        await wait_for_files(out, 6, 10.0)
        starts = [start for start, _ in spans(out)]
        assert len(starts) == 6
        for first, third in zip(starts, starts[2:], strict=False):
            # the shell's clock reads a little after the daemon's start: allow 50 ms of jitter
            assert third - first >= 1.0 - 0.05, starts
    finally:
        await daemon.stop()
