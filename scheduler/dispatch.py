"""Due runs waiting for a worker: the ready queue and the per-task limits.

Order: priority, then scheduled time, then creation order (job ids are creation-ordered).
A task's ``concurrency`` caps its runs in flight; its ``rate_limit`` ``(count, per)`` allows at
most ``count`` starts in any ``per`` seconds (a sliding window on the monotonic clock). A run
held back by either waits in its task's own heap and rejoins the queue when a slot frees (or
the window moves), so it keeps its place in the order.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from scheduler.clock import Clock
from scheduler.executors.base import Executor
from scheduler.model import Job, Run

DUE: Final = 0  # a scheduled occurrence
MANUAL: Final = 1  # "run now": outside the schedule
BUFFERED: Final = 2  # an occurrence held back by overlap=buffer_one
RETRY: Final = 3  # the next attempt of a failed run (same fire)
FROM_FIRE: Final = -1.0  # "compute the job's next instant from the fire when it starts"

#: A queue entry: (priority rank, sort instant, job id, sequence, kind, fire, expected
#: ``scheduled`` of the job, waiter, the job's next instant once this run starts or
#: ``FROM_FIRE``). The sequence makes entries unique, so comparison never reaches the later
#: fields.
Item = tuple[
    int, float, int, int, int, float, float | None, "asyncio.Future[Run] | None", float | None
]


@dataclass(frozen=True, slots=True)
class TaskRuntime:
    """What the engine knows of a task: how to run it and its limits."""

    executor: Executor
    timeout: float | None = None
    concurrency: int | None = None
    rate_limit: tuple[int, float] | None = None  # (count, per seconds)


@dataclass(slots=True)
class TaskSlots:
    running: int = 0
    blocked: list[Item] = field(default_factory=list)
    starts: deque[float] = field(default_factory=deque)


class ReadyQueue:
    def __init__(
        self, clock: Clock, tasks: Mapping[str, TaskRuntime], on_ready: Callable[[], None]
    ) -> None:
        self.clock = clock
        self.tasks = tasks
        self.on_ready = on_ready
        self.heap: list[Item] = []
        self._seq = 0
        self._slots: dict[str, TaskSlots] = {}

    def __len__(self) -> int:
        """Runs waiting: ready ones and those held back by a task limit."""
        return len(self.heap) + sum(len(s.blocked) for s in self._slots.values())

    def push(
        self,
        job: Job,
        fire: float,
        kind: int,
        *,
        sort: float | None = None,
        waiter: asyncio.Future[Run] | None = None,
        nxt: float | None = FROM_FIRE,
    ) -> None:
        self._seq += 1
        rank = job.priority.rank
        when = fire if sort is None else sort
        item = (rank, when, job.id, self._seq, kind, fire, job.scheduled, waiter, nxt)
        heapq.heappush(self.heap, item)

    def put_back(self, item: Item) -> None:
        heapq.heappush(self.heap, item)
        self.on_ready()

    def take(self, jobs: Mapping[int, Job]) -> tuple[Item, Job] | None:
        """The first run whose job still exists and whose task has room, or None."""
        heap = self.heap
        while heap:
            item = heapq.heappop(heap)
            job = jobs.get(item[2])
            if job is None:
                continue
            slots = self._slots.get(job.task)
            runtime = self.tasks.get(job.task)
            if slots is not None and runtime is not None and self._held(item, slots, runtime):
                continue
            return item, job
        return None

    def start(self, task: str) -> TaskSlots:
        """Count a run of ``task`` as started; hand the result to :meth:`end` when it ends."""
        slots = self._slots.get(task)
        if slots is None:
            slots = self._slots[task] = TaskSlots()
        slots.running += 1
        runtime = self.tasks.get(task)
        if runtime is not None and runtime.rate_limit is not None:
            slots.starts.append(self.clock.monotonic())
        return slots

    def end(self, slots: TaskSlots) -> None:
        slots.running -= 1
        if slots.blocked:
            self._release(slots)

    def _held(self, item: Item, slots: TaskSlots, runtime: TaskRuntime) -> bool:
        if runtime.concurrency is not None and slots.running >= runtime.concurrency:
            heapq.heappush(slots.blocked, item)
            return True
        if runtime.rate_limit is not None:
            count, per = runtime.rate_limit
            now = self.clock.monotonic()
            while slots.starts and now - slots.starts[0] >= per:
                slots.starts.popleft()
            if len(slots.starts) >= count:
                heapq.heappush(slots.blocked, item)
                release = self.clock.time() + per - (now - slots.starts[0])
                self.clock.call_at(release, lambda: self._release(slots))
                return True
        return False

    def _release(self, slots: TaskSlots) -> None:
        for item in slots.blocked:
            heapq.heappush(self.heap, item)
        slots.blocked.clear()
        self.on_ready()
