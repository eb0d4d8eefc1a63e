"""What the durability tests share: bursts of creates against the real daemon, reading back
what it holds, and damage done to a state directory on purpose.

``Burst`` and ``all_jobs`` drive the kill -9 tests (test_durability.py, test_crash_points.py);
``files_of`` is the proof that a refused start or a read-only check touched nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from scheduler.persistence.snapshot import SNAPSHOT_VERSION
from tests.daemon_proc import DaemonProcess

#: Clients of one burst: as many as the daemon's tests of concurrent creates use.
CLIENTS = 16
#: Jobs that never come due during a test: what is stored for them does not change by itself.
LATER = {"delay": "1d"}
NOOP_TASK = """
[tasks.noop]
kind = "command"
argv = ["true"]
"""
#: The named steps of the write path (scheduler/persistence/faults.py).
CRASH_POINTS = [
    "journal.before_write",
    "journal.after_write",
    "journal.after_fsync",
    "journal.rotate",
    "snapshot.after_tmp_write",
    "snapshot.after_rename",
    "snapshot.before_cleanup",
]
#: The kinds of damage ``damage_snapshot`` does.
DAMAGE = ["body-bit", "truncated", "magic", "future-version", "empty"]


@dataclass
class Burst:
    """``CLIENTS`` clients creating jobs as fast as the daemon answers, until it dies or stops.

    Every create carries a unique marker (payload and ``uniqueKey``) and the burst's label as
    its ``workflowId``, so one listing finds a burst's jobs. ``sent`` holds the marker of every
    create put on the wire (answered or not), ``acked`` the id answered with 201 by marker.
    Any other answer is recorded in ``refused``: a crash may only cut connections.
    """

    url: str
    label: str
    sent: set[str] = field(default_factory=set)
    acked: dict[str, str] = field(default_factory=dict)
    refused: list[tuple[int, Any]] = field(default_factory=list)
    found: set[str] = field(default_factory=set)  # markers present after the restart

    async def run(self, stop: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(limit=CLIENTS)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            await asyncio.gather(*(self._client(http, n, stop) for n in range(CLIENTS)))

    async def _client(self, http: aiohttp.ClientSession, client: int, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            marker = f"{self.label}-{client}-{n}"
            n += 1
            self.sent.add(marker)
            body = {"task": "noop", "schedule": LATER, "payload": {"m": marker},
                    "workflowId": self.label, "uniqueKey": marker}  # fmt: skip
            try:
                async with http.post(self.url + "/api/jobs", json=body) as resp:
                    answer = await resp.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError):
                return  # the daemon died: this create may or may not have been written
            if resp.status != 201:
                self.refused.append((resp.status, answer))
                return
            self.acked[marker] = answer["id"]


async def all_jobs(daemon: DaemonProcess, query: str = "") -> dict[str, dict[str, Any]]:
    """Every job the daemon holds (matching ``query``), by id, read page by page."""
    jobs: dict[str, dict[str, Any]] = {}
    page = 1
    while True:
        status, body, _ = await daemon.request("GET", f"/api/jobs?limit=500&page={page}{query}")
        assert status == 200, body
        jobs.update((job["id"], job) for job in body["items"])
        if page * 500 >= body["total"]:
            assert len(jobs) == body["total"]
            return jobs
        page += 1


def by_marker(jobs: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {job["payload"]["m"]: job_id for job_id, job in jobs.items()}


async def create_jobs(daemon: DaemonProcess, n: int, label: str = "j") -> dict[str, str]:
    """``n`` jobs that never come due, with markers ``label0``...; their ids by marker."""
    acked = {}
    for i in range(n):
        status, job, _ = await daemon.request(
            "POST",
            "/api/jobs",
            json={"task": "noop", "schedule": LATER, "payload": {"m": f"{label}{i}"}},
        )
        assert status == 201, job
        acked[f"{label}{i}"] = job["id"]
    return acked


async def job_status(daemon: DaemonProcess, job_id: str) -> dict[str, Any]:
    status, job, _ = await daemon.request("GET", f"/api/jobs/{job_id}")
    assert status == 200, job
    return dict(job)


def files_of(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file's bytes, mtime and mode: proof that a refused start touched nothing."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
        for p in sorted(directory.iterdir())
    }


def damage_snapshot(data: bytes, how: str) -> bytes:
    """A snapshot file's bytes with one kind of damage (see :data:`DAMAGE`)."""
    if how == "body-bit":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x04
        return bytes(flipped)
    if how == "truncated":
        return data[: len(data) - 10]
    if how == "magic":
        return b"XCHEDSNP" + data[8:]
    if how == "future-version":
        return data[:8] + (SNAPSHOT_VERSION + 1).to_bytes(4, "little") + data[12:]
    assert how == "empty", how
    return b""
