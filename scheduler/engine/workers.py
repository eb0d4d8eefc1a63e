"""The workers: ``max_concurrency`` long-lived tasks that take runs from the ready queue.

Long-lived workers rather than a task per run: a run costs no task creation, and an idle
worker waits on a future of its own that :meth:`WorkerPool.wake` resolves when runs are ready
(as many workers as there are runs). Lowering the limit at a reload retires workers as they go
idle: a run in flight is never cut short for it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

#: A worker gives the loop a turn after this many runs in a row, so that timers and HTTP
#: requests get in between the runs of a long burst.
YIELD_EVERY: Final = 64


class WorkerPool:
    def __init__(
        self,
        limit: int,
        *,
        take: Callable[[], tuple[Any, ...] | None],
        start: Callable[..., Awaitable[None]],
    ) -> None:
        self.limit = limit
        self._take = take
        self._start = start
        self._idle: deque[asyncio.Future[None]] = deque()
        self._workers: list[asyncio.Task[None]] = []
        self._group: asyncio.TaskGroup | None = None
        #: How many runs are ready (the runner sets the queue's count here).
        self.ready: Callable[[], int] = lambda: 0

    def start(self, group: asyncio.TaskGroup) -> None:
        self._group = group
        self._workers = [group.create_task(self._worker()) for _ in range(self.limit)]

    def stop(self) -> None:
        for fut in self._idle:
            if not fut.done():
                fut.cancel()
        for worker in self._workers:
            worker.cancel()
        self._group = None

    def resize(self, limit: int) -> None:
        self.limit = limit
        group = self._group
        if group is None:
            return
        self._workers = [w for w in self._workers if not w.done()]
        while len(self._workers) < limit:
            self._workers.append(group.create_task(self._worker()))
        # Extra workers retire as they go idle (a run in flight is never cut short for this).
        for fut in list(self._idle):
            if not fut.done():
                fut.set_result(None)
        self._idle.clear()

    def wake(self) -> None:
        """Runs are ready: wake as many idle workers as there are runs (at least one)."""
        idle = self._idle
        for _ in range(min(len(idle), self.ready() or 1)):
            fut = idle.popleft()
            if not fut.done():
                fut.set_result(None)

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        done = 0
        while True:
            if len(self._workers) > self.limit:
                me = asyncio.current_task()
                if me in self._workers:
                    self._workers.remove(me)
                    return
            taken = self._take()
            if taken is None:
                fut: asyncio.Future[None] = loop.create_future()
                self._idle.append(fut)
                await fut
                continue
            await self._start(*taken)
            done += 1
            if done % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let timers and HTTP in between long bursts
