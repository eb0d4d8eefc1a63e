"""What the engine knows about why a job did not run: one job's facts, gathered for
:mod:`.explain` from the job, its kept runs and its schedule (pure: the service hands in the
store's and the queue's state; nothing here reads the clock or writes).

- ``lastExpected``: the schedule's last occurrence at or before now (none before the job was
  created: those were never expected), or the fire of a run in progress or being retried.
- ``nextRun``: the job's next run: ``scheduled``; for a paused job, what its resume brings (an
  occurrence at or after ``pausedUntil``; a one-off runs at the resume), none without ``until``.
- missed and skipped runs are told while they are news: until a later occurrence has run (the
  catch-up run after a downtime does not count: it is what the downtime left).
- a DST shift is told for the next run or the last expected one when it sits on a gap or a
  fold of the job's zone, and for an occurrence the rule skipped between the two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
from msgspec.structs import replace

from scheduler.engine.queue import Standing
from scheduler.engine.recovery import Downtime
from scheduler.errors import SchedulerError
from scheduler.maintenance import Maintenance, Window
from scheduler.model import (
    FINISHED,
    DstGap,
    DstPolicy,
    Job,
    JobStatus,
    JobType,
    Outcome,
    Run,
    Schedule,
)
from scheduler.schedules import load_zone
from scheduler.triggers import Timeline, Trigger, compile_stored
from scheduler.triggers.cron import parse_cron
from scheduler.triggers.dst import (
    AT,
    REPEAT,
    RRULE,
    DstRule,
    local_wall,
    offset_changes,
    offsets_near,
    wall_spot,
    with_override,
)

#: Outcomes that record an occurrence that did not run.
NOT_RUN = frozenset({Outcome.MISSED, Outcome.SKIPPED_OVERLAP})
#: An RRULE without DTSTART may run up to a minute before the job's creation (its first run).
_BEFORE_CREATION = 60.0
_TINY = 1e-6  # far below a second (occurrences are at least a second apart)
_SAME = 1e-3  # two instants closer than this are one occurrence
_UNTIL = re.compile(r"UNTIL=([^;\s]+)", re.IGNORECASE)
_COUNT = re.compile(r"COUNT=(\d+)", re.IGNORECASE)


class MissedRuns(msgspec.Struct, frozen=True, kw_only=True):
    """The newest group of missed occurrences, from the run record that stands for them.
    ``daemon_down`` None: not known (cluster mode keeps no downtime)."""

    first: float
    last: float
    count: int
    recorded: float
    reason: str | None
    daemon_down: bool | None
    downtime: Downtime | None
    window: Window | None


class DstShift(msgspec.Struct, frozen=True, kw_only=True):
    """An occurrence the job's DST rule moved (``gap``: ``next``/``shift``), doubled or kept once
    (``fold``: ``first``/``last``/``both``), or skipped (``gap``: ``skip``; ``at`` is then when
    the gap ends)."""

    kind: str
    rule: str
    at: float
    skipped: bool


class RuleEnd(msgspec.Struct, frozen=True, kw_only=True):
    """A recurring job whose rule has no occurrence left: what bounded it, as written."""

    last: float | None
    count: int | None = None
    until: str | None = None


class Facts(msgspec.Struct, frozen=True, kw_only=True):
    """Everything :func:`scheduler.engine.explain.explain` reasons from."""

    job: Job
    now: float
    last_expected: float | None
    next_run: float | None
    scheduler_paused: bool = False
    window: Window | None = None  # holds the job now, or its next run will wait for it
    standing: Standing | None = None  # its queued run (single box only)
    missed: MissedRuns | None = None
    skipped: Run | None = None  # the newest overlap skip, while it is news
    dst: DstShift | None = None
    rule_end: RuleEnd | None = None


def gather(
    job: Job,
    now: float,
    *,
    runs: Sequence[Run],
    scheduler_paused: bool,
    windows: Maintenance | None,
    standing: Standing | None,
    downtime: Downtime | None,
    tracks_downtime: bool,
) -> Facts:
    """The facts about ``job`` at ``now``. ``tracks_downtime``: whether the caller keeps the
    span the daemon was down (``downtime`` None then means it was never down since the state
    was new); cluster mode does not."""
    trigger = _trigger(job)
    timeline = Timeline(trigger)
    last = last_expected(job, timeline, now)
    nxt = next_run(job, timeline)
    return Facts(
        job=job,
        now=now,
        last_expected=last,
        next_run=nxt,
        scheduler_paused=scheduler_paused and job.status not in FINISHED,
        window=_window(job, now, nxt, windows),
        standing=standing,
        missed=missed_runs(job, runs, timeline, downtime, windows, tracks=tracks_downtime),
        skipped=_news(runs, Outcome.SKIPPED_OVERLAP),
        dst=dst_shift(job, now, last, nxt),
        rule_end=rule_end(job, timeline, last, now),
    )


def zone_of(job: Job) -> ZoneInfo:
    """The job's zone, or UTC when it cannot be loaded (a zone tzdata no longer lists): an
    explanation is still given, as the job's document is (see :mod:`scheduler.views`)."""
    try:
        return load_zone(job.timezone)
    except (SchedulerError, OSError, ValueError):
        return ZoneInfo("UTC")


def _trigger(job: Job, schedule: Schedule | None = None) -> Trigger:
    """The job's trigger, compiled afresh for its creation as the engine compiles it (the
    engine's cache is left alone: explaining a finished job must not keep its trigger)."""
    tz = zone_of(job)
    created = datetime.fromtimestamp(job.created, tz)
    return compile_stored(schedule or job.schedule, tz, created=created)[0]


def last_expected(job: Job, timeline: Timeline, now: float) -> float | None:
    latest = timeline.latest(job.created - _BEFORE_CREATION, now)
    fire = job.fire if job.fire is not None and job.fire <= now else None
    found = [t for t in (latest, fire) if t is not None]
    return max(found) if found else None


def next_run(job: Job, timeline: Timeline) -> float | None:
    if job.status in FINISHED:
        return None
    if job.status is not JobStatus.PAUSED:
        return job.scheduled
    until, scheduled = job.paused_until, job.scheduled
    if until is None or scheduled is None:
        return None
    if scheduled >= until:
        return scheduled
    if job.type is JobType.RECURRING:  # the resume skips what it missed (no catch-up)
        return timeline.next_after(until - _TINY)
    return until


def _window(job: Job, now: float, nxt: float | None, windows: Maintenance | None) -> Window | None:
    """The window that holds the job: open now while it is due, or open when it is next due."""
    if not windows or nxt is None or job.status in FINISHED:
        return None
    at = max(nxt, now)
    spans = [w for w in windows.between(at, at, job.task) if w.start <= at < w.end]
    return max(spans, key=_end) if spans else None


def _end(window: Window) -> float:
    return window.end


def _news(runs: Sequence[Run], outcome: Outcome) -> Run | None:
    """The newest record of ``outcome``, unless a later occurrence has run since it was made."""
    record = next((r for r in reversed(runs) if r.outcome is outcome), None)
    if record is None:
        return None
    made = _recorded(record)
    if any(r.fire > made and r.outcome not in NOT_RUN for r in runs):
        return None
    return record


def _recorded(run: Run) -> float:
    return run.ended if run.ended is not None else (run.started or run.fire)


def missed_runs(
    job: Job,
    runs: Sequence[Run],
    timeline: Timeline,
    downtime: Downtime | None,
    windows: Maintenance | None,
    *,
    tracks: bool,
) -> MissedRuns | None:
    """The newest missed group while it is news. A record keeps its oldest occurrence and how
    many; its newest is the schedule's last occurrence up to when it was recorded, but for the
    one that ran then (``coalesce = latest`` runs the newest and records the older ones)."""
    record = _news(runs, Outcome.MISSED)
    if record is None:
        return None
    made = _recorded(record)
    last = record.fire
    if record.count > 1:
        ran = {r.fire for r in runs if r.outcome not in NOT_RUN}
        if job.fire is not None:
            ran.add(job.fire)
        newest = timeline.latest(record.fire, made)
        if newest is not None and any(abs(newest - t) < _SAME for t in ran):
            newest = timeline.latest(record.fire, newest - _TINY)
        if newest is not None and newest > record.fire:
            last = newest
    down = None
    if tracks:
        down = downtime is not None and downtime.covers(record.fire, last)
    return MissedRuns(
        first=record.fire,
        last=last,
        count=record.count,
        recorded=made,
        reason=record.reason,
        daemon_down=down,
        downtime=downtime if down else None,
        window=windows.held_at(job.task, last) if windows else None,
    )


# --- daylight saving time ---------------------------------------------------------------------


def dst_rule(schedule: Schedule) -> DstRule | None:
    """The DST rule of a calendar schedule (its kind's default, with the job's ``dst``); None
    for kinds that count real seconds (``delay``, ``every``, ``@every``) or run at once."""
    if schedule.delay is not None or schedule.every is not None:
        return None
    if schedule.at is not None:
        base = AT
    elif schedule.repeat is not None:
        base = REPEAT
    elif schedule.rrule is not None:
        base = RRULE
    elif schedule.cron is not None and not schedule.cron.strip().lower().startswith("@every"):
        try:
            base = parse_cron(schedule.cron, field="schedule.cron").default_dst
        except SchedulerError:
            return None  # stored by an older version and refused now: it runs no more
    else:
        return None
    return with_override(base, schedule.dst)


def dst_shift(job: Job, now: float, last: float | None, nxt: float | None) -> DstShift | None:
    """How the job's DST rule changed its next run or its last expected one (see the module
    docstring); None when neither sits on a change of offset of the job's zone."""
    rule = dst_rule(job.schedule)
    if rule is None:
        return None
    tz = zone_of(job)
    for at in (nxt, last):
        if at is None or not _near_change(at, tz):
            continue
        if wall_spot(local_wall(at, tz), tz) == "fold":
            return DstShift(kind="fold", rule=rule.fold.value, at=at, skipped=False)
        if rule.gap is not DstGap.SKIP and not _occurs(_variant(job, rule, DstGap.SKIP), at):
            return DstShift(kind="gap", rule=rule.gap.value, at=at, skipped=False)
    if rule.gap is DstGap.SKIP:
        lo = last if last is not None else job.created - _BEFORE_CREATION
        hi = nxt if nxt is not None else now
        if not offset_changes(tz, lo, hi):
            return None
        lost = Timeline(_variant(job, rule, DstGap.NEXT)).next_after(lo)
        if lost is not None and lost < hi and not _occurs(_trigger(job), lost):
            return DstShift(kind="gap", rule=DstGap.SKIP.value, at=lost, skipped=True)
    return None


def _near_change(at: float, tz: ZoneInfo) -> bool:
    """Whether the zone's offset changes within about a day of ``at`` (cheap: no trigger is
    compiled for the runs of the other 363 days)."""
    low, high = offsets_near(at, tz)
    return low != high


def _variant(job: Job, rule: DstRule, gap: DstGap) -> Trigger:
    """The job's trigger with another gap rule (the fold rule kept): where the two disagree,
    the gap rule made the difference."""
    schedule = replace(job.schedule, dst=DstPolicy(gap=gap, fold=rule.fold))
    return _trigger(job, schedule)


def _occurs(trigger: Trigger, at: float) -> bool:
    found = Timeline(trigger).next_after(at - _SAME)
    return found is not None and abs(found - at) < _SAME


# --- rules that ended -------------------------------------------------------------------------


def rule_end(job: Job, timeline: Timeline, last: float | None, now: float) -> RuleEnd | None:
    """A finished recurring job whose rule, bounded by a count or an end, has no occurrence
    after now (not one cancelled; a rule without a bound that stopped is no rule that ended)."""
    finished = job.status is JobStatus.COMPLETED or job.status is JobStatus.FAILED
    if job.type is not JobType.RECURRING or not finished:
        return None
    if timeline.next_after(now) is not None:
        return None
    count, until = _bound(job.schedule)
    if count is None and until is None:
        return None
    return RuleEnd(last=last, count=count, until=until)


def _bound(schedule: Schedule) -> tuple[int | None, str | None]:
    """What bounds a rule, as written: its count and its end (``until``, ``end``)."""
    if schedule.repeat is not None:
        return schedule.repeat.count, schedule.repeat.until
    if schedule.rrule is not None:
        count = _COUNT.search(schedule.rrule)
        until = _UNTIL.search(schedule.rrule)
        return (int(count[1]) if count else None), (until[1] if until else None)
    return None, schedule.end
