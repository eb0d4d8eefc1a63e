"""The hour ring behind ``GET /api/stats`` (``scheduler.observability.stats``) on its own:
memory stays fixed however many runs it counts, percentiles are read from fixed bins within
their stated error, many runs at one instant count one by one, a week later a slot is reused,
and records too old for the ring are dropped rather than counted in the wrong week."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from scheduler.model import Outcome, Run
from scheduler.observability.stats import EDGES, RING, RunStats, bin_edge

pytestmark = pytest.mark.timeout(30)

HOUR = 3600.0
#: A Monday, 00:00 UTC (a whole hour, as every bucket starts).
START = 1_893_974_400.0


def run(
    at: float,
    outcome: Outcome = Outcome.SUCCESS,
    *,
    lateness: float | None = 0.0,
    attempt: int = 1,
    count: int = 1,
    job_id: int = 1,
) -> Run:
    """A run that started at ``at`` (or, missed or skipped, was due then)."""
    started = None if outcome in (Outcome.MISSED, Outcome.SKIPPED_OVERLAP) else at
    return Run(
        job_id=job_id,
        fire=at if started is None else at - (lateness or 0.0),
        attempt=attempt,
        outcome=outcome,
        started=started,
        ended=None if started is None else at + 1.0,
        lateness=lateness if started is not None else None,
        count=count,
    )


def test_a_hundred_thousand_runs_leave_its_size_as_it_was() -> None:
    stats = RunStats()
    size = stats.nbytes
    outcomes = list(Outcome)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(100_000):  # a month of runs, every outcome, lateness up to ~17 minutes
            stats.add(run(START + i * 26.0, outcomes[i % 7], lateness=(i % 1000) / 1000 * 1000))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert stats.nbytes == size
    assert size < 200_000  # 168 hours x (7 outcomes + 102 bins) counters
    assert grown < 4096, f"the ring grew by {grown} bytes over 100,000 runs"
    now = START + 100_000 * 26.0
    week = stats.window(now, RING)
    kept = sum(1 for i in range(100_000) if START + i * 26.0 >= week[0].start)
    assert sum(sum(b.outcomes.values()) for b in week) == kept  # the last week's, all of them


def test_many_runs_at_the_same_instant_each_count_and_set_the_percentiles() -> None:
    stats = RunStats()
    at = START + 5 * HOUR
    for ms in range(1, 101):  # 100 runs due at once, started 1 ms .. 100 ms late
        stats.add(run(at, lateness=ms / 1000, job_id=ms))
    stats.add(run(at, Outcome.ERROR, lateness=None, job_id=500))  # a manual run: no lateness
    for n in range(20):  # retries: their delay is backoff, not lateness
        stats.add(run(at, Outcome.SUCCESS, lateness=30.0, attempt=2, job_id=1000 + n))
    [bucket] = stats.window(at, 1)
    assert bucket.start == START + 5 * HOUR
    assert bucket.outcomes[Outcome.SUCCESS] == 120
    assert bucket.outcomes[Outcome.ERROR] == 1
    assert bucket.p50 == bin_edge(0.050)
    assert bucket.p99 == bin_edge(0.099)
    assert 0.050 <= bucket.p50 < 0.050 * 1.26
    assert 0.099 <= bucket.p99 < 0.099 * 1.26


@pytest.mark.parametrize("lateness", [0.0, 0.00005, 0.001, 0.0123, 0.5, 1.0, 42.0, 3600.0, 1e7])
def test_a_percentile_is_its_bins_upper_edge_never_below_the_value(lateness: float) -> None:
    stats = RunStats()
    stats.add(run(START, lateness=lateness))
    [bucket] = stats.window(START, 1)
    assert bucket.p50 == bucket.p99 == bin_edge(lateness)
    if lateness <= EDGES[-1]:
        assert lateness <= bucket.p50 <= max(lateness * 1.26, EDGES[0] * 1.0001)


def test_missed_occurrences_count_each_and_skips_land_in_the_hour_they_were_due() -> None:
    stats = RunStats()
    stats.add(run(START + 10, Outcome.MISSED, count=5))
    stats.add(run(START + HOUR + 10, Outcome.SKIPPED_OVERLAP))
    first, second = stats.window(START + HOUR, 2)
    assert first.outcomes[Outcome.MISSED] == 5
    assert first.p50 is None
    assert second.outcomes[Outcome.SKIPPED_OVERLAP] == 1


def test_a_week_later_the_slot_is_reused_and_older_records_are_dropped() -> None:
    stats = RunStats()
    stats.add(run(START))
    stats.add(run(START + RING * HOUR, Outcome.ERROR))  # same slot, a week later
    stats.add(run(START + 30.0))  # late news of the old week: it left the ring
    [old] = stats.window(START, 1)
    assert sum(old.outcomes.values()) == 0
    [new] = stats.window(START + RING * HOUR, 1)
    assert new.outcomes[Outcome.ERROR] == 1
    assert new.outcomes[Outcome.SUCCESS] == 0


def test_the_window_is_whole_hours_up_to_the_one_holding_now() -> None:
    stats = RunStats()
    now = START + 10 * HOUR + 59 * 60
    buckets = stats.window(now, 24)
    assert len(buckets) == 24
    assert buckets[-1].start == START + 10 * HOUR
    assert buckets[0].start == START - 13 * HOUR
    assert len(stats.window(now, 500)) == RING  # never more than the ring holds


def test_after_a_clock_step_back_runs_land_in_their_own_hours_in_any_order() -> None:
    stats = RunStats()
    stats.add(run(START + 2 * HOUR + 5))  # the clock ran two hours ahead ...
    stats.add(run(START + 10))  # ... and was stepped back: earlier hours come after
    stats.add(run(START + 2 * HOUR + 50, Outcome.ERROR))
    counts = [sum(b.outcomes.values()) for b in stats.window(START + 2 * HOUR, 3)]
    assert counts == [1, 0, 2]
