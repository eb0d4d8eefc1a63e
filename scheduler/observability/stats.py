"""Runs per hour by outcome and their start lateness, for the dashboard's charts, in fixed
memory; and the runs due next, one lane per job.

:class:`RunStats` keeps a ring of :data:`RING` hour buckets (a week). Each bucket counts runs by
:class:`Outcome` and holds a lateness histogram of :data:`BINS` fixed, log-spaced bins, from
which p50 and p99 are read. So its size is the same after ten runs or ten million: a bucket is
a row of one preallocated array, reused when its slot comes round again a week later, and no
run is kept. The price of fixed bins is precision: a percentile is read as the upper edge of
its bin (:func:`bin_edge`), at most 26 % above the true value and never below it.

What counts, and where:

- A run lands in the hour it started (``started``), or, for one that never started (missed,
  skipped, interrupted before start), the hour it was due (``fire``). Hours are whole UTC hours.
- A record of missed occurrences counts each occurrence it stands for (``count``: a coalesced
  catch-up after downtime), like ``scheduler_missed_runs_total``.
- Lateness is that of first attempts that executed and were scheduled (a retry's delay is
  backoff and a manual run has no schedule), as in ``scheduler_lateness_seconds``.
- A record older than the hour its slot holds now is dropped: after a week it has left the
  ring; before that only a clock stepped back by over a week could produce one.

Feeding: :meth:`RunStats.attach` takes the store's run history (capped per job, so bounded
work) and subscribes to :class:`RunRecorded` in the same synchronous step, so every run is
counted exactly once whether it was recorded before (in the store) or after (an event). The
history is then counted in slices, the loop getting a turn between two.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
from array import array
from collections.abc import Callable, Iterable, Mapping
from typing import Final, NamedTuple

from scheduler.engine.cache import TriggerCache
from scheduler.events import Hub, RunRecorded
from scheduler.model import Job, JobType, Outcome, Run
from scheduler.store import Store

BUCKET_SECONDS: Final = 3600
#: Hour buckets kept: a week.
RING: Final = 168
OUTCOMES: Final = tuple(Outcome)
#: Lateness bin edges, 10 per decade from 100 us to 10^6 s (11.6 days): bin ``i`` holds
#: ``EDGES[i-1] < lateness <= EDGES[i]`` (bin 0 everything up to 100 us: on time), and one
#: last bin everything past the last edge.
EDGES: Final = tuple(10.0 ** (-4 + i / 10) for i in range(101))
BINS: Final = len(EDGES) + 1
_ROW: Final = len(OUTCOMES) + BINS
_OUTCOME_COLUMN: Final = {outcome: i for i, outcome in enumerate(OUTCOMES)}
_EXECUTED: Final = frozenset(
    {Outcome.SUCCESS, Outcome.ERROR, Outcome.TIMEOUT, Outcome.CANCELLED, Outcome.INTERRUPTED}
)
_ZEROS: Final = array("q", [0]) * _ROW
#: Jobs of the stored history counted per loop turn when attaching (a few ms each).
SEED_SLICE: Final = 5000


def _round_up(value: float) -> float:
    """``value`` to four significant digits, rounded up (an edge is shown never below it;
    the small allowance keeps an exact power of ten such as 0.001 from going up a step)."""
    scale = 10.0 ** (3 - math.floor(math.log10(value)))
    return math.ceil(value * scale - 1e-6) / scale


#: The edges as answered: four significant digits, never below the true edge.
_SHOWN: Final = tuple(_round_up(edge) for edge in EDGES)


def bin_edge(lateness: float) -> float:
    """The value a percentile falling on ``lateness`` is reported as: its bin's upper edge
    (the last edge for the overflow bin), to four significant digits."""
    return _SHOWN[min(bisect.bisect_left(EDGES, lateness), len(EDGES) - 1)]


def _instant(run: Run) -> float:
    return run.started if run.started is not None else run.fire


class Bucket(NamedTuple):
    """One hour: its start (epoch seconds), runs by outcome, lateness p50 and p99 (None when
    no run of the hour had a lateness)."""

    start: float
    outcomes: dict[Outcome, int]
    p50: float | None
    p99: float | None


class RunStats:
    """The ring (see the module's docstring). Feed it with :meth:`add` or :meth:`attach`;
    read it with :meth:`window`."""

    def __init__(self) -> None:
        self._counts = array("q", [0]) * (RING * _ROW)
        self._hours = array("q", [-1] * RING)  # the hour number each slot holds now
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def nbytes(self) -> int:
        """Bytes held by the counters: fixed from construction."""
        return sum(a.itemsize * len(a) for a in (self._counts, self._hours))

    def add(self, run: Run) -> None:
        """Count one recorded run (called synchronously by the hub; never raises)."""
        instant = _instant(run)
        if not math.isfinite(instant):
            return
        hour = int(instant // BUCKET_SECONDS)
        slot = hour % RING
        held = self._hours[slot]
        if hour < held:
            return  # older than the ring: the slot holds a later hour now
        base = slot * _ROW
        if hour > held:
            self._counts[base : base + _ROW] = _ZEROS
            self._hours[slot] = hour
        occurrences = run.count if run.outcome is Outcome.MISSED else 1
        self._counts[base + _OUTCOME_COLUMN[run.outcome]] += occurrences
        lateness = run.lateness
        if (
            run.outcome in _EXECUTED
            and lateness is not None
            and run.attempt <= 1
            and math.isfinite(lateness)
        ):
            self._counts[base + len(OUTCOMES) + bisect.bisect_left(EDGES, lateness)] += 1

    def window(self, now: float, hours: int) -> list[Bucket]:
        """The ``hours`` hours up to the one holding ``now``, oldest first (``hours`` at
        most :data:`RING`)."""
        last = int(now // BUCKET_SECONDS)
        return [self._bucket(hour) for hour in range(last - min(hours, RING) + 1, last + 1)]

    def _bucket(self, hour: int) -> Bucket:
        slot = hour % RING
        start = float(hour * BUCKET_SECONDS)
        if self._hours[slot] != hour:
            return Bucket(start, dict.fromkeys(OUTCOMES, 0), None, None)
        base = slot * _ROW
        row = self._counts[base : base + _ROW]
        outcomes = {outcome: row[i] for i, outcome in enumerate(OUTCOMES)}
        bins = row[len(OUTCOMES) :]
        return Bucket(start, outcomes, _quantile(bins, 0.50), _quantile(bins, 0.99))

    # --- feeding -------------------------------------------------------------------------

    def attach(self, hub: Hub, history: Mapping[int, tuple[Run, ...]]) -> list[tuple[Run, ...]]:
        """Count every run recorded from now on, and return the stored history to count
        (:meth:`count_history`): taken in the same step, so no run is counted twice or not
        at all (each job's runs are an immutable tuple, replaced on a new run)."""
        self.detach()
        self._unsubscribe = hub.subscribe([RunRecorded], self._recorded)
        return list(history.values())

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = None

    def _recorded(self, event: RunRecorded) -> None:
        self.add(event.run)

    def count_history(self, history: Iterable[tuple[Run, ...]]) -> None:
        for runs in history:
            for run in runs:
                self.add(run)

    async def count_history_in_slices(self, history: list[tuple[Run, ...]]) -> None:
        """:meth:`count_history`, :data:`SEED_SLICE` jobs per loop turn (a million stored
        jobs must not hold the loop, and the engine with it, for a second)."""
        for start in range(0, len(history), SEED_SLICE):
            self.count_history(history[start : start + SEED_SLICE])
            await asyncio.sleep(0)


def _quantile(bins: Iterable[int], q: float) -> float | None:
    """The nearest-rank ``q`` quantile of the histogram ``bins``, as its bin's upper edge."""
    counts = list(bins)
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    for index, seen in enumerate(itertools.accumulate(counts)):
        if seen >= rank:
            return _SHOWN[min(index, len(EDGES) - 1)]
    raise AssertionError("unreachable: the ranks sum to the total")


class StatsService:
    """Attaches :class:`RunStats` once the scheduler has loaded its state (a service of the
    scheduler: :meth:`serve` starts after recovery, before or beside the engine's first runs)
    and counts the stored history in slices; detaches at :meth:`close`."""

    def __init__(self, stats: RunStats, store: Store, hub: Hub) -> None:
        self.stats = stats
        self.store = store
        self.hub = hub
        self._closed = asyncio.Event()

    async def serve(self) -> None:
        history = self.stats.attach(self.hub, self.store.all_runs())
        try:
            await self.stats.count_history_in_slices(history)
            await self._closed.wait()
        finally:
            self.stats.detach()

    async def close(self) -> None:
        self._closed.set()


# --- the runs due next -----------------------------------------------------------------------


class Lane(NamedTuple):
    """A job's runs in the window, soonest first; ``truncated`` when it has more."""

    job: Job
    runs: list[float]
    truncated: bool


#: Lanes and runs per lane of :func:`upcoming`.
MAX_LANES: Final = 50
MAX_RUNS: Final = 200
#: Trigger queries between two turns given to the loop (as ``GET /api/jobs/{id}/next`` does).
_QUERIES_PER_TURN: Final = 100


async def upcoming(
    store: Store, triggers: TriggerCache, now: float, until: float
) -> tuple[list[Lane], bool]:
    """Each soonest job's runs in ``[now, until]`` (at most :data:`MAX_LANES` lanes of
    :data:`MAX_RUNS` runs), and whether anything was left out. A job's times come from its
    compiled trigger, as ``GET /api/jobs/{id}/next`` has them."""
    jobs, cut = store.soonest(until, MAX_LANES)
    lanes: list[Lane] = []
    queries = 0
    for job in jobs:
        assert job.scheduled is not None  # Store.soonest found it by this instant
        timeline = triggers.timeline(job) if job.type is JobType.RECURRING else None
        runs = [job.scheduled]  # a due run that has not started yet shows at its time
        # The next ones from now on: an overdue job's missed times are not walked one by one.
        after = max(job.scheduled, now)
        t = None if timeline is None else timeline.next_after(after)
        while t is not None and t <= until and len(runs) < MAX_RUNS:
            runs.append(t)
            t = timeline.next_after(t) if timeline is not None else None
            queries += 1
            if queries % _QUERIES_PER_TURN == 0:
                await asyncio.sleep(0)
        truncated = t is not None and t <= until
        cut = cut or truncated
        lanes.append(Lane(job, runs, truncated))
    return lanes, cut
