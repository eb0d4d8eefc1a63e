"""The loop-stall harness: does a running daemon keep answering while something hostile runs?

``GET /healthz`` is answered by the daemon's event loop, so the gaps between its answers are the
loop's stalls as a client sees them. :func:`watch` polls it every ``interval`` (10 ms) from a
process of its own (``python -m tests.stall URL``), so that whatever the test does on its own
loop (opening a thousand sockets, streaming, parsing answers; and the GIL that goes with it)
cannot delay the probe and be mistaken for a stall of the daemon. On exit it reports the longest
gap between two answers (from the first answer to the end of the block, counting failed polls
as no answer) and, by default, asserts it is under ``limit`` (100 ms)::

    async with watch(daemon.url) as probe:
        await hostile()
    print(probe.report.worst)          # seconds; already checked against the limit

A poll that fails (refused, reset, timed out, or not a 200) is counted in ``failures`` and adds
no answer, so a daemon that is down for a second shows a one-second gap.

On a busy machine that wall-clock probe cannot tell a daemon's stall from the load around it, so
the cost of one request (or one engine turn) is also pinned in-process, deterministically:
:func:`loop_hold` records the longest CPU time the test's own event loop went without a turn
while a block ran, to be kept under :data:`HOLD`::

    async with loop_hold() as hold:
        await api.call("GET", f"/api/jobs/{job_id}/next?n=1000")
    assert hold.longest < HOLD
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import msgspec

from tests import ROOT  # where ``python -m tests.stall`` runs

LIMIT = 0.1
INTERVAL = 0.01
#: The longest CPU time one turn of the loop may take: under a third of the stall limit, so
#: that a daemon on a busy machine (two cores shared) still answers ``/healthz`` within it.
HOLD = 0.03


@dataclass
class StallReport:
    """What the probe saw. ``worst`` is the longest gap between two answers, in seconds."""

    answers: int = 0
    failures: int = 0
    worst: float = 0.0
    worst_at: float = 0.0  # seconds after the probe started
    statuses: dict[int | str, int] = field(default_factory=dict)

    def check(self, limit: float = LIMIT) -> None:
        assert self.answers > 0, f"/healthz never answered 200: {self.statuses}"
        assert self.worst < limit, (
            f"the daemon's loop stalled {self.worst * 1000:.0f} ms (limit {limit * 1000:.0f} ms)"
            f" {self.worst_at:.2f} s in; {self.answers} answers, {self.failures} failures,"
            f" statuses {self.statuses}"
        )


class StallProbe:
    """Polls ``{url}/healthz`` from a child process until :meth:`stop`; see the module."""

    def __init__(self, url: str, *, interval: float = INTERVAL) -> None:
        self.url = url
        self.interval = interval
        self.report = StallReport()
        self._child: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start polling; returns after the first poll, so the block that follows is
        measured from a known state."""
        self._child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.stall",
            self.url,
            str(self.interval),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        assert self._child.stdout is not None
        ready = await asyncio.wait_for(self._child.stdout.readline(), 20)
        assert ready.strip() == b"polling", ready

    async def stop(self) -> StallReport:
        child = self._child
        assert child is not None
        assert child.stdin is not None
        child.stdin.close()  # the child's cue to stop and report
        out, _ = await asyncio.wait_for(child.communicate(), 20)
        self.report = msgspec.json.decode(out.strip().splitlines()[-1], type=StallReport)
        return self.report


class _Poller:
    """The child's side: poll, keep the longest gap, stop when stdin closes."""

    def __init__(self, url: str, interval: float) -> None:
        self.url = url.rstrip("/") + "/healthz"
        self.interval = interval
        self.report = StallReport()
        self.started = time.perf_counter()
        self.last: float | None = None

    async def run(self) -> StallReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(sys.stdin.fileno(), stop.set)  # readable at EOF: the parent is done
        timeout = aiohttp.ClientTimeout(total=2.0)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await self.poll(http)
            print("polling", flush=True)
            while not stop.is_set():
                await asyncio.sleep(self.interval)
                await self.poll(http)
        if self.last is not None:
            self.gap(time.perf_counter())  # a stall that lasts until the end counts too
        return self.report

    async def poll(self, http: aiohttp.ClientSession) -> None:
        key: int | str
        try:
            async with http.get(self.url) as resp:
                await resp.read()
                key = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            key = type(exc).__name__
        statuses = self.report.statuses
        statuses[key] = statuses.get(key, 0) + 1
        if key != 200:
            self.report.failures += 1
            return
        now = time.perf_counter()
        if self.last is not None:
            self.gap(now)
        self.last = now
        self.report.answers += 1

    def gap(self, now: float) -> None:
        assert self.last is not None
        gap = now - self.last
        if gap > self.report.worst:
            self.report.worst = gap
            self.report.worst_at = self.last - self.started


@asynccontextmanager
async def watch(
    url: str, *, limit: float | None = LIMIT, interval: float = INTERVAL
) -> AsyncIterator[StallProbe]:
    """Poll ``url``'s ``/healthz`` while the block runs; on a clean exit check the longest gap
    against ``limit`` (None: only report it, in ``probe.report``)."""
    probe = StallProbe(url, interval=interval)
    await probe.start()
    try:
        yield probe
    finally:
        report = await probe.stop()
    if limit is not None:
        report.check(limit)


class LoopHold:
    """The longest CPU time the loop went without a turn while the block ran (``longest``,
    seconds): a task that yields at every turn measures the stretches between its turns."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._stop = False

    async def tick(self) -> None:
        last = time.process_time()
        while not self._stop:
            await asyncio.sleep(0)
            now = time.process_time()
            self.longest = max(self.longest, now - last)
            last = now


@asynccontextmanager
async def loop_hold() -> AsyncIterator[LoopHold]:
    """Measure the longest loop hold while the block runs; see :class:`LoopHold`.

    The cycle collector is run first and kept off during the block: in a test process that
    has run a few thousand tests, one full collection takes tens of milliseconds and would be
    measured as the code's hold. (The daemon freezes what it loads: see DESIGN's notes on GC.)"""
    gc.collect()
    gc.disable()
    hold = LoopHold()
    ticker = asyncio.create_task(hold.tick())
    await asyncio.sleep(0)
    try:
        yield hold
    finally:
        hold._stop = True
        await ticker
        gc.enable()


if __name__ == "__main__":
    _report = asyncio.run(_Poller(sys.argv[1], float(sys.argv[2])).run())
    print(msgspec.json.encode(_report).decode(), flush=True)
