"""Issue 10, item 9: the homepage card adds the old queue's counts (``pausedJobs``,
``delayedJobs``, ``jobsByType``) without renaming a key and without a scan of the jobs.

``delayedJobs`` and ``jobsByType`` through the API are in ``test_http_queries.py``; the
``?task=`` filter and unknown parameters there too.
"""

from __future__ import annotations

from typing import Any

from scheduler.api.keys import Phase
from scheduler.api.status import status_document
from scheduler.model import Job
from tests.api.harness import Api

#: The first contract's keys: kept, never renamed.
FIRST_CONTRACT = {
    "isRunning", "totalJobs", "pendingJobs", "runningJobs", "completedJobs", "failedJobs",
    "nextJob",
}  # fmt: skip


async def test_paused_jobs_are_counted_apart_from_pending_ones(api: Api) -> None:
    jobs = [await api.create(schedule={"delay": "1h"}) for _ in range(3)]
    for job in jobs[:2]:
        status, _ = await api.call("POST", f"/api/jobs/{job['id']}/pause")
        assert status == 200
    _, card = await api.call("GET", "/api/scheduler")
    assert set(card) >= FIRST_CONTRACT
    assert (card["pausedJobs"], card["pendingJobs"], card["totalJobs"]) == (2, 1, 3)
    assert card["delayedJobs"] == 1  # a paused job is not waiting for its time
    await api.call("POST", f"/api/jobs/{jobs[0]['id']}/resume")
    _, card = await api.call("GET", "/api/scheduler")
    assert (card["pausedJobs"], card["pendingJobs"], card["delayedJobs"]) == (1, 2, 2)


class NoScan(dict[int, Job]):
    """The store's job table, refusing every walk over it: reading one job is fine."""

    def _refuse(self, *_: Any) -> Any:
        raise AssertionError("the card walked over every job")

    __iter__ = values = items = keys = _refuse


async def test_the_card_is_counted_without_walking_over_the_jobs(api: Api) -> None:
    await api.create(schedule={"delay": "1h"})
    await api.create(schedule={"every": "1h"})
    paused = await api.create(schedule={"at": "2030-02-01T09:00"})
    await api.call("POST", f"/api/jobs/{paused['id']}/pause")
    store = api.sched.store
    expected = status_document(api.sched, Phase.RUNNING)
    store.jobs = NoScan(store.jobs)
    card = status_document(api.sched, Phase.RUNNING)
    assert card == expected
    assert (card["pausedJobs"], card["delayedJobs"], card["totalJobs"]) == (1, 1, 3)
    assert card["jobsByType"] == {"immediate": 0, "delayed": 1, "scheduled": 1, "recurring": 1}
