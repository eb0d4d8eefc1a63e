"""Due jobs planned a slice at a time, within a budget of one loop turn.

After a clock step, a long downtime or a long pause every recurring job is due at once, and
catching one up costs a few trigger queries (about 2 ms for a calendar rule a year behind).
:func:`plan_in_slices` takes due jobs from the store in slices until :data:`PLAN_BUDGET` is
spent; what is left stays due, and the engine's timer, re-armed for that past instant, goes on
at the next turn, so requests and the watchdog's ping get in between. The budget is real time
on purpose: it bounds how long the loop is held, whatever the injected clock says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from scheduler.model import Job

#: Longest one turn of the loop plans due jobs (seconds): under a
#: third of the 100 ms a request may wait for the loop.
PLAN_BUDGET = 0.02
#: Due jobs taken from the store between two looks at the budget: the first slice is small
#: (a calendar rule far behind costs milliseconds), later ones as many as fit the rest.
PLAN_FIRST = 4
PLAN_SLICE = 256


def plan_in_slices(take: Callable[[int], Sequence[Job]], apply: Callable[[Job], int]) -> int:
    """Apply ``apply`` to the jobs ``take(size)`` hands out, a slice at a time, until a slice
    comes back short or the budget is spent; how many runs ``apply`` queued in all."""
    pushed = 0
    size = PLAN_FIRST
    per_job = 1e-7
    clock = time.perf_counter
    until = clock() + PLAN_BUDGET
    while True:
        began = clock()
        due = take(size)
        for job in due:
            pushed += apply(job)
        ended = clock()
        if len(due) < size or ended >= until:
            return pushed
        # The next slice is sized to fit the rest of the budget at the highest cost per job
        # seen in this turn: jobs differ (a per-second rule a year behind costs more than a
        # daily one), and sizing on the last, cheaper slice would overrun the budget.
        per_job = max(per_job, (ended - began) / len(due))
        size = max(1, min(PLAN_SLICE, int((until - ended) / per_job)))
