"""The two measures alert thresholds are read from, kept apart from the sender
(:mod:`.alerts`): a sliding window of finished runs in fixed buckets, and a threshold's
crossed/cleared state that changes only after enough checks in a row agree."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


class RunWindow:
    """Finished runs of the last ``span`` seconds, in ``slots`` buckets (memory is bounded
    however many runs finish; the window slides by ``span / slots``)."""

    def __init__(self, span: float, slots: int = 60) -> None:
        self.span = span
        self.width = span / slots
        self.slots = slots
        self._buckets: deque[list[float]] = deque()  # [index, runs, failures, seconds]

    def add(self, now: float, *, failed: bool, duration: float | None) -> None:
        index = math.floor(now / self.width)
        if not self._buckets or self._buckets[-1][0] != index:
            self._buckets.append([index, 0.0, 0.0, 0.0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += 1 if failed else 0
        bucket[3] += max(0.0, duration or 0.0)

    def totals(self, now: float) -> tuple[int, int, float]:
        """(runs, failures, total run time) in the window ending at ``now``."""
        oldest = math.floor(now / self.width) - self.slots + 1
        while self._buckets and self._buckets[0][0] < oldest:
            self._buckets.popleft()
        runs = sum(b[1] for b in self._buckets)
        failures = sum(b[2] for b in self._buckets)
        seconds = sum(b[3] for b in self._buckets)
        return int(runs), int(failures), seconds


@dataclass(slots=True)
class Threshold:
    """Crossed/cleared state of one threshold: changes after ``hold`` checks in a row agree."""

    name: str
    hold: int = 1
    active: bool = False
    streak: int = 0

    def step(self, breached: bool) -> bool | None:
        """The new state when it changes now, else None."""
        if breached == self.active:
            self.streak = 0
            return None
        self.streak += 1
        if self.streak < self.hold:
            return None
        self.active, self.streak = breached, 0
        return breached
