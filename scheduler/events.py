"""Events for live views (SSE), metrics and alerts.

Publishing is free when nobody listens: producers ask :meth:`Hub.wants` before building an
event (an in-process listener names the types it wants; a live stream wants them all).

Fan-out costs the publisher O(1), however many streams are open: an event is appended to one
bounded ring, and one shared future wakes every waiting stream once per loop turn, however many
events were published in that turn (a burst of 300 events is one wake-up and one batch per
stream, not 300). Each stream reads the ring from its own cursor. One that falls more than
``queue_size`` events behind the newest (or out of the ring) is dropped and told so, so a slow
client can never grow the daemon's memory nor make a publisher wait. The same ring lets an SSE
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
    """One stream's place in the hub's ring. ``overflowed`` is set when it fell too far
    behind and was dropped; ``cursor`` is the id of the next event it has not seen."""

    def __init__(self, hub: Hub, job_id: str | None, cursor: int) -> None:
        self.hub = hub
        self.job_id = job_id
        self.cursor = cursor
        self.overflowed = False
        self.closed = False

    async def get(self) -> list[Event] | None:
        """The events published since the last call (at least one; those of ``job_id`` when
        it filters), or None when the stream is over (overflow, close or shutdown)."""
        while not self.closed:
            batch = self.hub.take(self)
            if batch is None:
                return None
            if batch:
                return batch
            await self.hub.changed()
        return None

    def close(self) -> None:
        self.closed = True
        self.hub.unsubscribe(self)


class Hub:
    def __init__(self, *, buffer: int = 1000, queue_size: int = 1000) -> None:
        self._next = 1  # the id the next event gets
        self._recent: deque[Event] = deque(maxlen=buffer)
        self._subs: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self._queue_size = queue_size
        self._wanted: set[str] = set()
        self._waiter: asyncio.Future[None] | None = None
        self.active = False  # a stream was opened: every event goes into the resume ring

    @property
    def streams(self) -> int:
        """Streams subscribed now."""
        return len(self._subs)

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
        """A stream from the next event on, or (``last_id``) from the first event after that
        one that the ring still holds. An id from before a restart (ids start again at 1)
        resumes from the next event, not from a future that never comes."""
        cursor = self._next
        if last_id is not None and last_id < self._next:
            oldest = self._recent[0].id if self._recent else self._next
            cursor = max(last_id + 1, oldest)
        sub = Subscription(self, job_id, cursor)
        self._subs.add(sub)
        self.active = True
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        # ``active`` stays on: the ring must keep filling so a client can resume after a drop.
        self._subs.discard(sub)
        self._wake()  # a stream waiting in ``get`` ends now

    def publish(self, type_: str, job_id: str | None, data: dict[str, Any]) -> None:
        event = Event(self._next, type_, job_id, data)
        self._next += 1
        self._recent.append(event)
        for listener in self._listeners:
            listener(event)
        if self._subs:
            self._wake()

    def take(self, sub: Subscription) -> list[Event] | None:
        """The events ``sub`` has not seen (filtered), advancing its cursor; None, and the
        subscription dropped, when it fell behind."""
        if sub.overflowed or sub.closed:
            return None
        ring = self._recent
        if sub.cursor >= self._next:
            return []
        oldest = ring[0].id if ring else self._next
        if sub.cursor < oldest or self._next - sub.cursor > self._queue_size:
            sub.overflowed = True
            self.unsubscribe(sub)
            return None
        batch = list(itertools.islice(ring, sub.cursor - oldest, None))
        sub.cursor = self._next
        if sub.job_id is not None:
            batch = [event for event in batch if event.job_id == sub.job_id]
        return batch

    async def changed(self) -> None:
        """Return after the next publish (or unsubscribe, or shutdown)."""
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._waiter)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close_all(self) -> None:
        for sub in list(self._subs):
            sub.close()
