"""HTTP API speed against the real daemon, with wrk (``apt-get install wrk``).

    .venv/bin/python bench/api.py                 # 100,000 jobs, 10 s per measurement
    .venv/bin/python bench/api.py --jobs 10000 --seconds 3

1. Builds a state directory with ``--jobs`` jobs through the library (pending one-off and
   recurring jobs, plus a few long-running command jobs that are running when the daemon
   starts), then starts ``scheduler run`` on it (loopback, a token configured).
2. ``GET /api/scheduler`` under wrk: requests per second and p99 latency.
3. ``GET /api/jobs`` (first page, a filtered page, a deep page) under wrk: p99.
4. ``POST /api/jobs`` under wrk with ``fsync = "always"`` (a second daemon on an empty state):
   created jobs per second, each one durable before its 201, beside a bare aiohttp handler
   that decodes the same body and answers 201 with JSON (no validation, no journal, no fsync):
   the ceiling for this route on this machine now. The two alternate ``--rounds`` times (a
   noisy neighbour hurts both alike); each run also shows the server's CPU time per request
   (all its threads, user + system, from /proc), which a busy machine disturbs far less than
   the rate. ``--only post`` runs this part alone.

Targets (issue 5): status >= 10,000 req/s with p99 < 5 ms; list p99 < 20 ms.
Target (issue 14): >= 5,000 durable creates/s with 32 connections, p99 <= 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scheduler.runtime.library import Scheduler

TOKEN = "bench-token"
RUNNING = 5

CONFIG = """
[server]
host = "127.0.0.1"
port = {port}

[scheduler]
timezone = "Asia/Seoul"
max_concurrency = 20
retention = "7d"

[persistence]
dir = "{state}"
fsync = "{fsync}"

[tasks.noop]
kind = "command"
argv = ["true"]

[tasks.sleeper]
kind = "command"
argv = ["sleep", "3600"]
"""

POST_LUA = f"""
wrk.method = "POST"
wrk.body = '{{"task": "noop", "schedule": {{"delay": "30d"}}, "payload": {{"n": 1}}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {TOKEN}"
"""


BARE = """
import sys
from aiohttp import web
async def handler(request):
    return web.json_response({"isRunning": True, "totalJobs": 0})
async def create(request):
    body = await request.json()
    return web.json_response({"id": "x", "task": body["task"]}, status=201)
app = web.Application()
app.router.add_get("/", handler)
app.router.add_post("/", create)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def start_bare() -> tuple[subprocess.Popen[bytes], str]:
    """The bare aiohttp app (:data:`BARE`) on a free port, and its URL."""
    return start_script(BARE)


def start_script(source: str, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """``python -c SOURCE PORT ARGS...`` on a free port, once it listens (at most 10 s), and
    its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", source, str(port), *args])
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}/"


def bare_baseline(seconds: int) -> None:
    """A bare aiohttp JSON handler on this machine now: the ceiling for the status card."""
    proc, url = start_bare()
    try:
        report(
            "bare aiohttp JSON handler (32 connections, median of 3)",
            median_of(3, lambda: wrk(url, seconds, auth=False)),
            "(the ceiling)",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, all threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_cpu(pid: int, url: str, seconds: int, **options: Any) -> tuple[float, float, float, float]:
    """:func:`wrk`'s figures and the server's CPU microseconds per request meanwhile."""
    before, started = cpu_seconds(pid), time.perf_counter()
    rate, p50, p99 = wrk(url, seconds, **options)
    used, wall = cpu_seconds(pid) - before, time.perf_counter() - started
    return rate, p50, p99, 1e6 * used / max(rate * wall, 1.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(root: Path, fsync: str) -> tuple[Path, int]:
    port = free_port()
    path = root / "config.toml"
    path.write_text(CONFIG.format(port=port, state=root / "var", fsync=fsync))
    return path, port


async def fill(config: Path, jobs: int) -> None:
    """Store ``jobs`` jobs (and RUNNING sleepers) through the library, then stop cleanly."""
    sched = Scheduler.from_toml(config)
    await sched.start()
    schedules = [
        {"delay": "30d"},
        {"cron": "0 9 * * *"},
        {"every": "6h"},
        {"at": "2031-01-01T09:00"},
    ]
    started = time.perf_counter()
    for i in range(jobs - RUNNING):
        await sched.create_task("noop", {"i": i}, schedule=schedules[i % len(schedules)])
    for _ in range(RUNNING):
        await sched.create_task("sleeper")
    print(f"  stored {jobs:,} jobs in {time.perf_counter() - started:.1f} s")
    await sched.stop(grace=0)


class Daemon:
    def __init__(self, config: Path, port: int) -> None:
        self.config = config
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "SCHEDULER_API_TOKEN": TOKEN}
        env.pop("NOTIFY_SOCKET", None)
        self.log = (config.parent / "daemon.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "run", "-c", str(config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=config.parent,
        )
        started = time.perf_counter()
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"daemon exited: {(config.parent / 'daemon.log').read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        print(f"  daemon ready in {time.perf_counter() - started:.1f} s")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()


def wrk(
    url: str,
    seconds: int,
    *,
    connections: int = 32,
    threads: int = 1,
    script: Path | None = None,
    auth: bool = True,
) -> tuple[float, float, float]:
    """requests/s, p50 ms, p99 ms."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if auth:
        argv += ["-H", f"Authorization: Bearer {TOKEN}"]
    if script is not None:
        argv += ["-s", str(script)]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"  !! {errors.group(1)} non-2xx answers")
    return rate, _latency(out, "50%"), _latency(out, "99%")


def median_of(
    runs: int, measure: Callable[[], tuple[float, float, float]]
) -> tuple[float, float, float]:
    """The run with the median rate: this machine is shared, one run can be unlucky."""
    results = sorted((measure() for _ in range(runs)), key=lambda r: r[0])
    return results[len(results) // 2]


def _latency(out: str, which: str) -> float:
    match = re.search(rf"{which}\s+([\d.]+)(us|ms|s)", out)
    assert match is not None, out
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def report(name: str, figures: tuple[float, float, float], target: str = "") -> None:
    rate, p50, p99 = figures
    print(f"  {name:<44} {rate:>9,.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms  {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--only", choices=("read", "post"), default=None)
    parser.add_argument("--rounds", type=int, default=3, help="POST: bare/daemon alternations")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "post":
            bare_baseline(args.seconds)
            reads(Path(tmp) / "loaded", args)
        if args.only != "read":
            posts(Path(tmp) / "fresh", args)


def reads(root: Path, args: argparse.Namespace) -> None:
    """The status card and job lists of a daemon holding ``--jobs`` jobs."""
    root.mkdir()
    config, port = write_config(root, "never")
    print(f"state with {args.jobs:,} jobs:")
    asyncio.run(fill(config, args.jobs))
    daemon = Daemon(config, port)
    try:
        time.sleep(1.0)  # let the sleepers start
        status = daemon.url + "/api/scheduler"
        wrk(status, 2, auth=False)  # warm-up, not reported
        report(
            "GET /api/scheduler (32 connections, median of 3)",
            median_of(3, lambda: wrk(status, args.seconds, auth=False)),
            "target >= 10,000 req/s, p99 < 5 ms",
        )
        report(
            "GET /api/scheduler (8 connections)",
            wrk(status, args.seconds, connections=8, auth=False),
        )
        for query in (
            "",
            "?status=pending&limit=20",
            "?page=2500&limit=20",
            "?type=recurring&page=100",
        ):
            report(
                f"GET /api/jobs{query}",
                wrk(daemon.url + "/api/jobs" + query, args.seconds, connections=8),
                "target p99 < 20 ms",
            )
    finally:
        daemon.stop()


def posts(root: Path, args: argparse.Namespace) -> None:
    """Durable creates on a fresh daemon, alternating with the bare POST handler."""
    root.mkdir()
    config, port = write_config(root, "always")
    script = root / "post.lua"
    script.write_text(POST_LUA)
    print('POST /api/jobs with fsync = "always" (32 connections unless said):')
    bare, bare_url = start_bare()
    daemon = Daemon(config, port)
    try:
        url = daemon.url + "/api/jobs"
        wrk(bare_url, 2, script=script, auth=False)  # warm-ups, not reported
        wrk(url, 2, script=script)
        bares, ours = [], []
        for _ in range(args.rounds):
            bares.append(wrk_cpu(bare.pid, bare_url, args.seconds, script=script, auth=False))
            ours.append(wrk_cpu(daemon.proc.pid, url, args.seconds, script=script))
        one = wrk_cpu(daemon.proc.pid, url, args.seconds, connections=1, script=script)
    finally:
        daemon.stop()
        bare.terminate()
        bare.wait(timeout=10)
    for name, runs in (("bare aiohttp POST handler", bares), ("POST /api/jobs", ours)):
        print(f"  {name}: " + ", ".join(f"{r[0]:,.0f}" for r in runs) + " req/s")
    label = f"median of {args.rounds}"
    report_cpu(f"bare aiohttp POST handler ({label})", median4(bares), "(the ceiling)")
    report_cpu(f"POST /api/jobs ({label})", median4(ours), "target >= 5,000/s, p99 <= 10 ms")
    report_cpu("POST /api/jobs (1 connection)", one)
    print(f"  ratio: {median4(ours)[0] / median4(bares)[0]:.1%} of the bare handler's rate")


def median4(results: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return sorted(results, key=lambda r: r[0])[len(results) // 2]


def report_cpu(name: str, figures: tuple[float, float, float, float], target: str = "") -> None:
    report(name, figures[:3], f"{figures[3]:4.0f} us CPU/req  {target}")


if __name__ == "__main__":
    main()
