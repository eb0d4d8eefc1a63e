"""A full disk in the real daemon: writes fail with 507, reads and running jobs go on, and writes
work again once space is back, without a restart.

How the disk is "filled": RLIMIT_FSIZE, set on the running daemon from outside with
``prlimit(2)`` (``resource.prlimit``; no root needed, no test hook in the daemon). A write past
the soft limit fails with EFBIG, exactly as the journal sees ENOSPC on a full disk (both are
"full" to it; the daemon ignores SIGXFSZ so the limit cannot kill it). The hard limit stays
unlimited, so lifting the soft limit again is the "space was freed" step. A small tmpfs would
need root and a mount; this works for any user and on any file system.
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_proc import DaemonProcess, Daemons
from tests.persistence.harness import LATER, NOOP_TASK, all_jobs, by_marker, job_status

pytestmark = pytest.mark.integration

UNLIMITED = resource.RLIM_INFINITY


def limit_file_size(daemon: DaemonProcess, soft: int) -> None:
    assert daemon.proc is not None
    resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (soft, UNLIMITED))


def segment(daemon: DaemonProcess) -> Path:
    return max(daemon.state.glob("journal-*.log"))


async def create(daemon: DaemonProcess, marker: str) -> tuple[int, dict[str, Any]]:
    status, body, _ = await daemon.request(
        "POST", "/api/jobs", json={"task": "noop", "schedule": LATER, "payload": {"m": marker}}
    )
    return status, body


async def test_a_full_disk_answers_507_keeps_reads_and_runs_going_and_recovers_without_restart(
    tmp_path: Path, daemons: Daemons
) -> None:
    daemon = DaemonProcess(
        tmp_path,
        NOOP_TASK + '\n[tasks.brief]\nkind = "command"\nargv = ["sleep", "1"]\n',
        fsync="always",
    )
    daemon.configure("persistence", 'snapshot_interval = "200ms"')  # snapshots fail too
    daemons.append(daemon)
    await daemon.start()
    status, before = await create(daemon, "before")
    assert status == 201
    _, running, _ = await daemon.request("POST", "/api/jobs", json={"task": "brief"})
    await daemon.job_reaching(str(running["id"]), "running")

    # Room for less than one more record: the next append is a short write, cut away again.
    size = segment(daemon).stat().st_size
    limit_file_size(daemon, size + 10)
    status, body = await create(daemon, "refused")
    assert status == 507, body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert "journal" in str(body["error"]["message"])
    assert segment(daemon).stat().st_size == size  # the partial record was truncated away
    status, _ = await create(daemon, "refused-again")
    assert status == 507

    # Reads keep working, and the job that was running finishes.
    assert (await job_status(daemon, str(before["id"])))["status"] == "pending"
    status, card, _ = await daemon.request("GET", "/api/scheduler")
    assert status == 200
    assert card["isRunning"] is True
    await daemon.job_reaching(str(running["id"]), "completed")
    status, _, _ = await daemon.request("GET", "/healthz")
    assert status == 200
    _, card, _ = await daemon.request("GET", "/api/scheduler")
    assert (card["runningJobs"], card["completedJobs"]) == (0, 1)

    limit_file_size(daemon, UNLIMITED)  # space is back
    status, after = await create(daemon, "after")
    assert status == 201, after

    await daemon.kill()
    await daemon.start()
    found = by_marker({k: v for k, v in (await all_jobs(daemon)).items() if v["task"] == "noop"})
    assert found == {"before": before["id"], "after": after["id"]}
    assert not list(daemon.state.glob("*.broken*"))  # no torn record was left behind
