"""Daemon restart time (issue 14): ``scheduler run`` to ``/healthz`` 200 with a big state.

    .venv/bin/python bench/restart.py                       # 1M jobs + 100k runs, 3 restarts
    .venv/bin/python bench/restart.py --jobs 100000 --runs 10000 --times 5
    .venv/bin/python bench/restart.py --keep DIR            # build DIR once, reuse it later

The state directory is built once, through the project's own snapshot writer (a snapshot of
``--jobs`` pending jobs and ``--runs`` run records, plus ``--records`` journal records after
it), then the daemon is started ``--times`` times from a copy of it (a start writes files: a
cut torn tail, a new journal segment), each time polled every 5 ms until ``/healthz`` is 200,
and stopped with SIGKILL (a SIGTERM would write a final snapshot and change the next start).
The phase breakdown comes from the daemon's own log timestamps, and the daemon's CPU time (user
+ system, all threads) at that moment is printed beside the wall time: on a machine shared with
other work it is the steadier figure. Target: <= 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from msgspec.structs import replace

from scheduler.model import Outcome, PutJob, Run, SetMeta
from scheduler.persistence.journal import FsyncMode, Journal
from scheduler.persistence.snapshot import SnapshotState, write_snapshot

sys.path.insert(0, str(Path(__file__).resolve().parent))
from persistence import STAMP, Daemon, make_jobs  # a sibling script, not a package

PHASES = (
    ("starting scheduler", "interpreter, imports, config"),
    ("state loaded from", "state read (snapshot + journal)"),
    ("recovered ", "store filled, interrupted runs handled"),
    ("scheduler listening", "static jobs, engine started"),
)


async def build_state(directory: Path, n_jobs: int, n_runs: int, n_records: int) -> None:
    now = time.time()
    jobs = make_jobs(n_jobs, now)
    runs: dict[int, list[Run]] = {}
    for i in range(n_runs):
        job = jobs[i * 13 % n_jobs]
        run = Run(
            job_id=job.id, fire=now - 3600 + i, attempt=1, outcome=Outcome.SUCCESS,
            started=now - 3600 + i, ended=now - 3599 + i, lateness=0.0004,
        )  # fmt: skip
        runs.setdefault(job.id, []).append(run)
    state = SnapshotState(
        jobs=jobs, runs=runs, meta=SetMeta(paused=False), last_seq=n_jobs, next_id=jobs[-1].id + 1
    )
    info = await write_snapshot(directory, state)
    journal = await Journal.open(
        directory, fsync=FsyncMode.NEVER, start_seq=info.last_seq, on_fatal=print
    )
    for i in range(n_records):
        journal.append(PutJob(replace(jobs[i * 7 % n_jobs], payload={"changed": i})))
    await journal.close()
    print(
        f"built: {n_jobs:,} jobs + {n_runs:,} runs ({info.size / 1e6:.0f} MB snapshot) "
        f"+ {n_records:,} journal records"
    )


def phases(log: str, spawned: float) -> str:
    stamps = [(msg, datetime.fromisoformat(when).timestamp()) for when, msg in STAMP.findall(log)]
    parts, last = [], spawned
    for prefix, label in PHASES:
        when = next((t for msg, t in reversed(stamps) if msg.startswith(prefix)), None)
        if when is not None:
            parts.append(f"{label} {when - last:.2f}")
            last = when
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=0, help="journal records after it")
    parser.add_argument("--times", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="build (or reuse) state here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sched-restart-"))
    source = args.keep or root / "source"
    try:
        if not (source / "built").exists():
            source.mkdir(parents=True, exist_ok=True)
            asyncio.run(build_state(source, args.jobs, args.runs, args.records))
            (source / "built").touch()
        figures: list[float] = []
        cpus: list[float] = []
        for attempt in range(args.times):
            daemon = Daemon(root / f"run{attempt}", fsync="always")
            shutil.copytree(source, daemon.state, ignore=shutil.ignore_patterns("built"))
            try:
                spawned = time.time()
                seconds = daemon.start()
                cpu = daemon.cpu_seconds()
                figures.append(seconds)
                cpus.append(cpu)
                print(
                    f"restart {attempt + 1}: /healthz 200 after {seconds:.2f} s, CPU {cpu:.2f} s "
                    f"(RSS {daemon.rss_mb():,.0f} MB)\n  from spawn, s: "
                    f"{phases(daemon.output(), spawned)}"
                )
            finally:
                daemon.kill()
        print(
            f"restart: median {statistics.median(figures):.2f} s, max {max(figures):.2f} s; "
            f"daemon CPU median {statistics.median(cpus):.2f} s"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
