"""APScheduler 3.11 next to this scheduler: DST days, and a run cut short by ``kill -9``.

    .venv/bin/python bench/apscheduler_dst.py          # a few seconds; quoted in
                                                        # docs/why-not-apscheduler.md

Part 1, DST. Daily cron rules in America/New_York across 2026's two changes: fall-back on
11-01 (01:00-02:00 happens twice) and spring-forward on 03-08 (02:00-03:00 never happens).
APScheduler's runs are the ones its own scheduler loop computes: after each run,
``BaseScheduler._process_jobs`` (apscheduler/schedulers/base.py) asks
``job.trigger.get_next_fire_time(previous_run, now)``; this script makes the same calls, with
``now`` the run time (a scheduler that wakes on time). Ours: ``scheduler next --json``, the
preview of the very trigger a job would run on.

Part 2, a run in flight. APScheduler: an ``AsyncIOScheduler`` with a one-off and a recurring
job whose runs block; while both run, the script prints what the job store holds. That is what
any job store (SQLAlchemy, Redis, MongoDB...) holds at that moment, because ``_process_jobs``
calls ``jobstore.update_job`` (or ``remove_job``) right after ``executor.submit_job``, before
the run ends, and the executor counts runs in memory only (``BaseExecutor._instances``).
Ours: a scheduler with a state directory is killed with SIGKILL while a run is in flight, and
a new one is started on the same directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

NY = "America/New_York"
CASES = (
    ("fall-back 2026-11-01, daily 01:30", "30 1 * * *", "2026-10-31T12:00"),
    ("spring-forward 2026-03-08, daily 02:30", "30 2 * * *", "2026-03-07T12:00"),
    ("spring-forward 2026-03-08, daily 01:30", "30 1 * * *", "2026-03-07T12:00"),
)
RUNS = 3


# --- part 1: DST -----------------------------------------------------------------------------


def aps_runs(cron: str, after: str, n: int) -> list[datetime]:
    """The runs APScheduler's loop makes: get_next_fire_time(previous run, now = that run)."""
    from apscheduler.triggers.cron import CronTrigger

    zone = ZoneInfo(NY)
    trigger = CronTrigger.from_crontab(cron, timezone=zone)
    now = datetime.fromisoformat(after).replace(tzinfo=zone)
    previous = None
    runs = []
    for _ in range(n):
        run = trigger.get_next_fire_time(previous, now)
        if run is None:
            break
        runs.append(run)
        previous = now = run
    return runs


def our_runs(cron: str, after: str, n: int) -> list[datetime]:
    """``scheduler next CRON --tz ZONE --after TIME -n N --json``."""
    argv = [sys.executable, "-m", "scheduler", "next", cron, "--tz", NY, "--after", after]
    done = subprocess.run(
        [*argv, "-n", str(n), "--json"], capture_output=True, text=True, check=True
    )
    zone = ZoneInfo(NY)  # the zone's names (EDT, EST) rather than bare offsets
    return [datetime.fromisoformat(text).astimezone(zone) for text in json.loads(done.stdout)]


def shown(run: datetime) -> str:
    """The wall time as the object carries it, and the real instant in local time and UTC.

    A wall time inside a gap (02:30 on 03-08) names no real time: its instant is shown too."""
    real = run.astimezone(UTC).astimezone(run.tzinfo)
    utc = run.astimezone(UTC)
    note = "" if real.replace(tzinfo=None) == run.replace(tzinfo=None) else "  (no such time)"
    return f"{run.isoformat()} = {real:%H:%M %Z} = {utc:%H:%M} UTC{note}"


def dst_part() -> None:
    print("1. DST: runs of a daily cron rule in America/New_York")
    for title, cron, after in CASES:
        print(f"\n  {title}: cron {cron!r}, after {after}")
        for name, runs in (("APScheduler", aps_runs), ("scheduler  ", our_runs)):
            for i, run in enumerate(runs(cron, after, RUNS)):
                print(f"    {name if i == 0 else ' ' * len(name)}  {shown(run)}")


# --- part 2: a run in flight -----------------------------------------------------------------


async def aps_in_flight() -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    sched = AsyncIOScheduler(timezone=UTC)
    release, both = asyncio.Event(), asyncio.Event()
    started: list[str] = []

    async def work(name: str) -> None:
        started.append(name)
        if len(started) == 2:
            both.set()
        await release.wait()

    soon = datetime.now(UTC) + timedelta(seconds=0.2)
    sched.add_job(work, "date", run_date=soon, args=["once"], id="once")
    sched.add_job(work, "interval", hours=1, next_run_time=soon, args=["hourly"], id="hourly")
    sched.start()
    await asyncio.wait_for(both.wait(), 10)
    once, hourly = sched.get_job("once"), sched.get_job("hourly")
    print(
        f"    runs in flight: {', '.join(sorted(started))} (scheduled for {soon:%H:%M:%S.%f} UTC)"
    )
    print(f"    job store, one-off job:   {'removed' if once is None else once.next_run_time}")
    nxt = hourly.next_run_time if hourly is not None else None
    print(f"    job store, hourly job:    next_run_time {nxt:%H:%M:%S.%f} UTC (the next hour)")
    print("    nothing in the store says a run is in flight: after kill -9 now, the one-off")
    print("    job is gone and the hourly one waits for the next hour; neither run is recorded")
    print("    or run again (misfire handling only covers runs that never started)")
    release.set()
    sched.shutdown(wait=False)
    await asyncio.sleep(0)


CHILD = """
import asyncio, sys
from pathlib import Path
from scheduler import Scheduler
from scheduler.config.load import Config, PersistenceConfig

state, log, block = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "block"

async def work(payload, ctx):
    with log.open("a") as out:
        out.write(f"{'first' if block else 'second'} process: fire id {ctx.fire_id}, "
                  f"attempt {ctx.attempt}\\n")
    if block:
        await asyncio.Event().wait()
    return "done"

async def main():
    sched = Scheduler(Config(persistence=PersistenceConfig(dir=str(state))))
    sched.register_task("work", work)
    await sched.start()
    if block:
        ref = await sched.create_task("work", {}, schedule={"delay": "0.2s"})
        print(ref.id, flush=True)
        await asyncio.Event().wait()
    job_id = sys.argv[4]
    while (info := sched.get_task_status(job_id)).status != "completed":
        await asyncio.sleep(0.01)
    print(f"status {info.status}, runs {info.runs}, result {info.result!r}", flush=True)
    await sched.stop()

asyncio.run(main())
"""


def ours_in_flight() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state, log = Path(tmp) / "state", Path(tmp) / "runs.log"
        first = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(state), str(log), "block"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert first.stdout is not None
        job_id = first.stdout.readline().strip()
        while not log.exists():
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        print(f"    job {job_id}: its run started, then the process got SIGKILL")
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(state), str(log), "rerun", job_id],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        for line in log.read_text().splitlines():
            print(f"    {line}")
        print(f"    after the restart: {done.stdout.strip()}")


def in_flight_part() -> None:
    print("\n2. A run in flight when the process dies")
    print("\n  APScheduler 3.11 (AsyncIOScheduler; any job store holds the same)")
    asyncio.run(aps_in_flight())
    print("\n  scheduler (a state directory; the run is journalled before the task is called)")
    ours_in_flight()


def main() -> None:
    import apscheduler

    print(f"APScheduler {apscheduler.__version__}, Python {sys.version.split()[0]}\n")
    dst_part()
    in_flight_part()


if __name__ == "__main__":
    main()
