"""A cluster node walks a schedule through its claims exactly as the single box does (issue 13,
guarantee 4: "DST vectors: the same results as the single box, through the same pure
functions"). The database cannot be given a clock in 2026's DST days, so the claim path is
driven here without one: each step decides with :func:`planning.decide`, starts the run with
the claimer (which computes the next instant), and settles it with :func:`outcomes.settle`,
as ``complete`` does; every instant it fires must be the single box's vector."""

from __future__ import annotations

import functools
import random
from datetime import datetime
from typing import Any

import pytest
from msgspec.structs import replace

from scheduler.cluster.claims import Claim, Claimer
from scheduler.cluster.rows import Writes
from scheduler.engine.cache import TriggerCache
from scheduler.engine.outcomes import settle
from scheduler.engine.planning import decide
from scheduler.model import Job, JobStatus, Outcome, Run, RunResult
from scheduler.schedules import load_zone, parse_schedule
from tests.triggers.dst_vectors import OVERRIDES, VECTORS


class NoDatabase:
    """The claimer's one statement when a run starts (its ``inflight`` row), accepted."""

    async def execute(self, *_args: Any) -> None:
        return None


async def claimed_fires(raw: dict[str, Any], zone: str, created: str, n: int) -> list[str]:
    tz = load_zone(zone)
    start = datetime.fromisoformat(created)
    start = start.replace(tzinfo=tz) if start.tzinfo is None else start
    schedule, _ = parse_schedule(raw)
    job_id = int(start.timestamp() * 1000) << 22  # the id carries the creation instant
    cache = TriggerCache()
    job = Job(id=job_id, task="t", schedule=schedule, timezone=zone)
    first = cache.trigger(job).next_after(start)
    job = replace(job, scheduled=None if first is None else first.timestamp())
    claimer = Claimer(
        node_id="a", tasks={}, triggers=cache, history=10, schema="s", rng=random.Random(1)
    )
    conn: Any = NoDatabase()
    fires: list[str] = []
    while len(fires) < n and job.scheduled is not None and job.status is JobStatus.PENDING:
        now = job.scheduled  # claimed the instant it is due
        decision = decide(
            job, now, functools.partial(cache.timeline, job), busy=False, buffered=False
        )
        writes = Writes(conn, "s", history=10)
        start_run = claimer._apply(
            writes, job, decision, now=now, out=Claim(), busy=set(), buffered=set()
        )
        assert start_run is not None, decision
        begun, fire, attempt, manual = start_run
        started = await claimer._start(
            conn,
            writes,
            begun,
            fire=fire,
            attempt=attempt,
            manual=manual,
            now=now,
            epoch=1,
            lease=10.0,
        )
        fires.append(datetime.fromtimestamp(fire, tz).isoformat())
        record = Run(
            job_id=job.id,
            fire=fire,
            attempt=attempt,
            outcome=Outcome.SUCCESS,
            started=now,
            ended=now,
        )
        job, _ = settle(
            started.job,
            record,
            result=RunResult(outcome=Outcome.SUCCESS),
            cancel_reason=None,
            busy=False,
            now=now,
            rng=random.Random(1),
        )
    return fires


@pytest.mark.parametrize(
    ("raw", "zone", "created", "expected"),
    [pytest.param(*vector[1:], id=vector[0]) for vector in VECTORS + OVERRIDES if vector[4]],
)
async def test_a_node_claims_each_dst_vector_as_the_single_box_runs_it(
    raw: dict[str, Any], zone: str, created: str, expected: list[str]
) -> None:
    assert await claimed_fires(raw, zone, created, len(expected)) == expected
