"""What to run when a recurring job's time comes late: a pure planning function.

A run is *missed* when a later occurrence of the same job is already due (the daemon was down,
paused, or the clock jumped), or when it is later than the job's ``grace``. Policy:

- ``coalesce = "latest"`` (default): run once, for the newest due occurrence; the older ones are
  recorded as one ``missed`` run that says how many and from when to when (its oldest and its
  newest instant).
- ``"earliest"``: run once, for the oldest due occurrence; the newer ones are recorded as missed.
- ``"all"``: run every due occurrence, oldest first, one after another, as long as at most
  :data:`ALL_LIMIT` (1,000) are due. Replaying a longer backlog one run at a time would itself
  be the fault (a 1 s rule after a day down has 86,400): then the oldest runs and the newer ones
  are recorded as missed, as with ``earliest``. The engine plans each step of a replay again, so
  a backlog that outgrows the limit while it is replayed is cut the same way.
- ``grace`` (None = no limit): the occurrence chosen to run is itself recorded as missed when it
  is more than ``grace`` seconds late.

Planning never walks the missed occurrences one by one: it asks the job's :class:`Timeline` for
the last due occurrence (O(1) for ``every``, O(log n) trigger queries for calendar rules) and
for how many are due (arithmetic for ``every``; counted from the rule's wall times for calendar
rules). That count is exact unless counting it would cost too much - more than 50 years of
missed calendar time, or a per-second RRULE across an offset change - and then it is a lower
bound: :attr:`FirePlan.exact` is false and the record says "at least".
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from scheduler.model import Coalesce, MisfirePolicy

__all__ = ["ALL_LIMIT", "FirePlan", "Timeline", "plan_fire", "plan_one_off"]

#: Most due occurrences ``coalesce = "all"`` replays one by one (see the module docstring).
ALL_LIMIT = 1000
# Occurrences are at least a second apart; this is far below that and far above a float's step.
_BEFORE = 1e-6


class Timeline(Protocol):
    """A recurring job's occurrences, in epoch seconds (the engine adapts its trigger)."""

    def next_after(self, instant: float) -> float | None:
        """The first occurrence strictly after ``instant``, or None."""
        ...

    def latest(self, since: float, until: float) -> float | None:
        """The last occurrence in ``[since, until]``, or None."""
        ...

    def count(self, after: float, until: float) -> tuple[int, bool]:
        """How many occurrences lie in ``(after, until]``, and whether that is exact (else a
        lower bound)."""
        ...


class FirePlan(msgspec.Struct, frozen=True):
    run: float | None  # the occurrence to run now, or None
    missed_first: float | None  # the oldest missed occurrence
    missed_last: float | None  # the newest missed occurrence
    missed_count: int  # how many were missed: exact, or at least this many (see ``exact``)
    next: float | None  # the job's next scheduled instant after this plan
    exact: bool = True  # False: ``missed_count`` is a lower bound


class _Missed(msgspec.Struct, frozen=True):
    first: float
    last: float
    count: int
    exact: bool = True


def plan_fire(
    fire: float,
    now: float,
    timeline: Timeline,
    policy: MisfirePolicy,
    *,
    all_limit: int = ALL_LIMIT,
) -> FirePlan:
    """Plan the due occurrence ``fire`` of a recurring job at ``now`` (``fire <= now``).

    At most five timeline queries: the last due occurrence, the count, and the neighbours the
    chosen policy needs.
    """
    latest = timeline.latest(fire, now)
    if latest is None or latest <= fire:  # only ``fire`` is due
        return _with_grace(fire, None, now, timeline.next_after(fire), policy)
    newer, exact = timeline.count(fire, latest)
    if policy.coalesce is Coalesce.ALL and exact and newer < all_limit:
        # Run the oldest now; the job stays due at the next one, so it runs right after.
        return _with_grace(fire, None, now, timeline.next_after(fire), policy)
    after_latest = timeline.next_after(latest)
    if policy.coalesce is Coalesce.LATEST:
        newest_missed = timeline.latest(fire, latest - _BEFORE) or fire
        missed = _Missed(fire, newest_missed, newer, exact)
        return _with_grace(latest, missed, now, after_latest, policy)
    oldest_missed = timeline.next_after(fire) or latest
    missed = _Missed(oldest_missed, latest, newer, exact)
    return _with_grace(fire, missed, now, after_latest, policy)


def _with_grace(
    chosen: float, missed: _Missed | None, now: float, nxt: float | None, policy: MisfirePolicy
) -> FirePlan:
    """The plan, with ``chosen`` itself counted as missed when it is later than the grace."""
    if policy.grace is None or now - chosen <= policy.grace:
        if missed is None:
            return FirePlan(chosen, None, None, 0, nxt)
        return FirePlan(chosen, missed.first, missed.last, missed.count, nxt, missed.exact)
    if missed is None:
        return FirePlan(None, chosen, chosen, 1, nxt)
    first, last = min(missed.first, chosen), max(missed.last, chosen)
    return FirePlan(None, first, last, missed.count + 1, nxt, missed.exact)


def plan_one_off(fire: float, now: float, policy: MisfirePolicy) -> bool:
    """Whether a one-off job due at ``fire`` still runs at ``now`` (within its grace)."""
    return policy.grace is None or now - fire <= policy.grace
