"""Missed-run alerts, the dead man's switch: ``job_missed`` when occurrences of a recurring job
did not run, ``job_recovered`` when it next runs on time. The :class:`~.alerts.Alerter` feeds
this module the run records the engine writes and sends what it decides.

What counts as missed: a ``missed`` record (later than its misfire grace, coalesced into a
later occurrence, the daemon down across it, a maintenance window that held it back; ``count``
says how many occurrences it stands for) or a ``skipped_overlap`` one, of a *recurring* job. A
one-off that missed its time fails, and ``job_failed`` already covers it: it is not counted
here, so it never alerts twice.

Policy, per job:

- The first missed record opens the job's window (``[alerts] window`` long, from that record)
  and sends ``job_missed`` at once, with the count so far. Later missed records inside the
  window only add to the count: at most one ``job_missed`` per job per window, and no summary
  when the window ends (the count so far travels in ``job_recovered``). A miss after the window
  opens a new one and alerts again.
- On time: a run record of an occurrence newer than the last missed one, other than missed or
  skipped, of a first attempt (a retry's start includes its backoff; a run-now has no
  schedule), that started within the job's misfire grace, or within :data:`ON_TIME` when it has
  none. The first such run after a ``job_missed`` sends ``job_recovered``, once; a job that
  never alerted sends none.

Memory is bounded: at most :data:`MISSED_MEMORY` jobs are tracked, the least recently missed
forgotten first (counted and logged; a forgotten job's ``job_missed`` not sent yet is not sent,
its ``job_recovered`` is not owed). Each check pass also drops the jobs that were deleted and
the ones that recovered once their window has ended, so a quiet daemon tracks nothing. Alerts
wait in :attr:`MissedRuns.due` (one entry per job) and the alerter queues them while its
queue is less than half full, so a burst of a thousand jobs missing at once (after a restart)
drops no alert and never crowds out a ``job_failed``.
"""

from __future__ import annotations

import enum
import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, NamedTuple

from scheduler.durations import format_duration
from scheduler.model import Job, Outcome, Run
from scheduler.views import iso

log = logging.getLogger("scheduler.alerts")

#: Jobs tracked at most (least recently missed forgotten first): 10,000 jobs missing at once is
#: an outage, and one alert per job beyond that would bury it.
MISSED_MEMORY: Final = 10_000
#: The lateness that is still "on time" for a job without a misfire grace (seconds).
ON_TIME: Final = 60.0
#: The outcomes that mean an occurrence did not run.
MISSING: Final = frozenset({Outcome.MISSED, Outcome.SKIPPED_OVERLAP})
# "3 runs missed from <ISO> to <ISO> (coalesce=...)": the span planning writes in the reason.
_SPAN = re.compile(r" from (\S+) to (\S+) \(")
_WINDOW = re.compile(r"\((maintenance window .+)\)$")


class Cause(enum.StrEnum):
    """Why the occurrences did not run, as the alert's ``cause`` says."""

    DAEMON_DOWN = "daemon_down"  # due before this daemon started: it was not running
    MISFIRE = "misfire"  # later than its grace, or coalesced into a later occurrence
    OVERLAP = "overlap"  # the previous run was still running (overlap = skip)
    MAINTENANCE = "maintenance"  # a maintenance window held them back


class Change(enum.Enum):
    MISSED = "missed"
    RECOVERED = "recovered"


class Notice(NamedTuple):
    """One alert to send: the job as tracked and what its window holds."""

    change: Change
    job: Job
    runs: int  # occurrences missed in the window (up to recovery, for RECOVERED); not
    # ``count``: that is a tuple's method
    first: float  # the oldest missed occurrence in the window
    last: float  # the newest
    reason: str  # the newest missed record's reason, as the job's history shows it
    cause: Cause


class _State(enum.Enum):
    DUE = "due"  # job_missed to be queued
    ALERTED = "alerted"  # job_missed queued: job_recovered owed
    RECOVERING = "recovering"  # job_recovered to be queued
    RECOVERED = "recovered"  # nothing owed; kept until the window ends (one alert per window)


@dataclass(slots=True)
class _Tracked:
    job: Job
    start: float  # the window's start: when its first missed record came
    count: int
    first: float
    last: float
    reason: str
    cause: Cause
    state: _State = _State.DUE
    back: bool = False  # on time again before its job_missed could be queued


class MissedRuns:
    """Per-job windows of missed occurrences, and the alerts they owe (see the module)."""

    def __init__(self, *, window: float, since: float, memory: int = MISSED_MEMORY) -> None:
        self.window = window
        self.since = since  # when this daemon started: anything due before it, it missed down
        self.memory = memory
        self.tracked: OrderedDict[int, _Tracked] = OrderedDict()
        self.due: OrderedDict[int, None] = OrderedDict()  # jobs with an alert to queue
        self.forgotten = 0  # jobs forgotten over the cap
        self.unsent = 0  # of which their job_missed was not sent yet

    def observe(self, job: Job, run: Run, now: float) -> None:
        """Note one run record of the recurring ``job``; the alerts it calls for wait in
        :attr:`due` for :meth:`take`."""
        if run.outcome in MISSING:
            self._missed(job, run, now)
            return
        tracked = self.tracked.get(job.id)
        if tracked is None or run.fire <= tracked.last or not on_time(job, run):
            return
        if tracked.state is _State.DUE:
            tracked.back = True
        elif tracked.state is _State.ALERTED:
            tracked.state = _State.RECOVERING
            self.due[job.id] = None

    def _missed(self, job: Job, run: Run, now: float) -> None:
        first, last = missed_span(run)
        reason = run.reason or ""
        tracked = self.tracked.get(job.id)
        if tracked is not None and now < tracked.start + self.window:
            tracked.job, tracked.count, tracked.reason = job, tracked.count + run.count, reason
            tracked.first, tracked.last = min(tracked.first, first), max(tracked.last, last)
            self.tracked.move_to_end(job.id)
            return
        cause = self._cause(run, first)
        self.tracked[job.id] = _Tracked(job, now, run.count, first, last, reason, cause)
        self.tracked.move_to_end(job.id)
        self.due[job.id] = None
        while len(self.tracked) > self.memory:
            self._forget()

    def _forget(self) -> None:
        job_id, tracked = self.tracked.popitem(last=False)
        self.due.pop(job_id, None)
        self.forgotten += 1
        if tracked.state is _State.DUE:
            self.unsent += 1
        if self.forgotten == 1 or self.forgotten % 1000 == 0:
            log.warning(
                "missed-run alerts: more than %d jobs missing at once: %d forgotten so far, "
                "the least recently missed first (%d before their job_missed was sent)",
                self.memory,
                self.forgotten,
                self.unsent,
            )

    def _cause(self, run: Run, first: float) -> Cause:
        if run.outcome is Outcome.SKIPPED_OVERLAP:
            return Cause.OVERLAP
        if _WINDOW.search(run.reason or ""):
            return Cause.MAINTENANCE
        return Cause.DAEMON_DOWN if first < self.since else Cause.MISFIRE

    def take(self) -> list[Notice]:
        """The alerts of the next job in :attr:`due`: its ``job_missed`` (and its
        ``job_recovered`` too if it ran on time again meanwhile), or its ``job_recovered``."""
        while self.due:
            job_id, _ = self.due.popitem(last=False)
            tracked = self.tracked.get(job_id)
            if tracked is None:
                continue
            notices = []
            if tracked.state is _State.DUE:
                tracked.state = _State.ALERTED
                notices.append(_notice(Change.MISSED, tracked))
            if tracked.state is _State.RECOVERING or (
                tracked.state is _State.ALERTED and tracked.back
            ):
                tracked.state = _State.RECOVERED
                notices.append(_notice(Change.RECOVERED, tracked))
            if notices:
                return notices
        return []

    def prune(self, now: float, exists: Callable[[int], bool]) -> None:
        """Forget the jobs deleted since, and those recovered whose window has ended (one
        pass over at most :data:`MISSED_MEMORY` entries, on each check)."""
        gone = [
            job_id
            for job_id, tracked in self.tracked.items()
            if not exists(job_id)
            or (tracked.state is _State.RECOVERED and now >= tracked.start + self.window)
        ]
        for job_id in gone:
            del self.tracked[job_id]
            self.due.pop(job_id, None)

    def clear(self) -> None:
        """Forget everything (``missed_runs`` turned off by a reload)."""
        self.tracked.clear()
        self.due.clear()


def on_time(job: Job, run: Run) -> bool:
    """Whether ``run`` (a record of a run that started) started on time: see the module."""
    if run.lateness is None or run.attempt > 1:
        return False
    grace = job.policy.misfire.grace
    return run.lateness <= (ON_TIME if grace is None else grace)


def missed_span(run: Run) -> tuple[float, float]:
    """The oldest and newest occurrence a missed or skipped record stands for. The record
    keeps the oldest (``fire``); the newest is in its reason, as planning writes it
    (:func:`scheduler.engine.planning.missed_reason`), for a group of more than one."""
    found = _SPAN.search(run.reason or "") if run.count > 1 else None
    if found is None:
        return run.fire, run.fire
    try:
        last = datetime.fromisoformat(found[2]).timestamp()
    except ValueError:
        return run.fire, run.fire
    return run.fire, max(run.fire, last)


def summary_of(notice: Notice, name: str, zone: str) -> str:
    """The alert's one line, e.g. ``Job nightly missed 5 runs from ... to ...: the daemon
    was not running``."""
    first, last = iso(notice.first, zone), iso(notice.last, zone)
    runs = f"{notice.runs} run{'s' if notice.runs != 1 else ''}"
    if notice.change is Change.RECOVERED:
        return f"Job {name} runs on time again ({runs} missed since {first})"
    span = f"its run of {first}" if notice.runs == 1 else f"{runs} from {first} to {last}"
    return f"Job {name} missed {span}: {_why(notice)}"


def _why(notice: Notice) -> str:
    if notice.cause is Cause.DAEMON_DOWN:
        return "the daemon was not running"
    if notice.cause is Cause.OVERLAP:
        return "the previous run was still running (overlap=skip)"
    window = _WINDOW.search(notice.reason)
    if notice.cause is Cause.MAINTENANCE and window is not None:
        return f"held back by {window[1]}"
    misfire = notice.job.policy.misfire
    if misfire.grace is None:
        return f"misfired (a later occurrence was already due, coalesce={misfire.coalesce})"
    grace = format_duration(misfire.grace)
    return f"misfired (late or coalesced: grace {grace}, coalesce={misfire.coalesce})"


def _notice(change: Change, tracked: _Tracked) -> Notice:
    return Notice(
        change,
        tracked.job,
        tracked.count,
        tracked.first,
        tracked.last,
        tracked.reason,
        tracked.cause,
    )
