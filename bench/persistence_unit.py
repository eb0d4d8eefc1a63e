"""Persistence figures without the daemon: snapshot time/size and loop stall, restart time,
group-commit throughput.

    .venv/bin/python bench/persistence_unit.py [--jobs 1000000] [--records 100000] [--dir DIR]

Targets (issue 4): snapshot of 1,000,000 jobs under 1.5 s with loop stalls under 100 ms;
restart from that snapshot plus 100,000 journal records under 4 s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import tempfile
import time
from pathlib import Path

from scheduler.model import Job, Outcome, PutJob, Run, Schedule, SetMeta
from scheduler.persistence.journal import FsyncMode, Journal
from scheduler.persistence.recovery import load_state
from scheduler.persistence.snapshot import SnapshotState, write_snapshot

BASE = 1_760_000_000.0
CRON = Schedule(cron="0 9 * * 1-5")


def make_jobs(n: int) -> list[Job]:
    return [
        Job(
            id=(int(BASE * 1000) << 22) + i,
            task="workflow",
            payload={"workflowId": f"wf-{i}", "user": i % 977},
            schedule=CRON,
            timezone="Asia/Seoul",
            workflow_id=f"wf-{i}",
            scheduled=BASE + 3600 + i,
        )
        for i in range(n)
    ]


def make_runs(jobs: list[Job], every: int) -> dict[int, tuple[Run, ...]]:
    return {
        job.id: (Run(job_id=job.id, fire=BASE, attempt=1, outcome=Outcome.SUCCESS, started=BASE),)
        for job in jobs[::every]
    }


async def stall_probe(done: asyncio.Event) -> float:
    """The longest gap between loop turns that should have been 1 ms apart."""
    loop = asyncio.get_running_loop()
    worst, last = 0.0, loop.time()
    while not done.is_set():
        await asyncio.sleep(0.001)
        now = loop.time()
        worst, last = max(worst, now - last), now
    return worst


async def bench_snapshot(
    directory: Path, jobs: list[Job], runs: dict[int, tuple[Run, ...]]
) -> None:
    started = time.perf_counter()
    state = SnapshotState(
        jobs=list(jobs), runs=dict(runs), meta=SetMeta(paused=False), last_seq=0, next_id=0
    )
    capture = time.perf_counter() - started
    done = asyncio.Event()
    probe = asyncio.ensure_future(stall_probe(done))
    info = await write_snapshot(directory, state)
    done.set()
    stall = await probe
    print(f"snapshot capture on the loop (list+dict copy): {capture * 1000:.0f} ms")
    print(
        f"snapshot: {info.jobs:,} jobs, {info.runs:,} runs, {info.size / 1e6:.1f} MB "
        f"in {info.seconds:.2f} s; max loop stall {stall * 1000:.1f} ms"
    )


async def bench_journal(directory: Path, jobs: list[Job], records: int) -> None:
    journal = await Journal.open(
        directory, fsync=FsyncMode.NEVER, batch_interval=0.01, start_seq=0, on_fatal=print
    )
    started = time.perf_counter()
    for i in range(records):
        journal.append(PutJob(jobs[i % len(jobs)]))
    elapsed = time.perf_counter() - started
    await journal.close()
    print(f"journal: {records:,} appends in {elapsed:.2f} s ({records / elapsed:,.0f}/s, no fsync)")


def bench_restart(directory: Path) -> None:
    started = time.perf_counter()
    recovered = load_state(directory)
    elapsed = time.perf_counter() - started
    print(
        f"restart: {len(recovered.jobs):,} jobs, {recovered.stats.records_replayed:,} records "
        f"replayed in {elapsed:.2f} s"
    )


async def bench_group_commit(directory: Path, clients: int, seconds: float) -> None:
    journal = await Journal.open(
        directory, fsync=FsyncMode.ALWAYS, batch_interval=0.01, start_seq=0, on_fatal=print
    )
    job = make_jobs(1)[0]
    deadline = time.perf_counter() + seconds
    commits = 0

    async def client() -> None:
        nonlocal commits
        while time.perf_counter() < deadline:
            journal.append(PutJob(job))
            await journal.commit()
            commits += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    await journal.close()
    print(
        f"group commit: {clients} clients, fsync=always: {commits / seconds:,.0f} commits/s "
        f"(journal only, no HTTP)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs-every", type=int, default=10, help="one run per Nth job")
    parser.add_argument("--dir", type=Path, default=None, help="state directory (default: tmp)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sched-bench-", dir=args.dir))
    try:
        jobs = make_jobs(args.jobs)
        runs = make_runs(jobs, args.runs_every)
        gc.freeze()  # as the daemon does after loading: the records are long-lived
        await bench_snapshot(root / "state", jobs, runs)
        await bench_journal(root / "state", jobs, args.records)
        del jobs, runs
        gc.unfreeze()
        gc.collect()
        bench_restart(root / "state")
        await bench_group_commit(root / "commit", clients=16, seconds=2.0)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
