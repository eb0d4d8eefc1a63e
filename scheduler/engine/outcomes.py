"""What a job becomes after a run: pure decisions, kept apart from the engine's plumbing.

- success: a one-off job is ``completed``; a recurring job waits for its next occurrence, or,
  when its rule has ended (no next occurrence), is ``completed``.
- failure (error or timeout): while retries are left and the failure is retryable, the job is
  ``pending`` again at ``now + backoff`` (at least ``Retry-After``), with the same fire and its
  attempt count; a recurring job skips the retry when its next regular run comes first. Out of
  retries, a one-off job is ``failed``; a recurring job keeps its schedule and shows the error,
  or is ``failed`` when its rule has ended.
- a run-now of a one-off job whose own run is still to come (``scheduled`` kept): whatever the
  outcome, the job waits for its own run (no retry: that run comes anyway), showing the error.
- cancelled on request: the job is ``cancelled``. Cancelled because a newer run of the same job
  started (``overlap = cancel_other``): the job carries on.
- interrupted (shutdown or crash): ``onCrash = rerun`` runs the same fire again at once (same
  fire id, same attempt number); ``abandon`` fails a one-off job and lets a recurring one wait
  for its next occurrence. Three interruptions in a row quarantine the job (``failed``), so a job
  that kills the process cannot restart-loop it.
"""

from __future__ import annotations

import random

from msgspec.structs import replace

from scheduler.engine.retry import delay_for
from scheduler.model import Job, JobStatus, JobType, OnCrash, Outcome, Run, RunResult

SHUTDOWN = "shutdown"
SUPERSEDED = "cancelled by a newer run (overlap=cancel_other)"
QUARANTINE_AFTER = 3


def settle(
    job: Job,
    record: Run,
    *,
    result: RunResult,
    cancel_reason: str | None,
    busy: bool,
    now: float,
    rng: random.Random,
) -> tuple[Job, str]:
    """The job after ``record`` ended, and the event to publish. ``busy``: other runs of the
    job are still in flight (overlap = allow). A job paused during the run stays paused
    (unless the run was a cancel): what the run left to do waits for the resume.

    With overlap = allow, the job's one ``fire`` slot may hold another fire than the one that
    ended: a retry of it waiting, or a rerun after its node died (cluster mode). That fire is
    kept: this run only counts (before, its end cleared the slot and the waiting run was lost).
    """
    if job.fire is not None and record.fire != job.fire and job.status is not JobStatus.PAUSED:
        counted = replace(job, runs=job.runs + 1, completed=now)
        return counted, "job-completed" if record.outcome is Outcome.SUCCESS else "job-failed"
    new, event = _settled(
        job, record, result=result, cancel_reason=cancel_reason, busy=busy, now=now, rng=rng
    )
    if job.status is JobStatus.PAUSED and new.status is not JobStatus.CANCELLED:
        new = replace(new, status=JobStatus.PAUSED)
    return new, event


def _settled(
    job: Job,
    record: Run,
    *,
    result: RunResult,
    cancel_reason: str | None,
    busy: bool,
    now: float,
    rng: random.Random,
) -> tuple[Job, str]:
    idle = JobStatus.RUNNING if busy else JobStatus.PENDING
    base = replace(job, runs=job.runs + 1, progress=None, pid=None, interrupted=0, completed=now)
    outcome = record.outcome
    # What the job still has to run after this one: its next occurrence (recurring), or its
    # own run when this was a run-now of a one-off. Without it, the job is done.
    more = busy or job.scheduled is not None
    if outcome is Outcome.SUCCESS:
        status = idle if more else JobStatus.COMPLETED
        return replace(base, status=status, error=None, result=record.result, fire=None), (
            "job-completed"
        )
    if outcome is Outcome.INTERRUPTED:
        kept = replace(base, interrupted=job.interrupted, completed=job.completed)
        new = interrupted(kept, fire=record.fire, attempt=record.attempt, now=now)
        return new, "job-failed" if new.status is JobStatus.FAILED else "job-cancelled"
    if outcome is Outcome.CANCELLED:
        if cancel_reason == SUPERSEDED:
            return replace(base, status=idle, error=record.error, fire=None), "job-cancelled"
        done = replace(base, status=JobStatus.CANCELLED, error=record.error, scheduled=None)
        return replace(done, fire=None), "job-cancelled"
    recurring = job.schedule.type is JobType.RECURRING
    when = None if more and not recurring else retry_at(job, record.attempt, result, now, rng)
    if when is not None:
        return replace(base, status=idle, scheduled=when, error=record.error), "job-retry"
    status = idle if more else JobStatus.FAILED
    return replace(base, status=status, error=record.error, fire=None), "job-failed"


def retry_at(
    job: Job, attempt: int, result: RunResult, now: float, rng: random.Random
) -> float | None:
    """When attempt ``attempt + 1`` runs, or None when there is none."""
    policy = job.policy.retry
    if not result.retryable or attempt > policy.max:
        return None
    delay = delay_for(policy, attempt, rng)
    if result.retry_after is not None:
        delay = max(delay, result.retry_after)
    when = now + delay
    recurring = job.schedule.type is JobType.RECURRING
    if recurring and job.scheduled is not None and when >= job.scheduled:
        return None  # the next regular run comes first and supersedes the retry
    return when


def interrupted(
    job: Job, *, fire: float, attempt: int, now: float, cause: str = "a shutdown"
) -> Job:
    """The job after a run of ``fire`` was cut short by ``cause`` (see the module policy)."""
    count = job.interrupted + 1
    if count >= QUARANTINE_AFTER:
        return replace(
            job,
            status=JobStatus.FAILED,
            fire=None,
            scheduled=None,
            completed=now,
            interrupted=count,
            error=f"quarantined: its runs were interrupted {count} times in a row",
        )
    if job.policy.on_crash is OnCrash.RERUN:
        return replace(
            job,
            status=JobStatus.PENDING,
            fire=fire,
            attempt=attempt - 1,
            scheduled=now,
            interrupted=count,
            error=f"interrupted by {cause}; rerun with the same fire id",
        )
    error = f"interrupted by {cause} (onCrash=abandon)"
    if job.schedule.type is JobType.RECURRING and job.scheduled is not None:
        return replace(job, status=JobStatus.PENDING, fire=None, interrupted=count, error=error)
    return replace(
        job,
        status=JobStatus.FAILED,
        fire=None,
        scheduled=None,
        completed=now,
        interrupted=count,
        error=error,
    )


def cut_short(job: Job, now: float, *, cause: str) -> tuple[Run, Job]:
    """A job found ``running`` with no run in flight (the process that ran it stopped): the
    record of that run (``interrupted``) and the job after it, by ``onCrash``."""
    fire = job.fire if job.fire is not None else (job.executed or now)
    attempt = max(job.attempt, 1)
    record = Run(
        job_id=job.id,
        fire=fire,
        attempt=attempt,
        outcome=Outcome.INTERRUPTED,
        started=job.executed,
        reason="the process stopped while this run was in flight",
    )
    after = interrupted(replace(job, pid=None), fire=fire, attempt=attempt, now=now, cause=cause)
    return record, after
