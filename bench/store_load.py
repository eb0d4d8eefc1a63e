"""Store.load in process: N synthetic jobs (time, RSS per job), or a real state directory
(recovery, then the store filled from it, as a daemon start does), optionally under cProfile.

    .venv/bin/python bench/store_load.py 1000000          # synthetic jobs, no snapshot
    .venv/bin/python bench/store_load.py --state DIR      # e.g. a bench/restart.py --keep DIR
    .venv/bin/python bench/store_load.py --state DIR --profile

With ``--state`` the directory is copied first (recovery may write: a cut torn tail), and each
phase is shown as wall and CPU seconds (user + system): on a machine shared with other work the
CPU figure is the steadier one.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("ROOT", "/work/main"))
from scheduler.model import Job, JobStatus, Schedule
from scheduler.persistence.recovery import load_state
from scheduler.store import Store

BASE = 1_760_000_000.0
CRON = Schedule(cron="0 9 * * 1-5")
DELAY = Schedule(delay=900.0)
AT = Schedule(at="2030-01-01T09:00")
IMM = Schedule()
SCHEDS = [CRON, DELAY, AT, IMM]
STATUSES = [
    JobStatus.PENDING,
    JobStatus.PENDING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.PAUSED,
]


def rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make(n: int) -> dict[int, Job]:
    out = {}
    for i in range(n):
        jid = (int(BASE * 1000) << 22) + i
        st = STATUSES[i % 5]
        out[jid] = Job(
            id=jid,
            task="workflow" if i % 3 else "other",
            schedule=SCHEDS[i % 4],
            timezone="Asia/Seoul",
            workflow_id=f"wf-{i}",
            status=st,
            scheduled=BASE + 3600 + i if st is JobStatus.PENDING else None,
        )
    return out


def synthetic(n: int) -> None:
    jobs = make(n)
    gc.collect()
    gc.freeze()
    before = rss()
    store = Store()
    t = time.perf_counter()
    store.load(jobs, {}, paused=False)
    took = time.perf_counter() - t
    gc.collect()
    print(f"load {n:,}: {took:.3f} s, index memory {(rss() - before) / n:.1f} B/job")


def from_state(source: Path, profile: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="store-load-") as root:
        directory = Path(root) / "state"
        shutil.copytree(source, directory, ignore=shutil.ignore_patterns("built"))
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        wall, used = time.perf_counter(), cpu()
        state = load_state(directory)
        recovered = (time.perf_counter() - wall, cpu() - used)
        wall, used = time.perf_counter(), cpu()
        store = Store()
        store.load(state.jobs, dict(state.runs), paused=state.meta.paused, groups=state.groups)
        filled = (time.perf_counter() - wall, cpu() - used)
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        print(
            f"{len(store):,} jobs: recovery {recovered[0]:.3f} s (CPU {recovered[1]:.3f}), "
            f"Store.load {filled[0]:.3f} s (CPU {filled[1]:.3f}), "
            f"groups from the snapshot: {'yes' if state.groups is not None else 'no'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("jobs", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--state", type=Path, help="a state directory to recover and load")
    parser.add_argument("--profile", action="store_true", help="cProfile (with --state)")
    args = parser.parse_args()
    if args.state is not None:
        from_state(args.state, args.profile)
    else:
        synthetic(args.jobs)


if __name__ == "__main__":
    main()
