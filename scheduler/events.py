"""What happened, as typed records, and the one way to hear about it.

Producers (the engine, the service) publish frozen records: :class:`JobCreated`,
:class:`RunStarted`, :class:`RunProgress`, the settled outcomes (:class:`JobCompleted`,
:class:`JobFailed`, :class:`JobRetrying`, :class:`JobCancelled`), :class:`SchedulerStatus`, and
:class:`RunRecorded` for every run written to a job's history (finished, missed, skipped,
interrupted). Consumers subscribe by type with :meth:`Hub.subscribe`: logs, metrics and alerts
in process (called synchronously, so they must not block or raise), and live streams (SSE)
through :meth:`Hub.stream`, which read the records that have a wire ``name``.

Publishing is free when nobody listens: producers ask :meth:`Hub.wants` before building a
record. Fan-out to streams costs the publisher O(1), however many are open: a record is appended
to one bounded ring, and one shared future wakes every waiting stream once per loop turn,
however many records were published in that turn. Each stream reads the ring from its own
cursor; one that falls more than ``queue_size`` records behind the newest (or out of the ring) is
dropped and told so, so a slow client can never grow the daemon's memory nor make a publisher
wait. The same ring lets an SSE client resume with ``Last-Event-ID``. A record's wire form
(JSON) is encoded once, however many streams send it.

In cluster mode the ring is fed from outside (``Hub(relayed=True)``): the cluster feed
publishes every node's streamed records with the database's global sequence number as their id
(``publish(event, id=seq)``), so a client can resume on any node; records published there
without an id reach the in-process subscribers only (each node logs, counts and alerts on what
it did itself). :func:`from_wire` turns a stored record back into a typed one.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

import msgspec

from scheduler.ids import encode
from scheduler.model import Job, Run
from scheduler.views import job_json


class Event(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """Something that happened, to job ``job_id`` (None: to the whole scheduler)."""

    #: The event's name on a live stream; None for records that are not streamed.
    name: ClassVar[str | None] = None
    job_id: int | None = None

    def data(self) -> dict[str, Any]:
        """The stream's payload, beside ``jobId``."""
        return {}


class JobCreated(Event, frozen=True, gc=False, kw_only=True):
    name: ClassVar[str | None] = "job-created"
    job: Job

    def data(self) -> dict[str, Any]:
        return job_json(self.job)


class RunStarted(Event, frozen=True, gc=False, kw_only=True):
    name: ClassVar[str | None] = "job-started"
    attempt: int
    fire: float

    def data(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "fire": self.fire}


class RunProgress(Event, frozen=True, gc=False, kw_only=True):
    name: ClassVar[str | None] = "job-progress"
    percent: float
    message: str | None

    def data(self) -> dict[str, Any]:
        return {"percent": self.percent, "message": self.message}


class Settled(Event, frozen=True, gc=False, kw_only=True):
    """A job's state after a run or a decision: the kinds below say which."""

    outcome: str
    attempt: int
    error: str | None = None
    final: bool = True

    def data(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "attempt": self.attempt,
            "error": self.error,
            "final": self.final,
        }


class JobCompleted(Settled, frozen=True, gc=False, kw_only=True):
    name: ClassVar[str | None] = "job-completed"


class JobFailed(Settled, frozen=True, gc=False, kw_only=True):
    name: ClassVar[str | None] = "job-failed"


class JobRetrying(Settled, frozen=True, gc=False, kw_only=True):
    name: ClassVar[str | None] = "job-retry"


class JobCancelled(Settled, frozen=True, gc=False, kw_only=True):
    name: ClassVar[str | None] = "job-cancelled"


class SchedulerStatus(Event, frozen=True, gc=False, kw_only=True):
    name: ClassVar[str | None] = "scheduler-status"
    paused: bool

    def data(self) -> dict[str, Any]:
        return {"paused": self.paused, "isRunning": not self.paused}


class RunRecorded(Event, frozen=True, gc=False, kw_only=True):
    """A run entered a job's history (in process only: logs, metrics, alerts)."""

    job: Job
    run: Run


#: Every streamed kind, by its wire name (the OpenAPI document lists them).
STREAMED: tuple[type[Event], ...] = (
    JobCreated,
    RunStarted,
    RunProgress,
    JobCompleted,
    JobFailed,
    JobRetrying,
    JobCancelled,
    SchedulerStatus,
)
EVENT_TYPES = tuple(kind.name for kind in STREAMED if kind.name is not None)


class RelayedJobCreated(Event, frozen=True, gc=False, kw_only=True):
    """``job-created`` read back from its wire form (the cluster feed): the job's document as
    it was at creation. The Job cannot be rebuilt from it, and rendering the job as it is now
    would send another node's client a different event than the first node's got."""

    name: ClassVar[str | None] = "job-created"
    document: dict[str, Any]

    def data(self) -> dict[str, Any]:
        return self.document


#: Wire name -> the record it is read back as.
_FROM_WIRE: dict[str, type[Event]] = {
    **{kind.name: kind for kind in STREAMED if kind.name is not None},
    "job-created": RelayedJobCreated,
}


def from_wire(type_: str, job_id: int | None, data: dict[str, Any]) -> Event | None:
    """The typed record whose ``name`` is ``type_`` and whose ``data()`` is ``data``; None for
    a name this version does not know (a newer node wrote it). Keys it does not know are left
    out; raises msgspec.ValidationError when a known key has the wrong type."""
    kind = _FROM_WIRE.get(type_)
    if kind is None:
        return None
    if kind is RelayedJobCreated:
        return RelayedJobCreated(job_id=job_id, document=data)
    return msgspec.convert({**data, "job_id": job_id}, kind)


E = TypeVar("E", bound=Event)
_encode = msgspec.json.Encoder().encode


class Published:
    """A streamed record in the ring: its id, and its SSE frame, encoded on first use."""

    __slots__ = ("_frame", "event", "id")

    def __init__(self, id_: int, event: Event) -> None:
        self.id = id_
        self.event = event
        self._frame: bytes | None = None

    @property
    def type(self) -> str:
        assert self.event.name is not None
        return self.event.name

    @property
    def job_id(self) -> str | None:
        job_id = self.event.job_id
        return None if job_id is None else encode(job_id)

    def frame(self) -> bytes:
        """The record as SSE text. The name is one of ours and msgspec's JSON has no raw line
        breaks, so neither needs the per-line splitting of a generic SSE writer."""
        if self._frame is None:
            data = _encode({"jobId": self.job_id, **self.event.data()})
            self._frame = b"id: %d\r\nevent: %s\r\ndata: %s\r\n\r\n" % (
                self.id,
                self.type.encode(),
                data,
            )
        return self._frame


class Subscription:
    """One stream's place in the hub's ring. ``overflowed`` is set when it fell too far
    behind and was dropped; ``cursor`` is the id of the next record it has not seen."""

    def __init__(self, hub: Hub, job_id: int | None, cursor: int) -> None:
        self.hub = hub
        self.job_id = job_id
        self.cursor = cursor
        self.overflowed = False
        self.closed = False

    async def get(self) -> list[Published] | None:
        """The records published since the last call (at least one; those of ``job_id`` when
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
    def __init__(
        self, *, buffer: int = 1000, queue_size: int = 1000, relayed: bool = False
    ) -> None:
        #: The ring holds only records relayed with an id from outside (cluster mode).
        self.relayed = relayed
        self._next = 1  # the id the next streamed record gets (relayed: one past the newest)
        self._dropped = 0  # the id of the newest record that left the ring
        self._recent: deque[Published] = deque(maxlen=buffer)
        self._subs: set[Subscription] = set()
        self._callbacks: dict[type[Event], list[Callable[[Any], None]]] = {}
        self._queue_size = queue_size
        self._waiter: asyncio.Future[None] | None = None
        self.active = False  # a stream was opened: every streamed kind is worth publishing

    @property
    def streams(self) -> int:
        """Streams open now."""
        return len(self._subs)

    # --- in-process subscribers ----------------------------------------------------------

    def subscribe(
        self, kinds: Iterable[type[E]], callback: Callable[[E], None]
    ) -> Callable[[], None]:
        """Call ``callback`` synchronously with every record of the exact ``kinds``; returns
        the function that unsubscribes it."""
        chosen = tuple(kinds)
        for kind in chosen:
            self._callbacks.setdefault(kind, []).append(callback)

        def unsubscribe() -> None:
            for kind in chosen:
                callbacks = self._callbacks.get(kind, [])
                if callback in callbacks:
                    callbacks.remove(callback)
                if not callbacks:
                    self._callbacks.pop(kind, None)

        return unsubscribe

    def wants(self, kind: type[Event]) -> bool:
        """Whether a record of ``kind`` has anyone to go to (else producers skip it)."""
        if self.relayed:  # streams get what the feed relays, not what this node publishes
            return kind in self._callbacks
        return kind in self._callbacks or (self.active and kind.name is not None)

    def publish(self, event: Event, *, id: int | None = None) -> None:
        """Hand ``event`` to its subscribers. With ``id`` (a relayed hub only: the cluster's
        global sequence number), it is a streamed record another node's subscribers already
        had: it goes to the streams only, under that id, and only if it is newer than every
        record relayed before (a repeat is dropped, so ids on a stream always rise)."""
        if id is not None:
            assert self.relayed, "ids come from outside only on a relayed hub"
            assert event.name is not None, "only streamed records are relayed"
            if id >= self._next:
                self._append(Published(id, event))
            return
        for callback in self._callbacks.get(type(event), ()):
            callback(event)
        if event.name is not None and not self.relayed:
            self._append(Published(self._next, event))

    def _append(self, item: Published) -> None:
        ring = self._recent
        if ring.maxlen is not None and len(ring) >= ring.maxlen:
            self._dropped = ring[0].id if ring else item.id
        ring.append(item)
        self._next = item.id + 1
        if self._subs:
            self._wake()

    # --- streams -------------------------------------------------------------------------

    def stream(self, job_id: int | None = None, *, last_id: int | None = None) -> Subscription:
        """A stream from the next record on, or (``last_id``) from the first record after that
        one that the ring still holds. An id from before a restart (ids start again at 1)
        resumes from the next record, not from a future that never comes. On a relayed hub ids
        are global and never restart: an id this node has not relayed yet is one another node
        sent first, and the stream resumes after it when it arrives here."""
        cursor = self._next
        if last_id is not None and last_id < self._next:
            cursor = max(last_id + 1, self._dropped + 1)
        elif last_id is not None and self.relayed:
            cursor = last_id + 1
        sub = Subscription(self, job_id, cursor)
        self._subs.add(sub)
        self.active = True
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        # ``active`` stays on: the ring must keep filling so a client can resume after a drop.
        self._subs.discard(sub)
        self._wake()  # a stream waiting in ``get`` ends now

    def take(self, sub: Subscription) -> list[Published] | None:
        """The records ``sub`` has not seen (filtered), advancing its cursor; None, and the
        subscription dropped, when it fell behind."""
        if sub.overflowed or sub.closed:
            return None
        ring = self._recent
        if sub.cursor >= self._next:
            return []
        start = self._position(sub.cursor)
        if sub.cursor <= self._dropped or len(ring) - start > self._queue_size:
            sub.overflowed = True
            self.unsubscribe(sub)
            return None
        batch = list(itertools.islice(ring, start, None))
        sub.cursor = self._next
        if sub.job_id is not None:
            batch = [item for item in batch if item.event.job_id == sub.job_id]
        return batch

    def _position(self, cursor: int) -> int:
        """The ring index of the first record whose id is ``cursor`` or more. Local ids follow
        each other; relayed ones have holes (rolled-back or pruned sequence numbers)."""
        ring = self._recent
        if not self.relayed:
            return cursor - ring[0].id if ring else 0
        return bisect.bisect_left(ring, cursor, key=_id_of)

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


def _id_of(item: Published) -> int:
    return item.id
