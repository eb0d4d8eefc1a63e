"""What a store filled from snapshot groups must equal: the brute-force grouping, a store
built one change at a time, and the comparison of every answer their indexes give (shared by
the snapshot-format tests and the store's bulk-load tests)."""

from __future__ import annotations

import math
from typing import Any

from scheduler.index import Key
from scheduler.model import AddRun, Job, JobStatus, PutJob
from scheduler.store import Store


def key_of(item: Job) -> Key:
    return (item.status, item.type, item.task)


def grouped(jobs: dict[int, Job]) -> dict[Key, list[int]]:
    """Ids by index key, each group ascending: what the frames must yield, by brute force."""
    out: dict[Key, list[int]] = {}
    for item in jobs.values():
        out.setdefault(key_of(item), []).append(item.id)
    return {k: sorted(ids) for k, ids in out.items()}


def reference(jobs: dict[int, Job], runs: dict[int, list[Any]], paused: bool) -> Store:
    """A store built one change at a time (the way a running scheduler builds it)."""
    store = Store()
    for item in sorted(jobs.values(), key=lambda j: j.id):
        store.apply(PutJob(item))
    for job_runs in runs.values():
        for r in job_runs:
            store.apply(AddRun(r))
    store.paused = paused
    return store


def assert_same(loaded: Store, expected: Store) -> None:
    """Every answer the indexes give, and the wake times, agree."""
    assert loaded.jobs == expected.jobs
    assert loaded.counts == expected.counts
    assert loaded.type_counts == expected.type_counts
    assert loaded.paused == expected.paused
    assert loaded.delayed() == expected.delayed()
    assert loaded.next_wake() == expected.next_wake()
    for status in [None, *JobStatus]:
        for task in [None, *{j.task for j in expected.jobs.values()}]:
            assert loaded.count(status, None, task) == expected.count(status, None, task)
            got = [j.id for j in loaded.page(status, None, task, limit=1000)]
            assert got == [j.id for j in expected.page(status, None, task, limit=1000)]
    for workflow in {j.workflow_id for j in expected.jobs.values()} - {None}:
        assert workflow is not None
        assert loaded.workflow_jobs(workflow) == expected.workflow_jobs(workflow)
        assert loaded.workflow_holder(workflow) == expected.workflow_holder(workflow)
    assert loaded._by_key == expected._by_key  # the unique-key index itself
    assert loaded.all_runs() == expected.all_runs()
    assert [j.id for j in loaded.pop_due(math.inf)] == [j.id for j in expected.pop_due(math.inf)]
