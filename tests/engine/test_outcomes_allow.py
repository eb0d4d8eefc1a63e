"""``outcomes.settle`` with overlap = allow: one fire's end keeps another fire's waiting run."""

from __future__ import annotations

import random

import pytest

from scheduler.engine.outcomes import settle
from scheduler.model import Job, JobStatus, Outcome, Run, RunResult, Schedule


@pytest.mark.parametrize("outcome", [Outcome.SUCCESS, Outcome.ERROR])
@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.RUNNING])
def test_the_end_of_another_fire_keeps_the_waiting_one(outcome: Outcome, status: JobStatus) -> None:
    """Fire 100 waits for its retry (or, in a cluster, its rerun after its node died) while a
    run of fire 160 ends: fire 100's run must still come (it was lost: the slot was cleared)."""
    job = Job(
        id=1,
        task="t",
        timezone="UTC",
        schedule=Schedule(every=60.0),
        status=status,
        fire=100.0,
        attempt=1,
        scheduled=170.0,
        runs=4,
    )
    record = Run(job_id=1, fire=160.0, attempt=1, outcome=outcome, started=160.0, ended=165.0)
    new, _ = settle(
        job,
        record,
        result=RunResult(outcome=outcome),
        cancel_reason=None,
        busy=False,
        now=165.0,
        rng=random.Random(1),
    )
    assert (new.fire, new.attempt, new.scheduled, new.status) == (100.0, 1, 170.0, status)
    assert new.runs == 5
