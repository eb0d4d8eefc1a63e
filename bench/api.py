"""HTTP API speed against the real daemon, with wrk (``apt-get install wrk``).

    .venv/bin/python bench/api.py                 # 100,000 jobs, 10 s per measurement
    .venv/bin/python bench/api.py --jobs 10000 --seconds 3

1. Builds a state directory with ``--jobs`` jobs through the library (pending one-off and
   recurring jobs, plus a few long-running command jobs that are running when the daemon
   starts), then starts ``scheduler run`` on it (loopback, a token configured).
2. ``GET /api/scheduler`` under wrk: requests per second and p99 latency.
3. ``GET /api/jobs`` (first page, a filtered page, a deep page) under wrk: p99.
4. ``POST /api/jobs`` under wrk with ``fsync = "always"`` (a second daemon on an empty state):
   created jobs per second, each one durable before its 201.

Targets (issue 5): status >= 10,000 req/s with p99 < 5 ms; list p99 < 20 ms.
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
app = web.Application()
app.router.add_get("/", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def bare_baseline(seconds: int) -> None:
    """A bare aiohttp JSON handler on this machine now: the ceiling for the status card."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BARE, str(port)])
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        report(
            "bare aiohttp JSON handler (32 connections, median of 3)",
            median_of(3, lambda: wrk(f"http://127.0.0.1:{port}/", seconds, auth=False)),
            "(the ceiling)",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    bare_baseline(args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "loaded"
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
        root = Path(tmp) / "fresh"
        root.mkdir()
        config, port = write_config(root, "always")
        script = root / "post.lua"
        script.write_text(POST_LUA)
        print('POST /api/jobs with fsync = "always":')
        daemon = Daemon(config, port)
        try:
            for connections in (1, 32):
                report(
                    f"POST /api/jobs ({connections} connections)",
                    wrk(
                        daemon.url + "/api/jobs",
                        args.seconds,
                        connections=connections,
                        script=script,
                    ),
                )
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
