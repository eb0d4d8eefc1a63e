"""Persistence figures through the real daemon (issue 4, item 6). Figures, not a test.

    .venv/bin/python bench/persistence.py                 # everything, about a minute
    .venv/bin/python bench/persistence.py --jobs 100000   # a smaller big-state part
    .venv/bin/python bench/persistence.py --profile DIR   # also cProfile the daemon per part
    .venv/bin/python bench/persistence.py --parts big     # only parts 2 and 3

Parts:

1. Creates per second over HTTP from 16 concurrent keep-alive connections, with
   ``fsync = "always"`` (every 201 waits for its fsync; group commit) and with ``"batch"``.
   The load generator is a few lines of raw HTTP/1.1 on asyncio streams, so that the client's
   own cost (an aiohttp client costs about as much CPU as the server) does not halve the figure
   on a two-core machine.
2. Restart time from a state directory holding a snapshot of ``--jobs`` (1,000,000) jobs plus
   ``--records`` (100,000) journal records: process start until ``/healthz`` answers 200.
3. Snapshot time and size for those jobs, written by the running daemon (periodic snapshot),
   with the longest wait of a status request polled every 5 ms meanwhile (the loop stall);
   then the final snapshot at SIGTERM.

Targets on this machine: "always" >= 3,000 creates/s, restart < 4 s, snapshot < 1.5 s with
loop stalls < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from msgspec.structs import replace

from scheduler.model import Job, PutJob, Schedule, SetMeta
from scheduler.persistence.journal import FsyncMode, Journal
from scheduler.persistence.snapshot import SnapshotState, write_snapshot

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 16
BODY = b'{"task": "noop", "schedule": {"delay": "1d"}, "payload": {"user": 42}}'
CRON = Schedule(cron="0 9 * * 1-5")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Daemon:
    """``scheduler run`` on a fresh config, optionally under cProfile."""

    def __init__(self, root: Path, *, fsync: str, snapshot_interval: str = "60s") -> None:
        self.root = root
        root.mkdir(parents=True)
        self.port = free_port()
        self.config = root / "config.toml"
        self.state = root / "var"
        self.log = root / "daemon.log"
        self.config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {self.port}\n\n'
            f'[persistence]\ndir = "{self.state}"\nfsync = "{fsync}"\n'
            f'snapshot_interval = "{snapshot_interval}"\n\n'
            '[tasks.noop]\nkind = "command"\nargv = ["true"]\n\n'
            '[tasks.workflow]\nkind = "command"\nargv = ["true"]\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, profile: Path | None = None) -> float:
        """Spawn and wait until ``/healthz`` is 200; return the seconds that took."""
        prefix = ["-m", "cProfile", "-o", str(profile)] if profile else []
        started = time.perf_counter()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *prefix, "-m", "scheduler", "run", "-c", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.root,
            )  # fmt: skip
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.output()}")
            try:
                if http_get(self.port, "/healthz").startswith(b"HTTP/1.1 200"):
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.005)

    def stop(self) -> float:
        assert self.proc is not None
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        return time.perf_counter() - started

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """Never leave a daemon behind when a part fails."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the daemon so far (all its threads): on a shared machine
        a steadier figure than the wall time, which also counts waiting for a core."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def http_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        return sock.recv(65536)


# --- part 1: creates per second over HTTP --------------------------------------------------------


async def post_loop(port: int, deadline: float, latencies: list[float], codes: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        sent = loop.time()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        latencies.append(loop.time() - sent)
        codes.append(int(head[9:12]))
    writer.close()
    await writer.wait_closed()


async def creates_per_second(port: int, seconds: float) -> tuple[float, list[float], set[int]]:
    latencies: list[float] = []
    codes: list[int] = []
    deadline = asyncio.get_running_loop().time() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(post_loop(port, deadline, latencies, codes) for _ in range(CLIENTS)))
    return len(latencies) / (time.perf_counter() - started), latencies, set(codes)


def bench_creates(root: Path, fsync: str, seconds: float, profile: Path | None) -> None:
    daemon = Daemon(root / f"creates-{fsync}", fsync=fsync)
    try:
        daemon.start(profile)
        asyncio.run(creates_per_second(daemon.port, 0.5))  # warm up: connections, caches
        rate, latencies, codes = asyncio.run(creates_per_second(daemon.port, seconds))
        daemon.stop()
    finally:
        daemon.kill()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)]
    print(
        f"creates over HTTP, {CLIENTS} clients, fsync={fsync}: {rate:,.0f}/s "
        f"(p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; "
        f"answers {sorted(codes)})"
    )


# --- parts 2 and 3: a big state ------------------------------------------------------------------


def make_jobs(n: int, now: float) -> list[Job]:
    """``n`` pending jobs, none due for a day (so the daemon runs nothing while measured)."""
    base_id = int(now * 1000) << 22
    return [
        Job(
            id=base_id + i,
            task="workflow",
            payload={"workflowId": f"wf-{i}", "user": i % 977},
            schedule=CRON,
            timezone="Asia/Seoul",
            workflow_id=f"wf-{i}",
            scheduled=now + 86400 + i,
        )
        for i in range(n)
    ]


async def build_state(directory: Path, n_jobs: int, n_records: int) -> None:
    """A snapshot of ``n_jobs`` jobs, then ``n_records`` journal records changing them."""
    jobs = make_jobs(n_jobs, time.time())
    last = jobs[-1].id
    state = SnapshotState(
        jobs=jobs, runs={}, meta=SetMeta(paused=False), last_seq=n_jobs, next_id=last + 1
    )
    info = await write_snapshot(directory, state)
    journal = await Journal.open(
        directory, fsync=FsyncMode.NEVER, start_seq=info.last_seq, on_fatal=print
    )
    for i in range(n_records):
        job = jobs[i * 7 % n_jobs]
        journal.append(PutJob(replace(job, payload={"changed": i})))
    await journal.close()
    print(
        f"built: snapshot of {n_jobs:,} jobs ({info.size / 1e6:.0f} MB, written in process in "
        f"{info.seconds:.2f} s) + {n_records:,} journal records"
    )


async def poll_status(port: int, seconds: float) -> list[float]:
    """Latencies of a status request every 5 ms: the daemon's loop stalls show up here."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET /api/scheduler HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    waits: list[float] = []
    while loop.time() < deadline:
        sent = loop.time()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        waits.append(loop.time() - sent)
        await asyncio.sleep(0.005)
    writer.close()
    await writer.wait_closed()
    return waits


SNAPSHOT_LINE = re.compile(
    r"snapshot (snapshot-\d+\.snap): (\d+) jobs, (\d+) runs, (\d+) bytes in ([\d.]+) s"
)
STAMP = re.compile(r"^(\S+ \S+) \w+ [\w.]+: (.*)$", re.MULTILINE)
PHASES = (
    ("state loaded from", "state read (snapshot + journal)"),
    ("recovered ", "store filled, interrupted runs handled"),
    ("scheduler listening", "static jobs, engine and HTTP started"),
)


def restart_phases(log: str, spawned: float) -> str:
    """Where the restart time went, from the daemon's own log timestamps."""
    stamps = {msg: datetime.fromisoformat(when).timestamp() for when, msg in STAMP.findall(log)}
    parts, last = [], spawned
    for prefix, label in PHASES:
        when = next((t for msg, t in stamps.items() if msg.startswith(prefix)), None)
        if when is not None:
            parts.append(f"{label} {when - last:.2f} s")
            last = when
    return "; ".join(parts)


def bench_big_state(root: Path, n_jobs: int, n_records: int, profile: Path | None) -> None:
    daemon = Daemon(root / "big", fsync="always", snapshot_interval="3s")
    asyncio.run(build_state(daemon.state, n_jobs, n_records))
    try:
        spawned = time.time()
        restart = daemon.start(profile)
        print(
            f"restart from {n_jobs:,} jobs + {n_records:,} records: healthy after {restart:.2f} s; "
            f"RSS {daemon.rss_mb():,.0f} MB\n  from spawn: "
            f"{restart_phases(daemon.output(), spawned)}"
        )
        waits = asyncio.run(poll_status(daemon.port, 6.0))  # covers the first periodic snapshot
        periodic = SNAPSHOT_LINE.findall(daemon.output())
        print(
            f"status requests during the periodic snapshot: max {max(waits) * 1000:.1f} ms, "
            f"p99 {sorted(waits)[int(len(waits) * 0.99)] * 1000:.1f} ms ({len(waits)} requests)"
        )
        stop = daemon.stop()
        final = SNAPSHOT_LINE.findall(daemon.output())[len(periodic) :]
        for label, lines in (("periodic", periodic[:1]), ("final at SIGTERM", final[-1:])):
            for name, jobs, _runs, size, seconds in lines:
                print(
                    f"snapshot ({label}): {int(jobs):,} jobs, {int(size) / 1e6:.0f} MB "
                    f"in {float(seconds):.2f} s ({name})"
                )
        print(f"SIGTERM to exit (final snapshot included): {stop:.2f} s")
    finally:
        daemon.kill()


def show_profile(path: Path, label: str) -> None:
    print(f"\n--- cProfile of the daemon, {label} (top 20 by own time) ---")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per creates measurement")
    parser.add_argument("--profile", type=Path, default=None, help="write cProfile files here")
    parser.add_argument("--parts", default="creates,big", help="creates, big, or both")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sched-bench-"))
    profiles = args.profile
    if profiles:
        profiles.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    try:
        for fsync in ("always", "batch") if "creates" in args.parts else ():
            profile = profiles / f"creates-{fsync}.prof" if profiles else None
            bench_creates(root, fsync, args.seconds, profile)
        if "big" in args.parts:
            bench_big_state(
                root, args.jobs, args.records, profiles / "big.prof" if profiles else None
            )
        if profiles:
            for prof in sorted(profiles.glob("*.prof")):
                show_profile(prof, prof.stem)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
