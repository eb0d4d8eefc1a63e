"""The real clock's timers: on time to the sub-millisecond, never early, cancellable."""

from __future__ import annotations

import asyncio
import time

from scheduler.clock import LEAD, SystemClock


async def fire_times(delays: list[float]) -> list[tuple[float, float]]:
    """(due, fired) wall instants of timers armed ``delays`` seconds ahead."""
    clock = SystemClock()
    fired: list[tuple[float, float]] = []
    done = asyncio.get_running_loop().create_future()
    now = time.time()
    for delay in delays:
        due = now + delay

        def record(due: float = due) -> None:
            fired.append((due, time.time()))
            if len(fired) == len(delays) and not done.done():
                done.set_result(None)

        clock.call_at(due, record)
    async with asyncio.timeout(5):
        await done
    return fired


async def test_a_timer_never_fires_before_its_instant() -> None:
    fired = await fire_times([0.0003 * k for k in range(1, 60)])  # dense, sub-millisecond
    assert all(at >= due for due, at in fired)


async def test_a_timer_fires_in_its_instant_order() -> None:
    delays = [0.02, 0.005, 0.0101, 0.01, 0.0, 0.015]
    fired = await fire_times(delays)
    assert [due for due, _ in fired] == sorted(due for due, _ in fired)


async def test_a_cancelled_timer_does_not_fire_in_any_phase() -> None:
    """Cancelled while the loop's timer is armed, or while it finishes the last stretch."""
    clock = SystemClock()
    calls: list[str] = []
    far = clock.call_at(time.time() + 0.05, lambda: calls.append("far"))
    near = clock.call_at(time.time() + LEAD / 2, lambda: calls.append("near"))
    await asyncio.sleep(0)  # ``near`` is in its last stretch already
    far.cancel()
    near.cancel()
    await asyncio.sleep(0.08)
    assert calls == []


async def test_a_timer_far_ahead_does_not_spin() -> None:
    """Waiting for an instant well ahead costs no CPU: only the last ~millisecond is waited
    for by yielding to the loop."""
    clock = SystemClock()
    timer = clock.call_at(time.time() + 60, lambda: None)
    cpu = time.process_time()
    await asyncio.sleep(0.2)
    timer.cancel()
    assert time.process_time() - cpu < 0.05
