"""Compiled triggers, one per job, kept while the job's schedule and zone stay the same.

A job's schedule is compiled once, when it is created (the input check compiles it; the
service hands that trigger here with :meth:`TriggerCache.seed`), and again only when the job is
changed or the daemon restarts.
"""

from __future__ import annotations

import logging
from datetime import datetime

from scheduler.ids import encode
from scheduler.model import Job, JobType
from scheduler.schedules import load_zone
from scheduler.triggers import Timeline, Trigger, compile_stored

log = logging.getLogger("scheduler.engine")


class TriggerCache:
    def __init__(self) -> None:
        self._triggers: dict[int, tuple[Job, Trigger]] = {}

    def seed(self, job: Job, trigger: Trigger) -> None:
        """Keep ``trigger``, compiled for ``job``'s schedule and zone at its creation."""
        self._triggers[job.id] = (job, trigger)

    def trigger(self, job: Job) -> Trigger:
        cached = self._triggers.get(job.id)
        if (
            cached is not None
            and cached[0].schedule is job.schedule
            and cached[0].timezone == job.timezone
        ):
            return cached[1]
        tz = load_zone(job.timezone)
        created = datetime.fromtimestamp(job.created, tz)
        trig, refused = compile_stored(job.schedule, tz, created=created)
        if refused is not None:  # stored by an older version; it is not run again
            log.error(
                "job %s: schedule no longer valid, no further runs: %s", encode(job.id), refused
            )
        self._triggers[job.id] = (job, trig)
        return trig

    def timeline(self, job: Job) -> Timeline:
        """The job's occurrences in epoch seconds, for misfire planning (catch-up asks for
        the last due occurrence and their count, never walks them one by one)."""
        return Timeline(self.trigger(job))

    def next_after(self, job: Job, instant: float) -> float | None:
        return Timeline(self.trigger(job)).next_after(instant)

    def next_times(self, job: Job, n: int) -> list[float]:
        out: list[float] = []
        t = job.scheduled
        while t is not None and len(out) < n:
            out.append(t)
            t = self.next_after(job, t) if job.type is JobType.RECURRING else None
        return out

    def forget(self, job_id: int) -> None:
        self._triggers.pop(job_id, None)
