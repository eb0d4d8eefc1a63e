"""next_after calls per second for each trigger kind, and APScheduler 3.11's CronTrigger.

Run: ``make bench`` (or ``.venv/bin/python bench/triggers.py``). The peer columns are
APScheduler 3.11 for cron rows and plain dateutil ``rrulestr(...).after(t)`` for rrule rows.
Two access patterns:

- chain: ``t = next_after(t)`` repeatedly, as the engine walks a job from run to run;
- random: independent instants spread over 2026-2030, as after a restart or a PATCH.

APScheduler runs the same cron expressions through
``CronTrigger.from_crontab(expr, timezone=zone).get_next_fire_time(None, t)``.

Rates are per second of this process's CPU time (best of ROUNDS), so that other work on the
machine does not skew the comparison; on an idle machine that is also wall time. A ``repeat``
with interval 1 runs on cron's matcher, others on the bounded RRULE evaluator (see
scheduler/triggers/repeat.py).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from dateutil.rrule import rrulestr

from scheduler.schedules import load_zone, parse_schedule
from scheduler.triggers import Trigger, compile_schedule

ZONES = ("Asia/Seoul", "America/New_York")
CRON = ("0 9 * * 1-5", "*/15 * * * *", "30 2 * * *", "0 0 1,15 * *")
CASES: list[tuple[str, dict[str, Any]]] = [
    *(("cron", {"cron": expr}) for expr in CRON),
    ("repeat", {"repeat": {"freq": "weekly", "weekdays": ["mon", "wed"], "time": "09:00"}}),
    ("repeat", {"repeat": {"freq": "monthly", "monthDays": [1, 15, -1], "time": "18:30"}}),
    ("repeat", {"repeat": {"freq": "weekly", "interval": 2, "weekdays": ["tue"], "time": "07:00"}}),
    ("rrule", {"rrule": "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0"}),
    ("rrule", {"rrule": "DTSTART:20000103T090000\nFREQ=MONTHLY;BYDAY=-1FR;BYHOUR=18"}),
    ("rrule", {"rrule": "DTSTART:20000103T090000\nFREQ=DAILY;INTERVAL=3;COUNT=5000"}),
    ("every", {"every": "1h"}),
]
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
SECONDS = 0.3
ROUNDS = 3
CHAIN = 20


def rate(call: Callable[[Any], Any], inputs: list[Any], *, chain: bool) -> float:
    """The best of ROUNDS measurements (other processes on the box only slow a round down)."""
    return max(_rate(call, inputs, chain=chain) for _ in range(ROUNDS))


def _rate(call: Callable[[Any], Any], inputs: list[Any], *, chain: bool) -> float:
    """Calls per second over about SECONDS.

    random: one call per input. chain: from each input, CHAIN calls each fed the previous
    answer, so the chains stay within the years the inputs span.
    """
    done, started = 0, time.process_time()
    while time.process_time() - started < SECONDS:
        for item in inputs:
            value = item
            for _ in range(CHAIN if chain else 1):
                value = call(value)
                if value is None:
                    break
            done += CHAIN if chain else 1
    return done / (time.process_time() - started)


def random_instants(zone: str) -> list[datetime]:
    rng = random.Random(7)
    tz = load_zone(zone)
    span = 5 * 365 * 86400
    return [CREATED.astimezone(tz) + timedelta(seconds=rng.uniform(0, span)) for _ in range(200)]


def ours(raw: dict[str, Any], zone: str) -> Trigger:
    schedule, _ = parse_schedule(raw)
    return compile_schedule(schedule, load_zone(zone), created=CREATED)


def apscheduler_rates(expr: str, zone: str) -> tuple[float, float] | None:
    try:
        from apscheduler.triggers.cron import CronTrigger
    except ImportError:
        return None
    trigger = CronTrigger.from_crontab(expr, timezone=load_zone(zone))
    step = timedelta(microseconds=1)

    def call(after: datetime) -> datetime:
        fire: datetime = trigger.get_next_fire_time(None, after + step)
        return fire

    instants = random_instants(zone)
    return rate(call, instants, chain=True), rate(call, instants, chain=False)


def dateutil_rates(text: str, zone: str) -> tuple[float, float]:
    """Plain ``rrulestr(...).after(t)``, which iterates from DTSTART on every call."""
    tz = load_zone(zone)
    lines = text.split("\n")
    dtstart = datetime.strptime(lines[0], "DTSTART:%Y%m%dT%H%M%S") if len(lines) > 1 else None
    start = (dtstart or CREATED.astimezone(tz).replace(tzinfo=None)).replace(tzinfo=tz)
    rule = rrulestr(lines[-1], dtstart=start)

    def call(after: datetime) -> datetime | None:
        return rule.after(after)

    instants = random_instants(zone)[:20]
    return rate(call, instants, chain=True), rate(call, instants, chain=False)


def main() -> int:
    rows = []
    for kind, raw in CASES:
        spec = next(iter(raw.values()))
        label = spec if isinstance(spec, str) else str(spec)
        for zone in ZONES:
            instants = random_instants(zone)
            trigger = ours(raw, zone)
            chain = rate(trigger.next_after, instants, chain=True)
            scattered = rate(trigger.next_after, instants, chain=False)
            peer = None
            if kind == "cron":
                peer = apscheduler_rates(spec, zone)
            elif kind == "rrule":
                peer = dateutil_rates(spec, zone)
            rows.append((kind, label.replace("\n", " "), zone, chain, scattered, peer))
    head = f"{'chain/s':>9} {'random/s':>9} {'peer chain':>10} {'peer rand':>9}"
    print(f"{'kind':7} {'zone':17} {head}  spec")
    for kind, label, zone, chain, scattered, peer in rows:
        aps = f"{peer[0]:>10,.0f} {peer[1]:>9,.0f}" if peer else f"{'':>10} {'':>9}"
        print(f"{kind:7} {zone:17} {chain:>9,.0f} {scattered:>9,.0f} {aps}  {label[:60]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
