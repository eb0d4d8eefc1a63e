"""Due runs waiting for a worker: the ready queue and the concurrency and rate limits.

Order: priority, then scheduled time, then creation order (job ids are creation-ordered).

Limits are enforced where a run is *taken* from the queue, never later: :meth:`ReadyQueue.take`
reserves the run's place (a global slot, a slot of its task, a start in its task's rate window)
before it returns, and the engine gives the place back with :meth:`ReadyQueue.release` when the
run ends or turns out not to start. Counting after an await (journalling the start) would let
every worker that took a run of the same task meanwhile through. So at no instant do more than
``limit`` runs hold a place, nor more than a task's ``concurrency`` runs of that task.

A task's ``rate_limit`` ``(count, per)`` allows at most ``count`` starts in any window of ``per``
seconds (a sliding log of start instants on the monotonic clock; a window is half-open, so a
start exactly ``per`` seconds after another is in a new window). A run held back by a task limit
waits in its task's own heap and rejoins the queue when a slot frees or the window moves, so it
keeps its place in the order.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from scheduler.clock import Clock, Timer
from scheduler.executors.base import Executor
from scheduler.model import Job, Run

DUE: Final = 0  # a scheduled occurrence
MANUAL: Final = 1  # "run now": outside the schedule
BUFFERED: Final = 2  # an occurrence held back by overlap=buffer_one
RETRY: Final = 3  # the next attempt of a failed run (same fire)
FROM_FIRE: Final = -1.0  # "compute the job's next instant from the fire when it starts"
#: A rate window is measured on the monotonic clock, its timer armed on the wall clock: the
#: conversion rounds (about 2e-7 s at today's epoch), and a timer a hair early finds the window
#: still full and re-arms for the same instant (for ever, on an injected clock). It wakes 10
#: microseconds late instead (dozens of roundings), never early.
WAKE_MARGIN: Final = 1e-5


@dataclass(slots=True, eq=False)
class QueuedRun:
    """A run waiting for a worker. ``expect`` is the job's ``scheduled`` when it was queued (a
    changed job no longer wants this run); ``nxt`` the job's next instant once this run starts,
    or :data:`FROM_FIRE`; ``waiter`` resolves with the finished run (``?wait=true``)."""

    job_id: int
    kind: int
    fire: float
    expect: float | None
    nxt: float | None
    waiter: asyncio.Future[Run] | None = None
    dropped: bool = False


#: A heap entry: (priority rank, sort instant, job id, sequence, run). The sequence makes
#: entries unique, so comparisons never reach the run (tuples compare in C: fast; a NamedTuple
#: would cost a Python call per entry made, so its one field read is by a named index).
Entry = tuple[int, float, int, int, QueuedRun]
#: Where an :data:`Entry` holds its run.
RUN: Final = 4


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
    blocked: list[Entry] = field(default_factory=list)
    starts: deque[float] = field(default_factory=deque)
    timer: Timer | None = None


@dataclass(slots=True, eq=False)
class Place:
    """A run's reserved place: handed back exactly once with :meth:`ReadyQueue.release`."""

    slots: TaskSlots | None
    start: float | None  # its instant in the task's rate log
    released: bool = False


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a job's queued run waits, as ``GET /api/jobs/{id}/explain`` tells it: what holds
    it (``"global"``: every place of ``max_concurrency`` is taken; ``"task"``: every slot of
    its task's ``concurrency``; ``"rate"``: its task's rate window is full until ``until``, wall
    clock, ``size`` starts per ``per`` seconds; None: nothing, a worker takes it next), how
    many queued runs come before it under that limit, and how many of ``size`` places are used.
    """

    limit: Literal["global", "task", "rate"] | None
    ahead: int
    used: int
    size: int
    until: float | None = None
    per: float | None = None


class ReadyQueue:
    def __init__(
        self,
        clock: Clock,
        tasks: Mapping[str, TaskRuntime],
        on_ready: Callable[[], None],
        *,
        limit: int,
        on_drop: Callable[[QueuedRun, Job | None], None],
    ) -> None:
        self.clock = clock
        self.tasks = tasks
        self.on_ready = on_ready
        self.on_drop = on_drop
        #: Places in all (``max_concurrency``); :attr:`active` of them are taken.
        self.limit = limit
        self.active = 0
        self.heap: list[Entry] = []
        self._seq = 0
        self._slots: dict[str, TaskSlots] = {}
        self._per_job: dict[int, int] = {}  # runs queued (ready or blocked) per job
        #: Asked of each run as it is taken, when maintenance windows are configured (else
        #: None: one attribute test): True when the run must not start now (its task's window
        #: opened while it waited); the gate has then taken it over and it leaves the queue.
        self.gate: Callable[[QueuedRun, Job], bool] | None = None

    def __len__(self) -> int:
        """Runs waiting: ready ones and those held back by a task limit."""
        return len(self.heap) + sum(len(s.blocked) for s in self._slots.values())

    def ready(self) -> int:
        """Runs ready to be taken (not held back by a task limit)."""
        return len(self.heap)

    def queued(self, job_id: int) -> int:
        """How many runs of the job wait in the queue."""
        return self._per_job.get(job_id, 0)

    def push(
        self,
        job: Job,
        fire: float,
        kind: int,
        *,
        sort: float | None = None,
        waiter: asyncio.Future[Run] | None = None,
        nxt: float | None = FROM_FIRE,
    ) -> QueuedRun:
        self._seq += 1
        run = QueuedRun(job.id, kind, fire, job.scheduled, nxt, waiter)
        when = fire if sort is None else sort
        heapq.heappush(self.heap, (job.priority.rank, when, job.id, self._seq, run))
        self._per_job[job.id] = self._per_job.get(job.id, 0) + 1
        return run

    def put_back(self, run: QueuedRun, job: Job) -> None:
        """Queue a taken run again (its start could not be recorded): same place in the order."""
        self._seq += 1
        heapq.heappush(self.heap, (job.priority.rank, run.fire, job.id, self._seq, run))
        self._per_job[job.id] = self._per_job.get(job.id, 0) + 1
        self.on_ready()

    def drop_job(self, job_id: int, job: Job | None, *, keep_manual: bool = False) -> int:
        """Drop the queued runs of a job now (their waiters are told at once; the entries are
        skipped when reached); how many. ``keep_manual``: run-nows stay. O(queue length): for
        cancel, delete, pause and reschedule, not hot."""
        if job_id not in self._per_job:
            return 0
        count = 0
        for heap in (self.heap, *(s.blocked for s in self._slots.values())):
            for entry in heap:
                run = entry[RUN]
                if keep_manual and run.kind == MANUAL:
                    continue
                if run.job_id == job_id and not run.dropped:
                    run.dropped = True
                    self._forget(run)
                    self.on_drop(run, job)
                    count += 1
        return count

    def take(self, jobs: Mapping[int, Job]) -> tuple[QueuedRun, Job, Place] | None:
        """The first run whose job still exists and that has room under every limit, with its
        place reserved; or None (nothing ready, or every place is taken)."""
        if self.active >= self.limit:
            return None
        heap = self.heap
        while heap:
            entry = heapq.heappop(heap)
            run = entry[RUN]
            job = jobs.get(run.job_id)
            if run.dropped:
                continue  # counted out when it was dropped
            if job is None:
                self._forget(run)
                self.on_drop(run, None)
                continue
            gate = self.gate
            if gate is not None and gate(run, job):
                self._forget(run)
                continue
            place = self._reserve(entry, job.task)
            if place is None:
                continue  # held back by its task's limit: waits in the task's heap
            self._forget(run)
            self.active += 1
            return run, job, place
        return None

    def release(self, place: Place, *, started: bool = True) -> None:
        """Give a place back. ``started`` False: the run never started, so its start leaves
        the task's rate log too."""
        if place.released:
            return
        place.released = True
        self.active -= 1
        slots = place.slots
        if slots is not None:
            slots.running -= 1
            if not started and place.start is not None:
                with contextlib.suppress(ValueError):  # already out of the window
                    slots.starts.remove(place.start)
            if slots.blocked:
                self._unblock(slots)
        self.on_ready()

    # --- task limits ---------------------------------------------------------------------

    def _reserve(self, entry: Entry, task: str) -> Place | None:
        runtime = self.tasks.get(task)
        if runtime is None or (runtime.concurrency is None and runtime.rate_limit is None):
            return Place(None, None)
        slots = self._slots.get(task)
        if slots is None:
            slots = self._slots[task] = TaskSlots()
        if runtime.concurrency is not None and slots.running >= runtime.concurrency:
            heapq.heappush(slots.blocked, entry)
            return None
        start = None
        if runtime.rate_limit is not None:
            count, per = runtime.rate_limit
            now = self.clock.monotonic()
            starts = slots.starts
            while starts and now - starts[0] >= per:
                starts.popleft()
            if len(starts) >= count:
                heapq.heappush(slots.blocked, entry)
                self._wake_at(slots, starts[0] + per - now + WAKE_MARGIN)
                return None
            if slots.blocked and slots.blocked[0] < entry:
                # The window moved before its timer told the runs held back: they come first.
                heapq.heappush(slots.blocked, entry)
                self._unblock(slots)
                return None
            starts.append(now)
            start = now
        slots.running += 1
        return Place(slots, start)

    def _wake_at(self, slots: TaskSlots, delay: float) -> None:
        """One timer per task: unblock when the oldest start leaves the window."""
        if slots.timer is not None:
            return

        def fire() -> None:
            slots.timer = None
            self._unblock(slots)

        slots.timer = self.clock.call_at(self.clock.time() + delay, fire)

    def _unblock(self, slots: TaskSlots) -> None:
        for entry in slots.blocked:
            heapq.heappush(self.heap, entry)
        slots.blocked.clear()
        self.on_ready()

    def _forget(self, run: QueuedRun) -> None:
        left = self._per_job.get(run.job_id, 0) - 1
        if left > 0:
            self._per_job[run.job_id] = left
        else:
            self._per_job.pop(run.job_id, None)

    # --- where a job's run stands (read-only, for explain) -----------------------------------

    def standing(self, job_id: int, task: str) -> Standing | None:
        """Where the job's first queued run waits and what holds it (see :class:`Standing`), or
        None when no run of it is queued. O(queue length): it answers an operator's question
        (``GET /api/jobs/{id}/explain``), never the run path."""
        if job_id not in self._per_job:
            return None
        slots = self._slots.get(task)
        if slots is not None:
            mine = _first_of(slots.blocked, job_id)
            if mine is not None:
                return self._task_standing(task, slots, _ahead(slots.blocked, mine))
        mine = _first_of(self.heap, job_id)
        if mine is None:
            return None
        limit: Literal["global"] | None = "global" if self.active >= self.limit else None
        return Standing(limit, _ahead(self.heap, mine), self.active, self.limit)

    def _task_standing(self, task: str, slots: TaskSlots, ahead: int) -> Standing:
        """A run held back in its task's heap: by the task's concurrency, or its rate window
        (which frees when the oldest start still in it is ``per`` seconds old)."""
        runtime = self.tasks.get(task)
        concurrency = None if runtime is None else runtime.concurrency
        if concurrency is not None and slots.running >= concurrency:
            return Standing("task", ahead, slots.running, concurrency)
        rate = None if runtime is None else runtime.rate_limit
        if rate is not None:
            count, per = rate
            now = self.clock.monotonic()
            recent = [start for start in slots.starts if now - start < per]
            if len(recent) >= count:
                frees = recent[len(recent) - count] + per - now
                until = self.clock.time() + frees
                return Standing("rate", ahead, len(recent), count, until=until, per=per)
        return Standing(None, ahead, slots.running, concurrency or 0)


def _first_of(heap: list[Entry], job_id: int) -> Entry | None:
    """The job's first live entry in ``heap`` (in queue order), or None."""
    mine = [entry for entry in heap if entry[2] == job_id and not entry[RUN].dropped]
    return min(mine) if mine else None


def _ahead(heap: list[Entry], mine: Entry) -> int:
    """How many live entries of ``heap`` come before ``mine`` in queue order."""
    return sum(1 for entry in heap if entry < mine and not entry[RUN].dropped)
