"""One-off triggers (immediate, ``delay``, ``at``) and the reading of ISO 8601 date-times."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from scheduler.errors import InvalidSchedule
from scheduler.triggers.dst import DstRule, resolve_local
from scheduler.triggers.wallclock import Tally, require_aware

__all__ = ["OnceTrigger", "local_instants", "parse_iso"]


class OnceTrigger:
    """Runs at fixed instants: one for immediate, ``delay`` and most ``at`` times; none for an
    ``at`` time skipped by a DST gap; two for an ``at`` time in a fold with ``fold: both``."""

    __slots__ = ("_runs",)

    def __init__(self, instants: Iterable[datetime]) -> None:
        self._runs = sorted((instant.timestamp(), instant) for instant in instants)

    def next_after(self, after: datetime) -> datetime | None:
        limit = require_aware(after)
        for stamp, instant in self._runs:
            if stamp > limit:
                return instant
        return None

    def first_run(self, created: datetime) -> datetime | None:
        """The first run of a job created at ``created``: the first after it (the service
        runs an immediate job at its creation itself)."""
        return self.next_after(created)

    def latest(self, since: datetime, until: datetime) -> datetime | None:
        """The last run in ``[since, until]``, or None."""
        low, high = require_aware(since), require_aware(until)
        found = [instant for stamp, instant in self._runs if low <= stamp <= high]
        return found[-1] if found else None

    def count(self, after: datetime, until: datetime) -> Tally:
        """The runs in ``(after, until]``."""
        low, high = require_aware(after), require_aware(until)
        return Tally(sum(1 for stamp, _ in self._runs if low < stamp <= high))


def parse_iso(text: object, *, field: str) -> datetime:
    """An ISO 8601 date-time (``"2026-12-24T09:00"``, optionally with an offset or ``Z``)."""
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text.strip())
        except ValueError:
            pass
    raise InvalidSchedule(
        f"{field}: expected an ISO 8601 date-time like '2026-12-24T09:00' (local in the job's "
        f"time zone) or '2026-12-24T09:00+09:00', got {text!r}",
        field=field,
    )


def local_instants(text: str, tz: ZoneInfo, rule: DstRule, *, field: str) -> tuple[datetime, ...]:
    """The instants ``text`` names, in ``tz``: itself when it carries an offset, else the
    wall time in ``tz`` read by the DST ``rule`` (none if a gap is skipped, two for ``both``)."""
    value = parse_iso(text, field=field)
    if value.tzinfo is not None:
        return (value.astimezone(tz),)
    return resolve_local(value, tz, rule)
