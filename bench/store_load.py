"""Store.load of N jobs (time, RSS per job) and two-filter list queries, before/after."""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("ROOT", "/work/main"))
from scheduler.model import Job, JobStatus, Schedule
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


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
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


if __name__ == "__main__":
    main()
