"""What to do with a job whose time has come: one pure decision, for the single box's engine
and for a cluster node's claim alike.

:func:`decide` reads the job, the instant, the job's occurrences and whether a run of it is in
flight (or queued), and returns a :class:`Decision`; the caller applies it to its own storage
(the in-memory store and the ready queue, or a database transaction). The policies:

- a paused job whose ``until`` came resumes (:func:`resumed`);
- a pending job with a ``fire`` is a retry of that fire;
- a recurring job plans its occurrence with the misfire policy (:mod:`.misfire`): missed
  occurrences are one record; with a run of it in flight its overlap policy decides: ``skip``
  records a skipped run, ``buffer_one`` keeps one occurrence for when the run ends,
  ``cancel_other`` stops the run in flight and keeps the new occurrence, ``coalesce = all``
  holds the job until the run ends; a rule with no next occurrence ends the job;
- a one-off job runs if within its grace (else it failed, missed), or, while a run-now of it is
  in flight, waits (held) for that run to end;
- a job due inside an open maintenance window of its task (:mod:`scheduler.maintenance`) is
  deferred to the window's end, its ``scheduled`` unchanged, and decided again then: a
  recurring job's occurrences are then planned by its misfire policy like any other late ones
  (the missed record names the window), a one-off runs, the time inside windows not counting
  against its grace, and a retry starts its attempt. Only a paused job's resume goes ahead.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from msgspec.structs import replace

from scheduler.engine.misfire import Timeline, plan_fire, plan_one_off
from scheduler.maintenance import Maintenance, Window
from scheduler.model import Coalesce, Job, JobStatus, JobType, Outcome, Overlap, Run
from scheduler.schedules import load_zone


class Action(enum.Enum):
    RESUME = "resume"  # a paused job's ``until`` came: see :func:`resumed`
    RETRY = "retry"  # start the next attempt of ``fire``
    RUN = "run"  # start ``fire``; the job's next instant is then ``nxt``
    RESCHEDULE = "reschedule"  # nothing runs now; the next instant is ``nxt`` (None: ended)
    HOLD = "hold"  # due again once the job's runs in flight have ended
    BUFFER = "buffer"  # keep ``fire`` for when the run in flight ends; next instant ``nxt``
    CANCEL_OTHER = "cancel_other"  # as BUFFER, and stop the run in flight
    SKIP = "skip"  # record ``fire`` as skipped (overlap); next instant ``nxt``
    MISSED = "missed"  # a one-off later than its grace: it fails
    DEFER = "defer"  # inside a maintenance window (``window``): decide again at ``nxt``, its end


class Missed(NamedTuple):
    first: float
    last: float
    runs: int  # how many occurrences (``count`` is a tuple's method)
    exact: bool
    window: Window | None = None  # the maintenance window that held them back, if one did


class Decision(NamedTuple):
    action: Action
    fire: float | None = None
    nxt: float | None = None
    missed: Missed | None = None
    window: Window | None = None  # DEFER: the open maintenance window


def decide(
    job: Job,
    now: float,
    timeline: Callable[[], Timeline],
    *,
    busy: bool,
    buffered: bool,
    maintenance: Maintenance | None = None,
) -> Decision:
    """The decision for ``job``, due at ``now``. ``timeline`` gives the job's occurrences
    (called only for a recurring job); ``busy``: a run of it is in flight or queued;
    ``buffered``: an occurrence is already kept for when that run ends; ``maintenance``: the
    configured windows (None when there are none: then nothing is looked up)."""
    if job.status is JobStatus.PAUSED:
        return Decision(Action.RESUME)
    if maintenance is not None:
        window = maintenance.open_for(job.task, now)
        if window is not None:
            return Decision(Action.DEFER, nxt=window.end, window=window)
    if job.fire is not None and job.status is JobStatus.PENDING:
        return Decision(Action.RETRY, fire=job.fire)
    if job.schedule.type is JobType.RECURRING:
        return _recurring(job, now, timeline(), busy=busy, buffered=buffered, windows=maintenance)
    if busy:
        return Decision(Action.HOLD)  # a run-now of it is in flight: its own run comes after
    fire = job.scheduled if job.scheduled is not None else now
    if plan_one_off(fire, now, job.policy.misfire) or _waited_out(job, fire, now, maintenance):
        return Decision(Action.RUN, fire=fire)
    return Decision(Action.MISSED, fire=fire, missed=Missed(fire, fire, 1, True))


def _waited_out(job: Job, fire: float, now: float, maintenance: Maintenance | None) -> bool:
    """Whether a one-off past its grace is within it once the time it spent inside
    maintenance windows is taken off (a window is deliberate: it does not make a job miss)."""
    grace = job.policy.misfire.grace
    if maintenance is None or grace is None:
        return False
    return now - fire - maintenance.covered(job.task, fire, now) <= grace


def _recurring(
    job: Job,
    now: float,
    timeline: Timeline,
    *,
    busy: bool,
    buffered: bool,
    windows: Maintenance | None,
) -> Decision:
    assert job.scheduled is not None
    plan = plan_fire(job.scheduled, now, timeline, job.policy.misfire)
    missed = None
    if plan.missed_count and plan.missed_first is not None and plan.missed_last is not None:
        held = None if windows is None else windows.held_at(job.task, plan.missed_last)
        missed = Missed(plan.missed_first, plan.missed_last, plan.missed_count, plan.exact, held)
    if plan.run is None:
        return Decision(Action.RESCHEDULE, nxt=plan.next, missed=missed)
    policy = job.policy.overlap
    if not busy or policy is Overlap.ALLOW:
        return Decision(Action.RUN, fire=plan.run, nxt=plan.next, missed=missed)
    if job.policy.misfire.coalesce is Coalesce.ALL:
        return Decision(Action.HOLD, missed=missed)
    if policy is Overlap.CANCEL_OTHER:
        return Decision(Action.CANCEL_OTHER, fire=plan.run, nxt=plan.next, missed=missed)
    if policy is Overlap.BUFFER_ONE and not buffered:
        return Decision(Action.BUFFER, fire=plan.run, nxt=plan.next, missed=missed)
    return Decision(Action.SKIP, fire=plan.run, nxt=plan.next, missed=missed)


def resumed(
    job: Job,
    now: float,
    next_after: Callable[[float], float | None],
    *,
    catch_up: bool,
    in_flight: bool,
) -> Job:
    """A paused job, resumed. Without ``catch_up`` missed occurrences are skipped silently (the
    pause was deliberate); with it, one catch-up run follows the misfire policy. A job whose run
    is still in flight is ``running`` again. A job with nothing left to run (a one-off whose run
    ended while it was paused, a rule that has ended) finishes (:func:`ended`)."""
    scheduled = job.scheduled
    if job.type is JobType.RECURRING and scheduled is not None and scheduled < now and not catch_up:
        scheduled = next_after(now - 1e-6)
    back = replace(
        job,
        status=JobStatus.RUNNING if in_flight else JobStatus.PENDING,
        scheduled=scheduled,
        paused_until=None,
        pause_reason=None,
        paused_by=None,
    )
    if scheduled is None and not in_flight and job.fire is None:
        return ended(back, now)
    return back


def ended(job: Job, now: float) -> Job:
    """A job with nothing left to run: ``completed``, or ``failed`` when its last run failed."""
    status = JobStatus.FAILED if job.error is not None else JobStatus.COMPLETED
    return replace(job, status=status, scheduled=None, fire=None, completed=now)


def missed_reason(job: Job, missed: Missed) -> str:
    """The reason recorded for a group of missed occurrences (instants in the job's zone); an
    inexact count (too many to count within the budget, see :mod:`.misfire`) is stated as
    "at least"; occurrences a maintenance window held back end with the window, as in
    ``(maintenance window backup until 2026-12-04T03:00:00+09:00)``."""
    zone = load_zone(job.timezone)
    count = missed.runs
    what = f"{'' if missed.exact else 'at least '}{count} run{'s' if count > 1 else ''} missed"
    first, last = (datetime.fromtimestamp(t, zone).isoformat() for t in (missed.first, missed.last))
    span = "" if missed.first == missed.last else f" from {first} to {last}"
    held = "" if missed.window is None else f" ({missed.window.describe()})"
    return f"{what}{span} (coalesce={job.policy.misfire.coalesce}){held}"


def missed_record(job: Job, missed: Missed, now: float) -> Run:
    """One record, at ``now``, for a group of missed occurrences of ``job``."""
    return Run(
        job_id=job.id,
        fire=missed.first,
        attempt=0,
        outcome=Outcome.MISSED,
        reason=missed_reason(job, missed),
        started=now,
        ended=now,
        lateness=now - missed.first,
        count=missed.runs,
    )


def skipped_record(job_id: int, fire: float, now: float) -> Run:
    """The record of an occurrence skipped because a run of the job was still running."""
    return Run(
        job_id=job_id,
        fire=fire,
        attempt=0,
        outcome=Outcome.SKIPPED_OVERLAP,
        reason="the previous run was still running (overlap=skip)",
        started=now,
        ended=now,
    )


def started(job: Job, *, fire: float, attempt: int, now: float, nxt: float | None) -> Job:
    """The job as its run of ``fire`` (attempt ``attempt``) starts at ``now``; ``nxt`` is its
    next instant."""
    return replace(
        job,
        status=JobStatus.RUNNING,
        fire=fire,
        attempt=attempt,
        executed=now,
        scheduled=nxt,
        progress=None,
        pid=None,
        resume_grid=None,
    )
