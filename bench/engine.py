"""Engine speed side by side with APScheduler 3.11's AsyncIOScheduler, in one run.

    .venv/bin/python bench/engine.py            # all parts (a)-(e), about a minute
    .venv/bin/python bench/engine.py --quick    # smaller counts

Each part runs in a fresh subprocess so memory figures do not mix. Both sides get no-op async
handlers and no persistence. Ours runs through the library API (``create_task``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def noop(_payload: Any = None) -> None:
    return None


def ours(max_concurrency: int = 100) -> Any:
    from scheduler.config.load import Config, SchedulerConfig
    from scheduler.runtime.library import Scheduler

    config = Config(scheduler=SchedulerConfig(max_concurrency=max_concurrency))
    sched = Scheduler(config, persistence=False)
    sched.register_task("noop", noop, retries=0)
    return sched


def aps() -> Any:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    return AsyncIOScheduler(timezone=UTC)


# --- parts: each returns a dict of figures ---------------------------------------------------


async def add_ours(n: int) -> dict[str, float]:
    sched = ours()
    await sched.start()
    gc.collect()
    gc.freeze()
    before = rss()
    start = time.perf_counter()
    for _ in range(n):
        await sched.create_task("noop", None, schedule={"delay": "1d"})
    took = time.perf_counter() - start
    gc.collect()
    after = rss()
    await sched.stop(grace=0)
    return {"per_s": n / took, "bytes_per_job": (after - before) / n}


async def add_aps(n: int) -> dict[str, float]:
    sched = aps()
    sched.start()
    when = datetime.now(UTC) + timedelta(days=1)
    gc.collect()
    before = rss()
    start = time.perf_counter()
    for _ in range(n):
        sched.add_job(noop, "date", run_date=when)
    took = time.perf_counter() - start
    gc.collect()
    after = rss()
    sched.shutdown(wait=False)
    return {"per_s": n / took, "bytes_per_job": (after - before) / n}


async def due_ours(n: int) -> dict[str, float]:
    sched = ours()
    await sched.start()
    sched.engine.set_paused(True)
    for _ in range(n):
        await sched.create_task("noop", None)
    return {"per_s": n / await _run_paused(sched, n)}


async def _run_paused(sched: Any, n: int) -> float:
    """Seconds from resuming ``sched`` (its ``n`` jobs due) until all are completed; then
    stops it."""
    from scheduler.model import JobStatus

    start = time.perf_counter()
    sched.engine.set_paused(False)
    counts = sched.store.counts
    while counts[JobStatus.COMPLETED] < n:  # noqa: ASYNC110 - sampling progress
        await asyncio.sleep(0.005)
    took = time.perf_counter() - start
    await sched.stop(grace=0)
    return took


async def due_ours_batch(n: int) -> dict[str, float]:
    """As :func:`due_ours`, with persistence on (``fsync = "batch"``, a temporary state dir):
    each run's start and end are journalled, the starts made durable before the runs."""
    import tempfile

    from scheduler.config.load import Config, PersistenceConfig, SchedulerConfig
    from scheduler.persistence.journal import FsyncMode
    from scheduler.runtime.library import Scheduler

    with tempfile.TemporaryDirectory(prefix="bench-due-") as state:
        config = Config(
            scheduler=SchedulerConfig(max_concurrency=100),
            persistence=PersistenceConfig(dir=state, fsync=FsyncMode.BATCH, snapshot_interval=3600),
        )
        sched = Scheduler(config)
        sched.register_task("noop", noop, retries=0)
        await sched.start()
        sched.engine.set_paused(True)
        for i in range(0, n, 1000):  # concurrent creates share their commits
            await asyncio.gather(
                *(sched.create_task("noop", None) for _ in range(min(1000, n - i)))
            )
        took = await _run_paused(sched, n)
    return {"per_s": n / took}


async def due_aps(n: int) -> dict[str, float]:
    from apscheduler.events import EVENT_JOB_EXECUTED

    sched = aps()
    done = 0

    def count(_event: Any) -> None:
        nonlocal done
        done += 1

    sched.add_listener(count, EVENT_JOB_EXECUTED)
    now = datetime.now(UTC)
    for _ in range(n):
        sched.add_job(noop, "date", run_date=now, misfire_grace_time=None)
    start = time.perf_counter()
    sched.start()
    while done < n:  # noqa: ASYNC110 - sampling progress
        await asyncio.sleep(0.005)
    took = time.perf_counter() - start
    sched.shutdown(wait=False)
    return {"per_s": n / took}


async def lateness_ours(n: int, span: float, pending: int = 0) -> dict[str, float]:
    """``n`` runs due across ``span`` seconds, with ``pending`` other jobs due in a day."""
    sched = ours()
    await sched.start()
    for _ in range(pending):
        await sched.create_task("noop", None, schedule={"delay": "1d"})
    refs = []
    base = time.time() + 2.0  # due times start after every job is created
    for i in range(n):
        delay = base + span * i / n - time.time()
        refs.append(await sched.create_task("noop", None, schedule={"delay": delay}))
    gc.collect()
    idle = await _idle_cpu(min(1.0, base - time.time() - 0.2))
    cpu = time.process_time()
    await asyncio.sleep(base - time.time() + span + 0.5)
    cpu = time.process_time() - cpu
    late = []
    for ref in refs:
        job = sched.service.get(ref.id)
        for run in sched.store.runs(job.id):
            if run.lateness is not None:
                late.append(run.lateness * 1000)
    await sched.stop(grace=0)
    return {**_lateness(late, n), "cpu_busy": cpu / (span + 0.5), "cpu_idle": idle}


async def _idle_cpu(seconds: float) -> float:
    """The share of one core the process uses while nothing is due for ``seconds``."""
    if seconds <= 0:
        return float("nan")
    cpu = time.process_time()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu) / seconds


async def lateness_aps(n: int, span: float, pending: int = 0) -> dict[str, float]:
    sched = aps()
    sched.start()
    later = datetime.now(UTC) + timedelta(days=1)
    for _ in range(pending):
        sched.add_job(noop, "date", run_date=later)
    late: list[float] = []
    base = datetime.now(UTC) + timedelta(seconds=2)

    async def probe(due: float) -> None:
        late.append((time.time() - due) * 1000)

    for i in range(n):
        when = base + timedelta(seconds=span * i / n)
        sched.add_job(
            probe, "date", run_date=when, args=[when.timestamp()], misfire_grace_time=None
        )
    gc.collect()
    await asyncio.sleep((base - datetime.now(UTC)).total_seconds() + span + 0.5)
    sched.shutdown(wait=False)
    return _lateness(late, n)


async def lateness_loop(n: int, span: float) -> dict[str, float]:
    """The event loop's own timers: the floor for any asyncio scheduler."""
    loop = asyncio.get_running_loop()
    late: list[float] = []
    base = time.time() + 1.0
    for i in range(n):
        due = base + span * i / n
        loop.call_at(
            loop.time() + (due - time.time()), lambda d=due: late.append((time.time() - d) * 1000)
        )
    await asyncio.sleep(span + 1.5)
    return _lateness(late, n)


def _lateness(late: list[float], n: int) -> dict[str, float]:
    return {
        "min_ms": min(late),
        "p50_ms": statistics.median(late),
        "p99_ms": pct(late, 0.99),
        "max_ms": max(late),
        "ran": len(late) / n,
    }


async def status_ours(n: int, requests: int, path: str = "/api/scheduler") -> dict[str, float]:
    from aiohttp import web

    from scheduler.api.app import create_app
    from scheduler.api.keys import DaemonState, Phase

    sched = ours()
    await sched.start()
    for _ in range(n):
        await sched.create_task("noop", None, schedule={"delay": "1d"})
    state = DaemonState()
    state.phase = Phase.RUNNING
    state.loaded = True
    runner = web.AppRunner(create_app(sched, state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = await _client(port, requests, path)
    await runner.cleanup()
    await sched.stop(grace=0)
    return client


async def _client(port: int, requests: int, path: str) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        f"http://127.0.0.1:{port}{path}",
        "--requests",
        str(requests),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return dict(json.loads(out))


async def client_main(url: str, requests: int) -> None:
    import aiohttp

    times = []
    async with aiohttp.ClientSession() as http:
        for _ in range(50):
            async with http.get(url) as resp:
                await resp.read()
        for _ in range(requests):
            t = time.perf_counter()
            async with http.get(url) as resp:
                await resp.read()
            times.append((time.perf_counter() - t) * 1000)
    print(json.dumps({"p50_ms": statistics.median(times), "p99_ms": pct(times, 0.99)}))


PARTS = {
    "add_ours": add_ours,
    "add_aps": add_aps,
    "due_ours": due_ours,
    "due_aps": due_aps,
    "due_ours_batch": due_ours_batch,
    "lateness_ours": lateness_ours,
    "lateness_aps": lateness_aps,
    "lateness_loop": lateness_loop,
    "status_ours": status_ours,
}


def _arg(text: str) -> Any:
    """A part's argument: an int, a float, or text (a path)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def run_part(name: str, *args: Any) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--part", name, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"part {name} failed")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def row(label: str, ours_v: float, peer_v: float | None, unit: str, target: str) -> None:
    peer = "" if peer_v is None else f"{peer_v:>12,.1f}"
    ratio = "" if not peer_v else f"{ours_v / peer_v:>7.2f}x"
    print(f"{label:<44}{ours_v:>12,.1f}{peer:>13}{ratio:>9}  {unit:<10}{target}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part")
    parser.add_argument("--client")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("args", nargs="*")
    opts = parser.parse_args()
    if opts.client:
        asyncio.run(client_main(opts.client, opts.requests))
        return
    if opts.part:
        args = [_arg(a) for a in opts.args]
        print(json.dumps(asyncio.run(PARTS[opts.part](*args))))
        return
    big = 100_000 if opts.quick else 1_000_000
    print(f"{'figure':<44}{'ours':>12}{'APScheduler':>13}{'ratio':>9}  {'unit':<10}target")
    for n in (100_000, big):
        a, p = run_part("add_ours", n), run_part("add_aps", n)
        row(f"(a) add {n:,} future jobs", a["per_s"], p["per_s"], "jobs/s", ">= 150,000")
        row(
            f"(d) memory per pending job at {n:,}",
            a["bytes_per_job"],
            p["bytes_per_job"],
            "bytes",
            "< 450",
        )
    d, p = run_part("due_ours", 100_000), run_part("due_aps", 100_000)
    row("(b) 100,000 due now: completed", d["per_s"], p["per_s"], "jobs/s", ">= 100,000")
    b = run_part("due_ours_batch", 100_000)
    row("(b) same, journalled (fsync = batch)", b["per_s"], None, "jobs/s", ">= 50,000")
    lo, lp, ll = (
        run_part(k, 10_000, 5.0) for k in ("lateness_ours", "lateness_aps", "lateness_loop")
    )
    targets = {"min_ms": ">= 0", "p50_ms": "<= 0.3", "p99_ms": "<= 1.0", "max_ms": "<= 5"}
    for key, target in targets.items():
        row(f"(c) 10,000 due across 5 s: lateness {key[:-3]}", lo[key], lp[key], "ms", target)
        row(f"    event loop timers alone {key[:-3]}", ll[key], None, "ms", "")
    row("    CPU while they run (share of a core)", lo["cpu_busy"], None, "", "")
    row("    CPU at idle (share of a core)", lo["cpu_idle"], None, "", "")
    s = run_part("status_ours", big, 2000)
    row(f"(e) GET /api/scheduler with {big:,} jobs p50", s["p50_ms"], None, "ms", "")
    row(f"(e) GET /api/scheduler with {big:,} jobs p99", s["p99_ms"], None, "ms", "< 5")


if __name__ == "__main__":
    main()
