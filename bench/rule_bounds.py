"""Worst cost of trigger queries on adversarial rules: steps (``Budget.spent``) and wall time.

For each rule (America/New_York): compile time, then 300 random instants across 3,000 years with
spans from 60 s to 40 years, recording the worst ``next_after``, ``count`` and ``latest`` and the
most budget steps any query used (the cap is ``recur.QUERY_STEPS``). Then one ``plan_fire``
after outages of 30, 365 and 3,650 days.

Run: .venv/bin/python bench/rule_bounds.py
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.engine.misfire import plan_fire
from scheduler.model import Coalesce, MisfirePolicy
from scheduler.schedules import load_zone, parse_schedule
from scheduler.triggers import Timeline, compile_schedule, recur

RULES = [
    "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=23;BYMINUTE=59;BYSECOND=59",
    "FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=23;BYMINUTE=59;BYSECOND=59;COUNT=100000",
    "FREQ=SECONDLY;INTERVAL=9973;BYHOUR=0;BYMINUTE=0;BYSECOND=0",
    "FREQ=SECONDLY;INTERVAL=9973;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=MINUTELY;INTERVAL=9973;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
    "FREQ=DAILY;INTERVAL=2;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
    "FREQ=HOURLY;INTERVAL=7;BYYEARDAY=366;BYDAY=SU",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
    "FREQ=YEARLY;INTERVAL=7;BYWEEKNO=53;BYDAY=SU",
    "FREQ=MONTHLY;INTERVAL=7;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
    "FREQ=MONTHLY;BYDAY=5FR;BYMONTH=2",
    "FREQ=WEEKLY;INTERVAL=52;BYMONTH=2;BYDAY=MO,TU;BYSETPOS=2",
    "FREQ=WEEKLY;INTERVAL=2;BYMONTH=2;BYDAY=MO;BYSETPOS=1",
    "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0",
    "FREQ=MINUTELY;INTERVAL=7;BYDAY=MO,TU;BYHOUR=9,10",
    "FREQ=SECONDLY",
]
CRONS = ["0 0 29 2 */7", "0 0 * 2 1#5", "0 0 29W 2 *", "* * * * *", "0 9 * * 1-5"]
ZONE = load_zone("America/New_York")
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
SPANS = [60, 86400, 30 * 86400, 365 * 86400, 40 * 365 * 86400]


class StepMeter:
    """Wraps ``recur.Budget.spend`` to remember the most steps one query used."""

    def __init__(self) -> None:
        self.most = 0
        original = recur.Budget.spend

        def spend(budget: Any, steps: int = 1) -> None:
            original(budget, steps)
            self.most = max(self.most, budget.spent)

        recur.Budget.spend = spend  # type: ignore[method-assign]


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return 1e3 * (time.perf_counter() - start)


def worst_queries(trigger: Any, rng: random.Random) -> dict[str, float]:
    worst = {"next": 0.0, "count": 0.0, "latest": 0.0}
    for _ in range(300):
        at = CREATED + timedelta(seconds=rng.randint(0, 3000 * 365 * 86400))
        span = timedelta(seconds=rng.choice(SPANS))
        end = at + span
        calls = {
            "next": lambda at=at: trigger.next_after(at),
            "count": lambda at=at, end=end: trigger.count(at, end),
            "latest": lambda at=at, end=end: trigger.latest(at, end),
        }
        for name, call in calls.items():
            worst[name] = max(worst[name], timed(call))
    return worst


def queries(meter: StepMeter) -> None:
    rng = random.Random(1)
    print(f"{'rule':60} {'compile':>8} {'next':>8} {'count':>8} {'latest':>8} {'steps':>7}")
    print(f"{'':60} {'ms':>8} {'max ms':>8} {'max ms':>8} {'max ms':>8} {'max':>7}")
    for spec in [{"rrule": r} for r in RULES] + [{"cron": c} for c in CRONS]:
        meter.most = 0
        schedule, _ = parse_schedule(spec)
        trigger: Any = None

        def build(schedule: Any = schedule) -> None:
            nonlocal trigger
            trigger = compile_schedule(schedule, ZONE, created=CREATED)

        compile_ms = timed(build)
        worst = worst_queries(trigger, rng)
        label = next(iter(spec.values()))
        print(
            f"{label[:60]:60} {compile_ms:8.2f} {worst['next']:8.2f} {worst['count']:8.2f}"
            f" {worst['latest']:8.2f} {meter.most:7d}"
        )


def catch_up() -> None:
    print(f"\n{'catch-up (plan_fire)':60} {'outage':>8} {'ms':>8} {'missed':>12} exact")
    for spec in (
        {"every": "1s"},
        {"cron": "* * * * *"},
        {"rrule": "FREQ=SECONDLY"},
        {"rrule": "FREQ=MINUTELY;INTERVAL=7;BYHOUR=1,2,3"},
    ):
        schedule, _ = parse_schedule(spec)
        timeline = Timeline(compile_schedule(schedule, ZONE, created=CREATED))
        fire = timeline.next_after(CREATED.timestamp())
        assert fire is not None
        for days in (30, 365, 3650):
            start = time.perf_counter()
            plan = plan_fire(
                fire,
                fire + days * 86400 + 0.5,
                timeline,
                MisfirePolicy(coalesce=Coalesce.LATEST),
            )
            ms = 1e3 * (time.perf_counter() - start)
            print(f"{spec!s:60} {days:>7}d {ms:8.2f} {plan.missed_count:12d} {plan.exact}")


if __name__ == "__main__":
    queries(StepMeter())
    catch_up()
