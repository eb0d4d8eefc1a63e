"""Job ids: time-sortable 63-bit integers inside, 13-character Crockford base32 outside.

An id is ``milliseconds since the epoch << 22 | sequence``; the sequence keeps ids strictly
increasing within a millisecond and across a wall-clock step backwards, so ids double as the
creation order. Rendered with a fixed width, string order equals numeric order.
"""

from __future__ import annotations

from scheduler.errors import JobNotFound

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)} | {c.lower(): i for i, c in enumerate(_ALPHABET)}
_WIDTH = 13
_SEQ_BITS = 22


class IdGenerator:
    def __init__(self) -> None:
        self._last = 0

    def next(self, now: float) -> int:
        candidate = int(now * 1000) << _SEQ_BITS
        self._last = candidate if candidate > self._last else self._last + 1
        return self._last

    @property
    def last(self) -> int:
        return self._last

    def observe(self, job_id: int) -> None:
        """Never hand out an id at or below one already in use (after recovery)."""
        self._last = max(self._last, job_id)


def encode(job_id: int) -> str:
    chars = []
    for _ in range(_WIDTH):
        chars.append(_ALPHABET[job_id & 31])
        job_id >>= 5
    return "".join(reversed(chars))


def decode(text: str) -> int:
    """Parse an id from a URL or body; anything malformed is simply an unknown job."""
    if len(text) != _WIDTH:
        raise JobNotFound(text)
    value = 0
    for ch in text:
        digit = _DECODE.get(ch)
        if digit is None:
            raise JobNotFound(text)
        value = (value << 5) | digit
    return value


def created_at(job_id: int) -> float:
    return (job_id >> _SEQ_BITS) / 1000.0
