"""``outcomes.settle``: what a job becomes after a run, as named vectors of the module's policy.

Each vector is a job as the engine holds it when a run ends (running, with the run's fire and
attempt, and its next instant if it has one), the run's outcome, and the job and event after.
Instants are shown as ISO strings in UTC. The retry policy has no jitter (2 s, then 4 s, two
retries), so every retry instant is exact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from scheduler.engine.outcomes import SUPERSEDED, settle
from scheduler.model import (
    Job,
    JobStatus,
    OnCrash,
    Outcome,
    Policy,
    Progress,
    RetryPolicy,
    Run,
    RunResult,
    Schedule,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).timestamp()
FIRE = NOW - 5  # the run that just ended was for this instant
NEXT = NOW + 3600  # a recurring job's next occurrence
OWN = NOW + 86400  # a one-off job's own run, still to come after a run-now
RETRY = RetryPolicy(max=2, delay=2.0, jitter=0.0)

#: The job before the run ended, by kind: (schedule, its next instant).
KINDS: dict[str, tuple[Schedule, float | None]] = {
    "one-off": (Schedule(delay=60.0), None),
    "recurring": (Schedule(every=3600.0), NEXT),
    "ended": (Schedule(every=3600.0, end="2026-01-01T12:00"), None),  # no next occurrence
    "run-now": (Schedule(at="2026-01-02T12:00"), OWN),  # a run-now of a one-off
}


@dataclass(frozen=True)
class Ending:
    """How a run ended, and the job it ended for."""

    kind: str
    outcome: Outcome
    attempt: int = 1
    error: str | None = None
    retryable: bool = True
    retry_after: float | None = None
    cancel_reason: str | None = None
    busy: bool = False
    interrupted: int = 0
    on_crash: OnCrash = OnCrash.RERUN

    def job(self) -> Job:
        schedule, scheduled = KINDS[self.kind]
        return Job(
            id=1,
            task="t",
            timezone="UTC",
            schedule=schedule,
            status=JobStatus.RUNNING,
            policy=Policy(retry=RETRY, on_crash=self.on_crash),
            scheduled=scheduled,
            fire=FIRE,
            attempt=self.attempt,
            runs=4,
            interrupted=self.interrupted,
            error="an older error",  # so that "error None" below is settle's doing
            progress=Progress(50.0),
            pid=4242,
        )

    def settle(self) -> tuple[Job, str]:
        record = Run(
            job_id=1,
            fire=FIRE,
            attempt=self.attempt,
            outcome=self.outcome,
            started=FIRE,
            ended=NOW,
            error=self.error,
            result={"n": 1} if self.outcome is Outcome.SUCCESS else None,
        )
        result = RunResult(
            outcome=self.outcome,
            error=self.error,
            result=record.result,
            retryable=self.retryable,
            retry_after=self.retry_after,
        )
        return settle(
            self.job(),
            record,
            result=result,
            cancel_reason=self.cancel_reason,
            busy=self.busy,
            now=NOW,
            rng=random.Random(0),
        )


def iso(instant: float | None) -> str | None:
    return None if instant is None else datetime.fromtimestamp(instant, UTC).isoformat()


def after(seconds: float) -> str | None:
    return iso(NOW + seconds)


P, R, C, F, X = (
    JobStatus.PENDING,
    JobStatus.RUNNING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)
BOOM = "boom"
TIMED_OUT = "timed out after 5s"
RERUN = "interrupted by a shutdown; rerun with the same fire id"
ABANDON = "interrupted by a shutdown (onCrash=abandon)"
QUARANTINED = "quarantined: its runs were interrupted 3 times in a row"
ERROR, TIMEOUT = Outcome.ERROR, Outcome.TIMEOUT

# ending -> status, event, scheduled, fire, attempt, error, interrupted
VECTORS: list[Any] = [
    # --- success -----------------------------------------------------------------------------
    pytest.param(
        Ending("one-off", Outcome.SUCCESS),
        (C, "job-completed", None, None, 1, None, 0),
        id="success_completes_a_one_off",
    ),
    pytest.param(
        Ending("recurring", Outcome.SUCCESS),
        (P, "job-completed", iso(NEXT), None, 1, None, 0),
        id="success_leaves_a_recurring_job_waiting_for_its_next",
    ),
    pytest.param(
        Ending("ended", Outcome.SUCCESS),
        (C, "job-completed", None, None, 1, None, 0),
        id="success_completes_a_recurring_job_whose_rule_ended",
    ),
    pytest.param(
        Ending("run-now", Outcome.SUCCESS),
        (P, "job-completed", iso(OWN), None, 1, None, 0),
        id="success_of_a_run_now_leaves_the_one_off_waiting_for_its_own_run",
    ),
    pytest.param(
        Ending("one-off", Outcome.SUCCESS, busy=True),
        (R, "job-completed", None, None, 1, None, 0),
        id="success_with_other_runs_in_flight_stays_running",
    ),
    pytest.param(
        Ending("recurring", Outcome.SUCCESS, interrupted=2),
        (P, "job-completed", iso(NEXT), None, 1, None, 0),
        id="success_ends_a_run_of_interruptions",
    ),
    # --- error ---------------------------------------------------------------------------------
    pytest.param(
        Ending("one-off", ERROR, attempt=1, error=BOOM),
        (P, "job-retry", after(2), iso(FIRE), 1, BOOM, 0),
        id="error_with_retries_left_retries_the_same_fire_after_the_delay",
    ),
    pytest.param(
        Ending("one-off", ERROR, attempt=2, error=BOOM),
        (P, "job-retry", after(4), iso(FIRE), 2, BOOM, 0),
        id="error_of_the_second_attempt_waits_twice_as_long",
    ),
    pytest.param(
        Ending("one-off", ERROR, attempt=3, error=BOOM),
        (F, "job-failed", None, None, 3, BOOM, 0),
        id="error_out_of_retries_fails_a_one_off",
    ),
    pytest.param(
        Ending("one-off", ERROR, attempt=1, error=BOOM, retryable=False),
        (F, "job-failed", None, None, 1, BOOM, 0),
        id="error_that_is_not_retryable_fails_at_once",
    ),
    pytest.param(
        Ending("one-off", ERROR, attempt=1, error=BOOM, retry_after=30.0),
        (P, "job-retry", after(30), iso(FIRE), 1, BOOM, 0),
        id="retry_after_longer_than_the_delay_is_waited_for",
    ),
    pytest.param(
        Ending("one-off", ERROR, attempt=1, error=BOOM, retry_after=1.0),
        (P, "job-retry", after(2), iso(FIRE), 1, BOOM, 0),
        id="retry_after_shorter_than_the_delay_does_not_shorten_it",
    ),
    pytest.param(
        Ending("recurring", ERROR, attempt=1, error=BOOM),
        (P, "job-retry", after(2), iso(FIRE), 1, BOOM, 0),
        id="error_of_a_recurring_job_retries_before_its_next_run",
    ),
    pytest.param(
        Ending("recurring", ERROR, attempt=1, error=BOOM, retry_after=7200.0),
        (P, "job-failed", iso(NEXT), None, 1, BOOM, 0),
        id="error_of_a_recurring_job_skips_a_retry_its_next_run_comes_before",
    ),
    pytest.param(
        Ending("recurring", ERROR, attempt=3, error=BOOM),
        (P, "job-failed", iso(NEXT), None, 3, BOOM, 0),
        id="error_out_of_retries_keeps_a_recurring_schedule_and_shows_the_error",
    ),
    pytest.param(
        Ending("ended", ERROR, attempt=3, error=BOOM),
        (F, "job-failed", None, None, 3, BOOM, 0),
        id="error_out_of_retries_fails_a_recurring_job_whose_rule_ended",
    ),
    pytest.param(
        Ending("run-now", ERROR, attempt=1, error=BOOM),
        (P, "job-failed", iso(OWN), None, 1, BOOM, 0),
        id="error_of_a_run_now_is_not_retried_the_own_run_comes_anyway",
    ),
    # --- timeout -------------------------------------------------------------------------------
    pytest.param(
        Ending("one-off", TIMEOUT, attempt=1, error=TIMED_OUT),
        (P, "job-retry", after(2), iso(FIRE), 1, TIMED_OUT, 0),
        id="timeout_with_retries_left_retries_like_an_error",
    ),
    pytest.param(
        Ending("one-off", TIMEOUT, attempt=3, error=TIMED_OUT),
        (F, "job-failed", None, None, 3, TIMED_OUT, 0),
        id="timeout_out_of_retries_fails_a_one_off",
    ),
    # --- cancelled -----------------------------------------------------------------------------
    pytest.param(
        Ending("recurring", Outcome.CANCELLED, error="cancelled on request"),
        (X, "job-cancelled", None, None, 1, "cancelled on request", 0),
        id="cancelled_on_request_cancels_the_job_and_its_next_run",
    ),
    pytest.param(
        Ending("recurring", Outcome.CANCELLED, error=SUPERSEDED, cancel_reason=SUPERSEDED),
        (P, "job-cancelled", iso(NEXT), None, 1, SUPERSEDED, 0),
        id="superseded_by_a_newer_run_the_job_carries_on",
    ),
    # --- interrupted -------------------------------------------------------------------------
    pytest.param(
        Ending("one-off", Outcome.INTERRUPTED, attempt=1),
        (P, "job-cancelled", iso(NOW), iso(FIRE), 0, RERUN, 1),
        id="interrupted_rerun_runs_the_same_fire_and_attempt_again_at_once",
    ),
    pytest.param(
        Ending("one-off", Outcome.INTERRUPTED, attempt=1, on_crash=OnCrash.ABANDON),
        (F, "job-failed", None, None, 1, ABANDON, 1),
        id="interrupted_abandon_fails_a_one_off",
    ),
    pytest.param(
        Ending("recurring", Outcome.INTERRUPTED, attempt=1, on_crash=OnCrash.ABANDON),
        (P, "job-cancelled", iso(NEXT), None, 1, ABANDON, 1),
        id="interrupted_abandon_leaves_a_recurring_job_waiting_for_its_next",
    ),
    pytest.param(
        Ending("recurring", Outcome.INTERRUPTED, attempt=1, interrupted=2),
        (F, "job-failed", None, None, 1, QUARANTINED, 3),
        id="a_third_interruption_in_a_row_quarantines_the_job",
    ),
]


@pytest.mark.parametrize(("ending", "expected"), VECTORS)
def test_settle_vectors(ending: Ending, expected: tuple[Any, ...]) -> None:
    job, event = ending.settle()
    assert (
        job.status,
        event,
        iso(job.scheduled),
        iso(job.fire),
        job.attempt,
        job.error,
        job.interrupted,
    ) == expected


@pytest.mark.parametrize(("ending", "expected"), VECTORS)
def test_every_ending_counts_the_run_and_clears_progress_and_pid(
    ending: Ending, expected: tuple[Any, ...]
) -> None:
    job, _ = ending.settle()
    before = ending.job()
    assert (job.runs, job.progress, job.pid) == (before.runs + 1, None, None)
    # The end time is this run's, except after an interruption that leaves the job to run
    # again (a rerun, or a recurring job's next occurrence): it has not ended.
    rerun = job.status is JobStatus.PENDING and ending.outcome is Outcome.INTERRUPTED
    assert job.completed == (before.completed if rerun else NOW)


def test_a_success_keeps_the_runs_result() -> None:
    job, _ = Ending("one-off", Outcome.SUCCESS).settle()
    assert job.result == {"n": 1}
