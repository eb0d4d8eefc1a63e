"""A crash at each named step of the write path, in the real daemon, while clients create jobs.

``SCHEDULER_CRASH_AT=<point>`` makes the daemon SIGKILL itself the first time it reaches that
point (scheduler/persistence/faults.py). Each test builds some history (a snapshot generation
and journal records), then runs the daemon with the crash point and a burst of 16 clients until
it dies, then restarts it: everything acknowledged is there and nothing that was never sent;
and the recovered directory is fit to run on (a later snapshot and restart work too).
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import pytest

from scheduler.persistence.faults import ENV_VAR
from tests import ROOT
from tests.daemon_proc import DaemonProcess, Daemons
from tests.persistence.harness import (
    CRASH_POINTS,
    NOOP_TASK,
    Burst,
    all_jobs,
    by_marker,
    create_jobs,
)
from tests.polling import until

pytestmark = pytest.mark.integration


def test_every_crash_point_in_the_code_is_exercised() -> None:
    found = set()
    for source in (ROOT / "scheduler").rglob("*.py"):
        found |= set(re.findall(r'crash_point\("([\w.]+)"\)', source.read_text()))
    assert found == set(CRASH_POINTS)


async def burst_until_dead(daemon: DaemonProcess) -> Burst:
    """Create jobs from 16 clients until the daemon has killed itself at its crash point."""
    assert daemon.proc is not None
    proc = daemon.proc
    burst = Burst(daemon.url, "crash")
    stop = asyncio.Event()
    clients = asyncio.create_task(burst.run(stop))
    try:
        await until(lambda: proc.poll() is not None, "the crash point", within=15.0)
    finally:
        stop.set()
        await clients
    assert proc.returncode == -signal.SIGKILL, daemon.output()[-2000:]
    assert not burst.refused, burst.refused
    return burst


@pytest.mark.parametrize("point", CRASH_POINTS)
async def test_a_crash_at_each_write_step_loses_nothing_acknowledged(
    tmp_path: Path, daemons: Daemons, point: str
) -> None:
    daemon = DaemonProcess(tmp_path, NOOP_TASK, fsync="always")
    daemons.append(daemon)
    # Snapshots every 500 ms: the rotate and snapshot points are reached during the burst.
    daemon.configure("persistence", 'snapshot_interval = "500ms"')
    await daemon.start()
    acked = await create_jobs(daemon, 10, "a")
    await until(lambda: list(daemon.state.glob("snapshot-*.snap")), "a snapshot generation")
    acked |= await create_jobs(daemon, 10, "b")
    await daemon.kill()  # and journal records after it

    daemon.env[ENV_VAR] = point
    await daemon.start()
    burst = await burst_until_dead(daemon)
    acked |= burst.acked
    sent = set(acked) | burst.sent
    del daemon.env[ENV_VAR]

    await daemon.start()
    found = by_marker(await all_jobs(daemon))
    assert {m: found.get(m) for m in acked} == acked
    assert set(found) <= sent
    assert len(found) - len(acked) <= 16  # at most one create in flight per client

    acked |= await create_jobs(daemon, 5, "c")
    assert await daemon.stop() == 0  # the final snapshot works on the recovered directory
    await daemon.start()
    after = by_marker(await all_jobs(daemon))
    assert after == {**found, **{m: acked[m] for m in acked if m.startswith("c")}}
