"""Profile the engine's run path: 30,000 due jobs released at once (issue 3, figure (b)).

    .venv/bin/python bench/profile_due.py [N]

Prints the wall time and cProfile's top functions by own time. Figures, not a test.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import time

from scheduler.config.load import Config, PersistenceConfig, SchedulerConfig
from scheduler.model import JobStatus
from scheduler.runtime.library import Scheduler


async def noop(_payload: object = None) -> None:
    return None


async def main(n: int) -> None:
    config = Config(
        scheduler=SchedulerConfig(max_concurrency=100),
        persistence=PersistenceConfig(enabled=False),
    )
    sched = Scheduler(config)
    sched.register_task("noop", noop, retries=0)
    await sched.start()
    sched.engine.set_paused(True)
    for _ in range(n):
        await sched.create_task("noop", None)
    profile = cProfile.Profile()
    profile.enable()
    started = time.perf_counter()
    sched.engine.set_paused(False)
    while sched.store.counts[JobStatus.COMPLETED] < n:  # noqa: ASYNC110 - sampling progress
        await asyncio.sleep(0.005)
    profile.disable()
    print(f"{n:,} runs in {time.perf_counter() - started:.2f} s under the profiler")
    await sched.stop(grace=0)
    pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30_000))
