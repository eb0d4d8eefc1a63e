"""The store's query index: which jobs match a list filter, in creation order, without a scan.

Job ids are creation-ordered ints, so "creation order" is "ascending id". Each job sits in
exactly one bucket, keyed by ``(status, type, task)``; a bucket is a :class:`SortedIds`. A list
query with any combination of those three filters is the union of the buckets it matches
(one bucket with all three, a few dozen with none of them): its total is the sum of their
sizes, and a page is found by rank arithmetic (:func:`page_of`) in O(m log n + page), for m
matching buckets, rather than by visiting the jobs before it. Jobs of one workflow are listed in
a second, small index (:class:`WorkflowIndex`), since a workflow holds one job or a few.

Memory: one pointer per job in its bucket (the int object is the job's own id), about 9 bytes
a job with the blocks' slack; a workflow costs a dict entry, and a list only when it holds
more than one job.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

from scheduler.model import Job, JobStatus, JobType

#: Block size: blocks hold LOAD to 2 * LOAD ids (fewer after deletes); a block is split past
#: 2 * LOAD and merged into a neighbour under LOAD // 4.
LOAD: Final = 512

Key = tuple[JobStatus, JobType, str]


class SortedIds:
    """A set of ints in ascending order, held in blocks of a few hundred so that inserting in
    the middle moves a few hundred pointers, not a million. Appending a new largest id (a job
    being created) is O(1). ``rank``/``at`` are O(log n) once the block offsets are known; the
    offsets are rebuilt lazily, O(n / LOAD), on the first read after a change."""

    __slots__ = ("_blocks", "_len", "_maxes", "_offsets")

    def __init__(self, ordered: Sequence[int] = ()) -> None:
        """``ordered`` must be strictly ascending (a bulk load sorts first)."""
        self._blocks: list[list[int]] = [
            list(ordered[i : i + LOAD]) for i in range(0, len(ordered), LOAD)
        ]
        self._maxes: list[int] = [block[-1] for block in self._blocks]
        self._len = len(ordered)
        self._offsets: list[int] | None = None

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[int]:
        return itertools.chain.from_iterable(self._blocks)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        i = bisect.bisect_left(self._maxes, value)
        if i == len(self._maxes):
            return False
        block = self._blocks[i]
        j = bisect.bisect_left(block, value)
        return block[j] == value

    def add(self, value: int) -> bool:
        """Insert ``value``; False when it was already there (a set)."""
        maxes, blocks = self._maxes, self._blocks
        self._offsets = None
        if not maxes or value > maxes[-1]:  # a new job: the common case
            self._len += 1
            if blocks and len(blocks[-1]) < 2 * LOAD:
                blocks[-1].append(value)
                maxes[-1] = value
            else:
                blocks.append([value])
                maxes.append(value)
            return True
        i = bisect.bisect_left(maxes, value)
        block = blocks[i]
        j = bisect.bisect_left(block, value)
        if block[j] == value:
            return False
        self._len += 1
        block.insert(j, value)
        if len(block) > 2 * LOAD:
            blocks[i : i + 1] = [block[:LOAD], block[LOAD:]]
            maxes[i : i + 1] = [block[LOAD - 1], block[-1]]
        return True

    def discard(self, value: int) -> bool:
        """Remove ``value``; False when it was not there."""
        maxes, blocks = self._maxes, self._blocks
        i = bisect.bisect_left(maxes, value)
        if i == len(maxes):
            return False
        block = blocks[i]
        j = bisect.bisect_left(block, value)
        if block[j] != value:
            return False
        del block[j]
        self._len -= 1
        self._offsets = None
        if not block:
            del blocks[i], maxes[i]
        else:
            maxes[i] = block[-1]
            if len(block) < LOAD // 4 and len(blocks) > 1:
                self._merge(i if i + 1 < len(blocks) else i - 1)
        return True

    def _merge(self, i: int) -> None:
        """Join block ``i`` and the next one (split again if that makes one too big)."""
        merged = self._blocks[i] + self._blocks[i + 1]
        if len(merged) > 2 * LOAD:
            half = len(merged) // 2
            self._blocks[i : i + 2] = [merged[:half], merged[half:]]
            self._maxes[i : i + 2] = [merged[half - 1], merged[-1]]
        else:
            self._blocks[i : i + 2] = [merged]
            self._maxes[i : i + 2] = [merged[-1]]

    def _starts(self) -> list[int]:
        """Where each block starts, counted in ids (rebuilt after a change)."""
        if self._offsets is None:
            self._offsets = [0, *itertools.accumulate(map(len, self._blocks))]
        return self._offsets

    def rank(self, value: int) -> int:
        """How many ids are smaller than ``value``."""
        i = bisect.bisect_left(self._maxes, value)
        if i == len(self._maxes):
            return self._len
        return self._starts()[i] + bisect.bisect_left(self._blocks[i], value)

    def at(self, position: int) -> int:
        """The id at ``position`` (0-based) in ascending order."""
        i = bisect.bisect_right(self._starts(), position) - 1
        return self._blocks[i][position - self._starts()[i]]

    def slice(self, start: int, count: int) -> list[int]:
        """Up to ``count`` ids from ``start`` on."""
        if start >= self._len or count <= 0:
            return []
        starts = self._starts()
        i = bisect.bisect_right(starts, start) - 1
        out = self._blocks[i][start - starts[i] : start - starts[i] + count]
        while len(out) < count and i + 1 < len(self._blocks):
            i += 1
            out.extend(self._blocks[i][: count - len(out)])
        return out


def page_of(buckets: Sequence[SortedIds], start: int, limit: int) -> list[int]:
    """Ids ``start`` .. ``start + limit`` (0-based) of the union of disjoint ``buckets``, in
    ascending order: O(m log n log range + m * limit) for m buckets, whatever ``start`` is."""
    buckets = [b for b in buckets if len(b)]
    if not buckets or limit <= 0:
        return []
    if len(buckets) == 1:
        return buckets[0].slice(start, limit)
    if start >= sum(map(len, buckets)):
        return []
    positions = _positions(buckets, start) if start else [0] * len(buckets)
    gathered: list[int] = []
    for bucket, position in zip(buckets, positions, strict=True):
        gathered.extend(bucket.slice(position, limit))
    gathered.sort()
    return gathered[:limit]


def _positions(buckets: Sequence[SortedIds], start: int) -> list[int]:
    """Where each bucket is at union position ``start``: a binary search over id values for
    the smallest ``v`` with ``start`` ids below it, then each bucket's rank of ``v``."""
    lo = min(b.at(0) for b in buckets)
    hi = max(b.at(len(b) - 1) for b in buckets) + 1
    while lo < hi:  # the largest value with at most ``start`` ids below it
        mid = (lo + hi + 1) // 2
        if sum(b.rank(mid) for b in buckets) <= start:
            lo = mid
        else:
            hi = mid - 1
    return [b.rank(lo) for b in buckets]


class JobIndex:
    """Buckets of ids by ``(status, type, task)``; see the module's docstring. How many jobs
    each ``(status, type)`` pair holds is also counted, so that a count that names both (the
    status card's ``delayedJobs``) is O(1) however many tasks there are.

    A bucket that empties is kept (readers skip empty ones): a run moves its job from
    ``pending`` to ``running`` to ``completed``, and the ``running`` bucket of a busy task
    empties and fills again with every run. There are only as many buckets as combinations of
    status, type and task ever seen."""

    __slots__ = ("_buckets", "_pairs")

    def __init__(self) -> None:
        self._buckets: dict[Key, SortedIds] = {}
        self._pairs: dict[tuple[JobStatus, JobType], int] = {}

    @staticmethod
    def key(job: Job) -> Key:
        return (job.status, job.schedule.type, job.task)

    def add(self, job: Job, key: Key | None = None) -> None:
        self._add(job.id, key or self.key(job))

    def remove(self, job: Job, key: Key | None = None) -> None:
        self._remove(job.id, key or self.key(job))

    def update(self, old: Job, new: Job) -> None:
        """Move a changed job to its new bucket (nothing to do when the key is the same).
        Written for the run path: a run moves its job twice, keeping its schedule and task."""
        schedule = new.schedule
        if old.schedule is schedule:
            if old.status is new.status and old.task == new.task:
                return
            kind = before_kind = schedule.type
        else:
            kind, before_kind = schedule.type, old.schedule.type
        before, after = (old.status, before_kind, old.task), (new.status, kind, new.task)
        if before != after:
            self._remove(old.id, before)
            self._add(new.id, after)

    def _add(self, job_id: int, key: Key) -> None:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = SortedIds()
        if bucket.add(job_id):
            pair = (key[0], key[1])
            self._pairs[pair] = self._pairs.get(pair, 0) + 1

    def _remove(self, job_id: int, key: Key) -> None:
        bucket = self._buckets.get(key)
        if bucket is not None and bucket.discard(job_id):
            pair = (key[0], key[1])
            self._pairs[pair] -= 1

    def load(self, grouped: dict[Key, list[int]]) -> None:
        """Fill an empty index from ids grouped by key (any order within a group)."""
        assert not self._buckets, "load() fills an empty index"
        for key, job_ids in grouped.items():
            job_ids.sort()
            self._buckets[key] = SortedIds(job_ids)
            pair = (key[0], key[1])
            self._pairs[pair] = self._pairs.get(pair, 0) + len(job_ids)

    def matching(
        self, status: JobStatus | None, type_: JobType | None, task: str | None
    ) -> list[SortedIds]:
        return [
            bucket
            for (s, t, k), bucket in self._buckets.items()
            if (status is None or s is status)
            and (type_ is None or t is type_)
            and (task is None or k == task)
        ]

    def count(self, status: JobStatus | None, type_: JobType | None, task: str | None) -> int:
        if status is not None and type_ is not None and task is None:
            return self._pairs.get((status, type_), 0)
        return sum(map(len, self.matching(status, type_, task)))


class WorkflowIndex:
    """Every job of each workflow (live or finished), ascending ids. A workflow with one job
    maps to its id, one with more to a list: most workflows have one job, and a list per
    workflow would cost 64 bytes each."""

    __slots__ = ("_jobs",)

    def __init__(self) -> None:
        self._jobs: dict[str, int | list[int]] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def jobs(self, workflow_id: str) -> list[int]:
        held = self._jobs.get(workflow_id)
        if held is None:
            return []
        return [held] if isinstance(held, int) else list(held)

    def add(self, workflow_id: str, job_id: int) -> None:
        held = self._jobs.get(workflow_id)
        if held is None:
            self._jobs[workflow_id] = job_id
        elif isinstance(held, int):
            if held != job_id:
                self._jobs[workflow_id] = sorted((held, job_id))
        elif job_id not in held:
            bisect.insort(held, job_id)

    def remove(self, workflow_id: str, job_id: int) -> None:
        held = self._jobs.get(workflow_id)
        if held == job_id:
            del self._jobs[workflow_id]
        elif isinstance(held, list) and job_id in held:
            held.remove(job_id)
            if len(held) == 1:
                self._jobs[workflow_id] = held[0]

    def load(self, first: dict[str, int | list[int]], more: Iterable[tuple[str, int]] = ()) -> None:
        """Fill an empty index from each workflow's first job (``first`` is taken over, not
        copied: a million entries) and the (workflow, job) pairs of the rest."""
        assert not self._jobs, "load() fills an empty index"
        self._jobs = first
        for workflow_id, job_id in more:
            self.add(workflow_id, job_id)
