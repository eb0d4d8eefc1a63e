"""Why a job did not run, or will run late: ``GET /api/jobs/{id}/explain`` (issue 15).

Pure: :func:`explain` turns one job's facts (:mod:`.explain_facts`) into reasons, each with a
stable :class:`Code`, a one-sentence ``message`` and its facts as ``details`` (instants ISO 8601
in the job's zone, as the API renders them, since the messages quote them), and a one-sentence
``summary`` naming the first reason. The reasons, in the order the summary picks from (what
stops a job most comes first)::

    quarantined, rule_ended, no_next_run, paused, scheduler_paused, maintenance,
    rate_limited, waiting_for_slot, retry_backoff, misfired, overlap_skipped, dst_shifted

The last three tell what happened to runs that were due, and a maintenance window ahead what
will happen (the summary says "..., but ..."); the others what holds the job now ("... because
..."). A job simply waiting for its next time has no reason; its summary says when.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec

from scheduler.engine.explain_facts import DstShift, Facts, MissedRuns, RuleEnd, zone_of
from scheduler.engine.outcomes import QUARANTINE_AFTER
from scheduler.ids import encode
from scheduler.model import FINISHED, Job, JobStatus, JobType, Run
from scheduler.triggers.dst import local_wall, offset_changes
from scheduler.views import duration_text, iso


class Code(enum.StrEnum):
    """The stable codes of the reasons, in the order the summary picks from."""

    QUARANTINED = "quarantined"
    RULE_ENDED = "rule_ended"
    NO_NEXT_RUN = "no_next_run"
    PAUSED = "paused"
    SCHEDULER_PAUSED = "scheduler_paused"
    MAINTENANCE = "maintenance"
    RATE_LIMITED = "rate_limited"
    WAITING_FOR_SLOT = "waiting_for_slot"
    RETRY_BACKOFF = "retry_backoff"
    MISFIRED = "misfired"
    OVERLAP_SKIPPED = "overlap_skipped"
    DST_SHIFTED = "dst_shifted"


class Reason(msgspec.Struct, frozen=True, kw_only=True):
    """One reason. ``cause`` is the clause the summary uses (``it is paused until ...``);
    ``holds``: it is what holds the job now ("because"), not what happened or will ("but")."""

    code: Code
    message: str
    cause: str
    details: dict[str, Any]
    holds: bool = True


class Explanation(msgspec.Struct, frozen=True, kw_only=True):
    job_id: int
    status: JobStatus
    summary: str
    last_expected: float | None
    next_run: float | None
    timezone: str
    reasons: tuple[Reason, ...]

    def document(self) -> dict[str, Any]:
        """The JSON document of the API (see docs/api.md)."""
        zone = self.timezone
        return {
            "jobId": encode(self.job_id),
            "status": self.status.value,
            "summary": self.summary,
            "lastExpected": iso(self.last_expected, zone),
            "nextRun": iso(self.next_run, zone),
            "timezone": zone,
            "reasons": [
                {"code": r.code.value, "message": r.message, "details": r.details}
                for r in self.reasons
            ],
        }


def explain(facts: Facts) -> Explanation:
    job = facts.job
    found = (build(facts) for build in _BUILDERS)
    reasons = tuple(reason for reason in found if reason is not None)
    return Explanation(
        job_id=job.id,
        status=job.status,
        summary=_summary(facts, reasons),
        last_expected=facts.last_expected,
        next_run=facts.next_run,
        timezone=job.timezone,
        reasons=reasons,
    )


def _summary(facts: Facts, reasons: tuple[Reason, ...]) -> str:
    """One sentence: the job, where it stands, and the first reason's cause."""
    label = f"Job {facts.job.display_name!r} {_state(facts)}"
    if not reasons:
        return f"{label}."
    first, more = reasons[0], len(reasons) - 1
    holds = first.holds and facts.job.status is not JobStatus.RUNNING
    joint = " because " if holds else ", but "
    extra = f" (and {_count(more, 'more reason')} below)" if more else ""
    return f"{label}{joint}{first.cause}{extra}."


def _state(facts: Facts) -> str:
    job, nxt = facts.job, facts.next_run
    if job.status is JobStatus.RUNNING:
        return "is running"
    if nxt is None:
        paused = job.status is JobStatus.PAUSED
        return "will not run until it is resumed" if paused else "will not run again"
    when = _at(job, nxt)
    return f"was due at {when} and has not started" if nxt <= facts.now else f"runs next at {when}"


# --- the reasons ----------------------------------------------------------------------------


def _quarantined(facts: Facts) -> Reason | None:
    job = facts.job
    if job.status is not JobStatus.FAILED or job.interrupted < QUARANTINE_AFTER:
        return None
    n = job.interrupted
    return Reason(
        code=Code.QUARANTINED,
        message=(
            f"Quarantined at {_at(job, job.completed)}: its last {n} runs were interrupted in a "
            "row (the process stopped while they ran), so it does not run again until retried."
        ),
        cause=f"it was quarantined after {n} interrupted runs in a row",
        details={"interruptions": n, "at": iso(job.completed, job.timezone)},
    )


def _rule_ended(facts: Facts) -> Reason | None:
    end, job = facts.rule_end, facts.job
    if end is None or _is_quarantined(job):
        return None
    bound = _bound_text(end)
    last = "" if end.last is None else f"; its last occurrence was at {_at(job, end.last)}"
    return Reason(
        code=Code.RULE_ENDED,
        message=f"Its rule has ended: {bound} is reached{last}.",
        cause=f"its rule has ended ({bound})",
        details={"count": end.count, "until": end.until, "last": iso(end.last, job.timezone)},
    )


def _bound_text(end: RuleEnd) -> str:
    parts = []
    if end.count is not None:
        parts.append(f"its count of {_count(end.count, 'run')}")
    if end.until is not None:
        parts.append(f"its end {end.until}")
    return " and ".join(parts)


def _no_next_run(facts: Facts) -> Reason | None:
    job = facts.job
    if facts.next_run is not None or job.status is JobStatus.PAUSED:
        return None
    if _is_quarantined(job) or facts.rule_end is not None or job.status is JobStatus.RUNNING:
        return None
    at = _at(job, job.completed)
    error = f" ({job.error})" if job.error else ""
    if job.status is JobStatus.CANCELLED:
        text = f"it was cancelled at {at}"
    elif job.status in FINISHED and job.type is not JobType.RECURRING:
        text = f"a one-off job runs once, and it {job.status.value} at {at}{error}"
    elif job.status in FINISHED:
        text = f"it {job.status.value} at {at} and its schedule has no run left{error}"
    else:
        text = f"the job is {job.status.value} with no scheduled time"
    return Reason(
        code=Code.NO_NEXT_RUN,
        message=f"Nothing is scheduled: {text}.",
        cause=text,
        details={"status": job.status.value, "at": iso(job.completed, job.timezone)},
    )


def _paused(facts: Facts) -> Reason | None:
    job = facts.job
    if job.status is not JobStatus.PAUSED:
        return None
    until = ""
    if job.paused_until is not None:
        until = f" until {_at(job, job.paused_until)}"
    why = f" (reason: {job.pause_reason!r})" if job.pause_reason else ""
    by = f" by {job.paused_by}" if job.paused_by else ""
    return Reason(
        code=Code.PAUSED,
        message=(
            f"It was paused{by}{until or ' until it is resumed'}{why}; the occurrences due "
            "meanwhile are skipped when it resumes, unless resumed with catchUp."
        ),
        cause=f"it was paused{by}{until}{why}",
        details={
            "by": job.paused_by,
            "reason": job.pause_reason,
            "until": iso(job.paused_until, job.timezone),
        },
    )


def _scheduler_paused(facts: Facts) -> Reason | None:
    if not facts.scheduler_paused:
        return None
    return Reason(
        code=Code.SCHEDULER_PAUSED,
        message=(
            "The whole scheduler is paused: no run starts until it is resumed "
            "(POST /api/scheduler/resume)."
        ),
        cause="the whole scheduler is paused",
        details={},
    )


def _maintenance(facts: Facts) -> Reason | None:
    window, job, nxt = facts.window, facts.job, facts.next_run
    if window is None or nxt is None:
        return None
    end = _at(job, window.end)
    if nxt <= facts.now:
        message = (
            f"Maintenance window {window.name!r} is open until {end}: runs of task "
            f"{job.task!r} do not start inside it, so this one waits until it closes."
        )
        cause = f"maintenance window {window.name!r} is open until {end}"
    else:
        message = (
            f"Its next run at {_at(job, nxt)} falls in maintenance window {window.name!r} "
            f"(from {_at(job, window.start)} to {end}), so it waits until the window closes."
        )
        cause = f"its next run falls in maintenance window {window.name!r}, open until {end}"
    return Reason(
        code=Code.MAINTENANCE,
        message=message,
        cause=cause,
        holds=nxt <= facts.now,
        details={
            "window": window.name,
            "from": iso(window.start, job.timezone),
            "until": iso(window.end, job.timezone),
        },
    )


def _rate_limited(facts: Facts) -> Reason | None:
    standing, job = facts.standing, facts.job
    if standing is None or standing.limit != "rate" or standing.until is None:
        return None
    per = duration_text(standing.per or 0.0)
    until = _at(job, standing.until)
    return Reason(
        code=Code.RATE_LIMITED,
        message=(
            f"Task {job.task!r} starts at most {_count(standing.size, 'run')} per {per} (its "
            f"rate limit), and that many have started: this run waits until {until}."
        ),
        cause=f"task {job.task!r} has reached its rate limit until {until}",
        details={
            "task": job.task,
            "until": iso(standing.until, job.timezone),
            "count": standing.size,
            "per": standing.per,
            "ahead": standing.ahead,
        },
    )


def _waiting_for_slot(facts: Facts) -> Reason | None:
    standing, job = facts.standing, facts.job
    if standing is None or standing.limit not in ("global", "task"):
        return None
    ahead = _count(standing.ahead, "run")
    if standing.limit == "global":
        held = f"every run slot is taken (max_concurrency {standing.size})"
        details: dict[str, Any] = {"limit": "global"}
    else:
        held = f"every slot of task {job.task!r} is taken (its concurrency {standing.size})"
        details = {"limit": "task", "task": job.task}
    return Reason(
        code=Code.WAITING_FOR_SLOT,
        message=f"It waits for a free slot: {held}, and {ahead} queued ahead of it.",
        cause=f"{held}, with {ahead} ahead of it",
        details={
            **details,
            "ahead": standing.ahead,
            "running": standing.used,
            "max": standing.size,
        },
    )


def _retry_backoff(facts: Facts) -> Reason | None:
    job = facts.job
    if job.status is not JobStatus.PENDING or job.fire is None or job.scheduled is None:
        return None
    attempt = job.attempt + 1
    at = _at(job, job.scheduled)
    error = f": {job.error}" if job.error else ""
    return Reason(
        code=Code.RETRY_BACKOFF,
        message=(
            f"Attempt {attempt} of its run for {_at(job, job.fire)} is due at {at}, after its "
            f"retry backoff (attempt {job.attempt} ended{error})."
        ),
        cause=(
            f"attempt {job.attempt} failed and attempt {attempt} waits for its backoff until {at}"
        ),
        details={
            "attempt": attempt,
            "at": iso(job.scheduled, job.timezone),
            "fire": iso(job.fire, job.timezone),
            "maxRetries": job.policy.retry.max,
            "error": job.error,
        },
    )


def _misfired(facts: Facts) -> Reason | None:
    missed, job = facts.missed, facts.job
    if missed is None:
        return None
    grace = job.policy.misfire.grace
    what = (
        f"its run of {_at(job, missed.first)} was missed"
        if missed.count == 1
        else f"{missed.count} runs from {_at(job, missed.first)} to {_at(job, missed.last)} "
        "were missed"
    )
    cause = f"{what} {_missed_because(job, missed)}"
    zone = job.timezone
    details: dict[str, Any] = {
        "from": iso(missed.first, zone),
        "to": iso(missed.last, zone),
        "count": missed.count,
        "daemonDown": missed.daemon_down,
        "grace": grace,
        "coalesce": job.policy.misfire.coalesce.value,
        "recordedAt": iso(missed.recorded, zone),
    }
    if missed.downtime is not None:
        details["downSince"] = iso(missed.downtime.since, zone)
        details["downUntil"] = iso(missed.downtime.until, zone)
    if missed.window is not None:
        details["window"] = missed.window.name
    policy = f"misfire grace {'none' if grace is None else duration_text(grace)}"
    return Reason(
        code=Code.MISFIRED,
        message=f"{cause[0].upper()}{cause[1:]} ({policy}, coalesce={details['coalesce']}).",
        cause=cause,
        details=details,
        holds=False,
    )


def _missed_because(job: Job, missed: MissedRuns) -> str:
    if missed.downtime is not None:
        down = missed.downtime
        return f"because the daemon was down from {_at(job, down.since)} to {_at(job, down.until)}"
    if missed.window is not None:
        return f"because maintenance window {missed.window.name!r} held them"
    grace = job.policy.misfire.grace
    if grace is not None and missed.count == 1:
        return f"because it was later than its misfire grace of {duration_text(grace)}"
    return "because a newer occurrence was already due when they were planned"


def _overlap_skipped(facts: Facts) -> Reason | None:
    run, job = facts.skipped, facts.job
    if run is None:
        return None
    cause = _skip_text(job, run)
    return Reason(
        code=Code.OVERLAP_SKIPPED,
        message=f"{cause[0].upper()}{cause[1:]}.",
        cause=cause,
        details={"at": iso(run.fire, job.timezone), "overlap": job.policy.overlap.value},
        holds=False,
    )


def _skip_text(job: Job, run: Run) -> str:
    return (
        f"its run of {_at(job, run.fire)} was skipped because the previous run was still "
        f"running (overlap={job.policy.overlap.value})"
    )


def _dst_shifted(facts: Facts) -> Reason | None:
    shift, job = facts.dst, facts.job
    if shift is None:
        return None
    change = _change_text(job, shift)
    at = _at(job, shift.at)
    if shift.skipped:
        cause = f"its DST rule gap=skip skips its run on {_day(job, shift.at)}"
        message = (
            f"Its run on {_day(job, shift.at)} is skipped: {change}, and its rule is gap=skip."
        )
    elif shift.kind == "gap":
        how = "when the gap ends" if shift.rule == "next" else "shifted by the gap's length"
        cause = f"its DST rule gap={shift.rule} moved its run to {at}"
        message = f"Its run at {at} was moved by its DST rule gap={shift.rule} ({how}): {change}."
    else:
        runs = {"first": "once, at the first", "last": "once, at the second", "both": "at both"}
        cause = f"its run at {at} sits on a DST fold, where its rule fold={shift.rule} applies"
        message = (
            f"Its run at {at} sits on a DST fold ({change}): fold={shift.rule} runs it "
            f"{runs[shift.rule]}."
        )
    return Reason(
        code=Code.DST_SHIFTED,
        message=message,
        cause=cause,
        details={
            "kind": shift.kind,
            "rule": shift.rule,
            "at": iso(shift.at, job.timezone),
            "skipped": shift.skipped,
        },
        holds=False,
    )


def _change_text(job: Job, shift: DstShift) -> str:
    """``the clocks go forward from 02:00 to 03:00 on 2026-03-29 in Europe/Berlin``."""
    tz = zone_of(job)
    changes = offset_changes(tz, shift.at - 2 * _DAY, shift.at + 2 * _DAY)
    if not changes:
        return f"the clocks change around {_day(job, shift.at)} in {job.timezone}"
    change = min(changes, key=lambda c: abs(c.at - shift.at))
    after = local_wall(change.at, tz)
    before = after - (change.after - change.before)
    way = "forward" if change.after > change.before else "back"
    return (
        f"the clocks go {way} from {before:%H:%M} to {after:%H:%M} on {after:%Y-%m-%d} "
        f"in {job.timezone}"
    )


# --- helpers ----------------------------------------------------------------------------------

_DAY = 86400.0

_BUILDERS = (
    _quarantined,
    _rule_ended,
    _no_next_run,
    _paused,
    _scheduler_paused,
    _maintenance,
    _rate_limited,
    _waiting_for_slot,
    _retry_backoff,
    _misfired,
    _overlap_skipped,
    _dst_shifted,
)


def _is_quarantined(job: Job) -> bool:
    return job.status is JobStatus.FAILED and job.interrupted >= QUARANTINE_AFTER


def _at(job: Job, instant: float | None) -> str:
    return iso(instant, job.timezone) or "an unknown time"


def _day(job: Job, instant: float) -> str:
    return datetime.fromtimestamp(instant, zone_of(job)).strftime("%Y-%m-%d")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
