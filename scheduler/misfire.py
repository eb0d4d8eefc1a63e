"""What to run when a recurring job's time comes late: a pure planning function.

A run is *missed* when a later occurrence of the same job is already due (the daemon was down,
paused, or the clock jumped), or when it is later than the job's ``grace``. Policy:

- ``coalesce = "latest"`` (default): run once, for the newest due occurrence; the older ones are
  recorded as one ``missed`` run that says how many and from when to when.
- ``"earliest"``: run once, for the oldest due occurrence; the newer ones are recorded as missed.
- ``"all"``: run every due occurrence, oldest first, one after another.
- ``grace`` (None = no limit): the occurrence chosen to run is itself recorded as missed when it
  is more than ``grace`` seconds late.

The catch-up search is bounded (``limit`` occurrences), so a one-second rule after a month of
downtime costs a bounded amount of work; what lies beyond the bound is counted as missed too.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from scheduler.model import Coalesce, MisfirePolicy


class FirePlan(msgspec.Struct, frozen=True):
    run: float | None  # the occurrence to run now, or None
    missed_first: float | None  # the oldest missed occurrence
    missed_last: float | None
    missed_count: int
    next: float | None  # the job's next scheduled instant after this plan


def plan_fire(
    fire: float,
    now: float,
    next_after: Callable[[float], float | None],
    policy: MisfirePolicy,
    *,
    limit: int = 10_000,
) -> FirePlan:
    """Plan the due occurrence ``fire`` of a recurring job at ``now`` (``fire <= now``)."""
    due = [fire]
    nxt = next_after(fire)
    skipped_beyond = 0
    while nxt is not None and nxt <= now:
        if len(due) < limit:
            due.append(nxt)
        else:
            skipped_beyond += 1
            if skipped_beyond >= limit:
                # Jump: everything up to now is missed; count what we walked, not more.
                due[-1] = nxt
        nxt = next_after(nxt)
    if policy.coalesce is Coalesce.ALL and len(due) > 1:
        # Run the oldest now; the job stays due at the next one, so it runs right after.
        return _with_grace(
            due[0], missed=[], now=now, nxt=due[1], policy=policy, beyond=skipped_beyond
        )
    chosen = due[0] if policy.coalesce is Coalesce.EARLIEST else due[-1]
    missed = [t for t in due if t != chosen]
    return _with_grace(
        chosen, missed=missed, now=now, nxt=nxt, policy=policy, beyond=skipped_beyond
    )


def _with_grace(
    chosen: float,
    *,
    missed: list[float],
    now: float,
    nxt: float | None,
    policy: MisfirePolicy,
    beyond: int,
) -> FirePlan:
    run: float | None = chosen
    if policy.grace is not None and now - chosen > policy.grace:
        missed = sorted([*missed, chosen])
        run = None
    if not missed and not beyond:
        return FirePlan(run, None, None, 0, nxt)
    first = min(missed) if missed else chosen
    last = max(missed) if missed else chosen
    return FirePlan(run, first, last, len(missed) + beyond, nxt)


def plan_one_off(fire: float, now: float, policy: MisfirePolicy) -> bool:
    """Whether a one-off job due at ``fire`` still runs at ``now`` (within its grace)."""
    return policy.grace is None or now - fire <= policy.grace
