"""Events for live views (SSE), metrics and alerts.

Publishing is free when nobody listens: producers ask :meth:`Hub.wants` before building an
event (an in-process listener names the types it wants; a live stream wants them all). Each
subscriber has a bounded queue; one that falls behind is dropped and told so, so a slow client
can never grow the daemon's memory. A bounded ring of recent events lets an SSE
client resume with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Collection
from typing import Any

import msgspec

EVENT_TYPES = (
    "job-created",
    "job-started",
    "job-progress",
    "job-completed",
    "job-failed",
    "job-retry",
    "job-cancelled",
    "scheduler-status",
)


class Event(msgspec.Struct, frozen=True):
    id: int
    type: str
    job_id: str | None
    data: dict[str, Any]


class Subscription:
    """One listener. ``overflowed`` is set when it fell too far behind and was dropped."""

    def __init__(self, hub: Hub, job_id: str | None, maxsize: int) -> None:
        self.hub = hub
        self.job_id = job_id
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, event: Event) -> bool:
        if self.job_id is not None and event.job_id != self.job_id:
            return True
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            return False
        return True

    async def get(self) -> Event | None:
        """The next event, or None when the stream is over (overflow or shutdown)."""
        if self.overflowed:
            return None
        return await self.queue.get()

    def close(self) -> None:
        self.hub.unsubscribe(self)
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            self.overflowed = True


class Hub:
    def __init__(self, *, buffer: int = 1000, queue_size: int = 1000) -> None:
        self._ids = itertools.count(1)
        self._recent: deque[Event] = deque(maxlen=buffer)
        self._subs: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self._queue_size = queue_size
        self._wanted: set[str] = set()
        self.active = False  # a stream was opened: every event goes into the resume ring

    def listen(
        self, callback: Callable[[Event], None], types: Collection[str] = EVENT_TYPES
    ) -> None:
        """An in-process consumer (alerts) called synchronously for events of ``types``."""
        self._listeners.append(callback)
        self._wanted.update(types)

    def wants(self, type_: str) -> bool:
        """Whether an event of ``type_`` has anyone to go to (else producers skip it)."""
        return self.active or type_ in self._wanted

    def subscribe(self, job_id: str | None = None, *, last_id: int | None = None) -> Subscription:
        sub = Subscription(self, job_id, self._queue_size)
        if last_id is not None:
            for event in self._recent:
                if event.id > last_id:
                    sub.offer(event)
        self._subs.add(sub)
        self.active = True
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        # ``active`` stays on: the ring must keep filling so a client can resume after a drop.
        self._subs.discard(sub)

    def publish(self, type_: str, job_id: str | None, data: dict[str, Any]) -> None:
        event = Event(next(self._ids), type_, job_id, data)
        self._recent.append(event)
        for listener in self._listeners:
            listener(event)
        for sub in list(self._subs):
            if not sub.offer(event):
                self.unsubscribe(sub)

    def close_all(self) -> None:
        for sub in list(self._subs):
            sub.close()
