"""Job ids: time-sortable 63-bit integers inside, 16 lowercase hex digits outside.

An id is ``milliseconds since the epoch << 22 | sequence``; the sequence keeps ids strictly
increasing within a millisecond and across a wall-clock step backwards, so ids double as the
creation order. Rendered with a fixed width, string order equals numeric order. (Hex rather
than base32: ids are rendered on every run, and ``format(n, "016x")`` is ten times faster than
Python's base32 codec.)

A cluster node mints ids with its slot (0..255, leased when it registers) in the top 8 bits of
the sequence: ``milliseconds << 22 | slot << 14 | sequence``, so two nodes never mint the same
id, and a node mints up to 16,384 per millisecond before it borrows the next one.
"""

from __future__ import annotations

from scheduler.errors import JobNotFound

_SEQ_BITS = 22
_WIDTH = 16
_HEX = frozenset("0123456789abcdef")


_SLOT_SHIFT = 14
_SLOTS = 256


class IdGenerator:
    def __init__(self, slot: int | None = None) -> None:
        self._last = 0
        self.slot = slot

    def next(self, now: float) -> int:
        candidate = int(now * 1000) << _SEQ_BITS
        slot = self.slot
        if slot is None:
            self._last = candidate if candidate > self._last else self._last + 1
            return self._last
        candidate |= slot << _SLOT_SHIFT
        if candidate <= self._last:
            candidate = self._last + 1
            if (candidate >> _SLOT_SHIFT) & (_SLOTS - 1) != slot:  # the sequence ran out
                candidate = (((self._last >> _SEQ_BITS) + 1) << _SEQ_BITS) | slot << _SLOT_SHIFT
        self._last = candidate
        return candidate

    @property
    def last(self) -> int:
        return self._last

    def observe(self, job_id: int) -> None:
        """Never hand out an id at or below one already in use (after recovery); a node
        with a slot minds only the ids of its slot (others cannot collide with its own)."""
        if self.slot is None or (job_id >> _SLOT_SHIFT) & (_SLOTS - 1) == self.slot:
            self._last = max(self._last, job_id)


def encode(job_id: int) -> str:
    return format(job_id, "016x")


def decode(text: str) -> int:
    """Parse an id from a URL or body; anything malformed is simply an unknown job."""
    if len(text) != _WIDTH or not _HEX.issuperset(text):
        raise JobNotFound(text)
    return int(text, 16)


def created_at(job_id: int) -> float:
    return (job_id >> _SEQ_BITS) / 1000.0
