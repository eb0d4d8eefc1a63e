"""The store's indexes stay true to its jobs, whether built change by change or in bulk."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from scheduler.errors import DuplicateJob
from scheduler.model import Job, JobStatus, JobType, Schedule
from scheduler.store import Store
from tests.fakes import job

EVERY = Schedule(every=60.0)
LATER = Schedule(delay=60.0)


def sample() -> list[Job]:
    return [
        job(1, schedule=EVERY, scheduled=100.0, workflow_id="wf-a"),
        job(2, schedule=LATER, scheduled=50.0, unique_key="k-1"),
        job(3, status=JobStatus.COMPLETED, workflow_id="wf-b"),
        job(4, status=JobStatus.PAUSED, schedule=EVERY, paused_until=70.0, workflow_id="wf-c"),
        job(5, status=JobStatus.RUNNING, schedule=EVERY, scheduled=200.0),
    ]


def indexes(store: Store) -> tuple[object, ...]:
    return (
        dict(store.counts),
        dict(store.type_counts),
        store.next_wake(),
        store.next_job(),
        store.workflow_holder("wf-a"),
        store.workflow_holder("wf-b"),
        [j.id for j in store.pop_due(1000.0)],
    )


def test_a_bulk_load_builds_the_same_indexes_as_puts() -> None:
    one_by_one = Store()
    for item in sample():
        one_by_one.put(item)
    bulk = Store()
    bulk.load({item.id: item for item in sample()}, {}, paused=False)
    assert indexes(bulk) == indexes(one_by_one)


def test_counts_by_status_and_type_follow_changes() -> None:
    store = Store()
    for item in sample():
        store.put(item)
    assert store.counts[JobStatus.PENDING] == 2
    assert store.type_counts[JobType.RECURRING] == 3
    store.put(replace(store.jobs[2], schedule=EVERY))
    assert store.type_counts[JobType.RECURRING] == 4
    assert store.type_counts[JobType.DELAYED] == 0
    store.delete(1)
    assert store.type_counts[JobType.RECURRING] == 3
    assert store.counts[JobStatus.PENDING] == 1
    assert len(store) == 4


def test_a_live_key_is_held_once_and_freed_when_the_job_finishes() -> None:
    store = Store()
    store.put(job(1, unique_key="k", scheduled=10.0))
    with pytest.raises(DuplicateJob):
        store.put(job(2, unique_key="k", scheduled=20.0))
    store.put(replace(store.jobs[1], status=JobStatus.COMPLETED, scheduled=None))
    store.put(job(2, unique_key="k", scheduled=20.0))
    assert store.jobs[2].unique_key == "k"


def test_the_next_job_skips_stale_heap_entries() -> None:
    store = Store()
    store.put(job(1, scheduled=10.0))
    store.put(job(2, scheduled=20.0))
    store.put(replace(store.jobs[1], scheduled=30.0))
    next_job = store.next_job()
    assert next_job is not None
    assert next_job.id == 2
