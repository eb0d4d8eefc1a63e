"""Immutable records passed between the layers.

Records are ``msgspec.Struct`` classes: frozen, slotted, cheap to copy with
:func:`msgspec.structs.replace`, fast to encode for the journal, and (``gc=False``) invisible
to the cycle collector, so a million stored jobs do not stall the loop on a full collection.
Instants are float epoch seconds; ids are ints (time-sortable) rendered as strings at the edge.
Field names are snake_case; the JSON edge renames them to camelCase.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from scheduler.ids import created_at


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"


#: Statuses after which a one-off job never runs again on its own.
FINISHED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobType(enum.StrEnum):
    IMMEDIATE = "immediate"
    DELAYED = "delayed"
    SCHEDULED = "scheduled"
    RECURRING = "recurring"


class Priority(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Lower runs first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}


class Source(enum.StrEnum):
    API = "api"
    CONFIG = "config"
    LIBRARY = "library"


class FsyncMode(enum.StrEnum):
    """When the journal fsyncs (``[persistence] fsync``; the policy is in
    :mod:`scheduler.persistence.journal`). Defined here, below both config and persistence,
    so that the two share one type."""

    ALWAYS = "always"
    BATCH = "batch"
    NEVER = "never"


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    MISSED = "missed"
    SKIPPED_OVERLAP = "skipped_overlap"
    INTERRUPTED = "interrupted"


class Overlap(enum.StrEnum):
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    ALLOW = "allow"
    CANCEL_OTHER = "cancel_other"


class OnCrash(enum.StrEnum):
    RERUN = "rerun"
    ABANDON = "abandon"


class Backoff(enum.StrEnum):
    EXPONENTIAL = "exponential"
    FIXED = "fixed"


class Coalesce(enum.StrEnum):
    LATEST = "latest"
    EARLIEST = "earliest"
    ALL = "all"


class DstGap(enum.StrEnum):
    NEXT = "next"  # the first instant after the gap (Debian cron)
    SHIFT = "shift"  # read with the offset before the gap: 02:30 becomes 03:30 (RFC 5545)
    SKIP = "skip"  # no run that day


class DstFold(enum.StrEnum):
    FIRST = "first"
    LAST = "last"
    BOTH = "both"


class Frequency(enum.StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


# --- schedules -------------------------------------------------------------------------------


class DstPolicy(
    msgspec.Struct, frozen=True, gc=False, omit_defaults=True, forbid_unknown_fields=True
):
    """Per-job override of the DST rule; ``None`` keeps the default of the schedule's kind."""

    gap: DstGap | None = None
    fold: DstFold | None = None


class Repeat(
    msgspec.Struct,
    frozen=True,
    gc=False,
    omit_defaults=True,
    rename="camel",
    forbid_unknown_fields=True,
):
    """A calendar pattern: ``{"freq": "weekly", "weekdays": ["mon"], "time": "09:00"}``.

    ``weekdays`` are ``mon``..``sun``; ``month_days`` are 1..31 or -31..-1 (``-1`` = last day);
    ``until`` is a local date or date-time in the job's zone (inclusive); ``count`` caps the runs.
    """

    freq: Frequency
    interval: int = 1
    time: str = "00:00"
    weekdays: tuple[str, ...] = ()
    month_days: tuple[int, ...] = ()
    until: str | None = None
    count: int | None = None


class Schedule(
    msgspec.Struct, frozen=True, gc=False, omit_defaults=True, forbid_unknown_fields=True
):
    """When a job runs. At most one of ``delay``, ``at``, ``every``, ``cron``, ``repeat``,
    ``rrule`` is set; none set means immediate.

    Normalised form: ``delay`` and ``every`` in seconds; ``at``, ``start`` and ``end`` as ISO 8601
    strings (local in the job's zone unless they carry an offset); ``cron`` with ``@every`` turned
    into ``every``; ``rrule`` as given (optionally with a ``DTSTART`` line).
    """

    delay: float | None = None
    at: str | None = None
    every: float | None = None
    start: str | None = None
    end: str | None = None
    cron: str | None = None
    repeat: Repeat | None = None
    rrule: str | None = None
    dst: DstPolicy | None = None

    @property
    def type(self) -> JobType:
        if self.delay is not None:
            return JobType.DELAYED
        if self.at is not None:
            return JobType.SCHEDULED
        if (
            self.every is not None
            or self.cron is not None
            or self.repeat is not None
            or self.rrule is not None
        ):
            return JobType.RECURRING
        return JobType.IMMEDIATE


IMMEDIATE = Schedule()


# --- policies --------------------------------------------------------------------------------


class RetryPolicy(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """``max`` retries after the first attempt; delays ``delay * 2**(n-1)`` capped at
    ``max_delay`` (exponential) or ``delay`` (fixed), each spread by ``±jitter`` (a fraction)."""

    max: int = 3
    backoff: Backoff = Backoff.EXPONENTIAL
    delay: float = 2.0
    max_delay: float = 600.0
    jitter: float = 0.2


class MisfirePolicy(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """Runs missed while down or paused. ``grace`` None: catch up however late."""

    grace: float | None = None
    coalesce: Coalesce = Coalesce.LATEST


class Policy(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """Everything about how a job runs, other than when. Shared between jobs where equal."""

    retry: RetryPolicy = RetryPolicy()
    timeout: float | None = None
    misfire: MisfirePolicy = MisfirePolicy()
    overlap: Overlap = Overlap.SKIP
    on_crash: OnCrash = OnCrash.RERUN


DEFAULT_POLICY = Policy()


class Progress(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    percent: float
    message: str | None = None


# --- jobs and runs ---------------------------------------------------------------------------


class Job(msgspec.Struct, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """One job as stored. Replaced whole on every change (the journal records the new value).

    ``scheduled`` is the next run instant (None when there is none). ``fire`` is the scheduled
    instant of the run in progress or being retried: it stays fixed across retries, and with
    the job id it forms the run's fire id. ``attempt`` counts attempts of that fire (0 before
    the first). ``interrupted`` counts consecutive runs cut short by a crash.
    """

    id: int
    task: str
    payload: Any = None
    schedule: Schedule = IMMEDIATE
    timezone: str
    workflow_id: str | None = None
    workflow_name: str | None = None
    name: str | None = None
    status: JobStatus = JobStatus.PENDING
    priority: Priority = Priority.NORMAL
    policy: Policy = DEFAULT_POLICY
    unique_key: str | None = None
    source: Source = Source.API
    scheduled: float | None = None
    fire: float | None = None
    executed: float | None = None
    completed: float | None = None
    attempt: int = 0
    runs: int = 0
    interrupted: int = 0
    error: str | None = None
    result: Any = None
    progress: Progress | None = None
    paused_until: float | None = None
    pause_reason: str | None = None
    paused_by: str | None = None  # who paused it, as the pause request named them
    pid: int | None = None  # a command task's process, journalled so recovery can stop it
    pid_started: int | None = None  # its start time in clock ticks (/proc/PID/stat), vs pid reuse
    #: Cluster mode, a recurring job's rerun of ``fire`` after its node died: where its
    #: schedule continues after the rerun (other nodes handled the instants up to it while the
    #: run was thought in flight); ``inf``: nowhere (its rule ended). None: after ``fire``.
    resume_grid: float | None = None

    @property
    def type(self) -> JobType:
        return self.schedule.type

    @property
    def created(self) -> float:
        """Creation instant, to the millisecond: it is encoded in the id (see ``ids``), which
        saves a float and a field on each of a million stored jobs."""
        return created_at(self.id)

    @property
    def display_name(self) -> str:
        return self.workflow_name or self.workflow_id or self.name or self.task


class Run(msgspec.Struct, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """One finished (or recorded-as-not-run) run of a job."""

    job_id: int
    fire: float
    attempt: int
    outcome: Outcome
    started: float | None = None
    ended: float | None = None
    lateness: float | None = None
    error: str | None = None
    result: Any = None
    reason: str | None = None
    count: int = 1  # occurrences this record stands for (a coalesced group of missed runs)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


class RunResult(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """What an executor reports for one attempt."""

    outcome: Outcome
    error: str | None = None
    result: Any = None
    retryable: bool = True
    retry_after: float | None = None  # seconds, from an HTTP Retry-After header


def fire_id(job_id: str, fire: float) -> str:
    """The idempotency key of one scheduled run: the job id and the scheduled instant (ms)."""
    return f"{job_id}:{round(fire * 1000)}"


# --- change records (what the store hands to the journal) ------------------------------------


class PutJob(msgspec.Struct, frozen=True, gc=False, tag="put"):
    """The job's new whole value (create, modify, status change, run start, retry scheduled)."""

    job: Job


class DeleteJob(msgspec.Struct, frozen=True, gc=False, tag="del"):
    job_id: int


class AddRun(msgspec.Struct, frozen=True, gc=False, tag="run"):
    """A run finished or was recorded as not run (missed, skipped, interrupted)."""

    run: Run


class SetMeta(msgspec.Struct, frozen=True, gc=False, tag="meta"):
    """Daemon-wide state that must survive a restart (scheduler paused or not)."""

    paused: bool


Change = PutJob | DeleteJob | AddRun | SetMeta
