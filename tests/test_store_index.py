"""The store's query indexes answer exactly what a scan of its jobs would, after any sequence of
puts, deletes, due pops and requeues, and after a bulk load of the same jobs; and the sorted id
sets behind them behave as sorted sets."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from scheduler import index
from scheduler.index import SortedIds, page_of
from scheduler.model import FINISHED, Job, JobStatus, JobType, Schedule
from scheduler.store import Store
from tests.api.harness import running_api

SCHEDULES = [
    Schedule(),
    Schedule(delay=60.0),
    Schedule(at="2030-01-01T09:00"),
    Schedule(every=60.0),
]
TASKS = ["a", "b", "c"]
WORKFLOWS = [None, "w1", "w2", "w3"]
KEYS = [None, "k1", "k2"]


@contextmanager
def small_blocks(size: int = 4) -> Iterator[None]:
    """Blocks of a few ids, so that short tests split and merge them."""
    with patch.object(index, "LOAD", size):
        yield


# --- SortedIds -------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(0, 200)), max_size=300))
def test_sorted_ids_behave_as_a_sorted_set(ops: list[tuple[bool, int]]) -> None:
    with small_blocks():
        ids = SortedIds()
        model: set[int] = set()
        for add, value in ops:
            if add:
                ids.add(value)
                model.add(value)
            else:
                ids.discard(value)
                model.discard(value)
            assert len(ids) == len(model)
        ordered = sorted(model)
        assert list(ids) == ordered
        for probe in (-1, 0, 50, 100, 201):
            assert ids.rank(probe) == sum(1 for v in ordered if v < probe)
        for position, value in enumerate(ordered):
            assert ids.at(position) == value
            assert ids.slice(position, 7) == ordered[position : position + 7]
        assert all(value in ids for value in ordered)


@settings(max_examples=100, deadline=None)
@given(
    groups=st.lists(st.sets(st.integers(0, 300), max_size=40), min_size=1, max_size=5),
    start=st.integers(0, 200),
    limit=st.integers(1, 30),
)
def test_a_page_of_a_union_is_the_slice_of_the_merged_order(
    groups: list[set[int]], start: int, limit: int
) -> None:
    seen: set[int] = set()
    disjoint = []
    for group in groups:  # buckets never share an id
        disjoint.append(sorted(group - seen))
        seen |= group
    with small_blocks():
        buckets = [SortedIds(g) for g in disjoint]
        assert page_of(buckets, start, limit) == sorted(seen)[start : start + limit]


# --- the store -------------------------------------------------------------------------------


def _job(job_id: int, draw: Any) -> Job:
    status = draw(st.sampled_from(list(JobStatus)))
    schedule = draw(st.sampled_from(SCHEDULES))
    return Job(
        id=job_id,
        task=draw(st.sampled_from(TASKS)),
        timezone="UTC",
        schedule=schedule,
        status=status,
        workflow_id=draw(st.sampled_from(WORKFLOWS)),
        unique_key=draw(st.sampled_from(KEYS)),
        scheduled=draw(st.sampled_from([None, 10.0, 20.0, 30.0])),
    )


class Model:
    """The store's answers computed by brute force from its jobs."""

    def __init__(self) -> None:
        self.found_due: set[int] = set()

    @staticmethod
    def matching(store: Store, s: Any, t: Any, k: Any) -> list[int]:
        return sorted(
            j.id
            for j in store.jobs.values()
            if (s is None or j.status is s)
            and (t is None or j.type is t)
            and (k is None or j.task == k)
        )

    def check(self, store: Store) -> None:
        jobs = list(store.jobs.values())
        for s, t, k in itertools.product([None, *JobStatus], [None, *JobType], [None, *TASKS]):
            ids = self.matching(store, s, t, k)
            assert store.count(s, t, k) == len(ids), (s, t, k)
            for start, limit in ((0, 3), (2, 4)):
                got = [j.id for j in store.page(s, t, k, start=start, limit=limit)]
                assert got == ids[start : start + limit], (s, t, k, start)
        for w in WORKFLOWS[1:]:
            assert w is not None
            assert [j.id for j in store.workflow_jobs(w)] == sorted(
                j.id for j in jobs if j.workflow_id == w
            )
        assert store.counts == {s: sum(j.status is s for j in jobs) for s in JobStatus}
        assert store.type_counts == {t: sum(j.type is t for j in jobs) for t in JobType}
        one_off = {JobType.DELAYED, JobType.SCHEDULED}
        waiting = sum(j.status is JobStatus.PENDING and j.type in one_off for j in jobs)
        assert store.delayed() == waiting - len(self.found_due)


def _unique(store: Store, job: Job) -> bool:
    """Whether ``job`` may be put without a DuplicateJob (checked by brute force)."""
    if job.status in FINISHED:
        return True
    for other in store.jobs.values():
        if other.id == job.id or other.status in FINISHED:
            continue
        if job.unique_key is not None and other.unique_key == job.unique_key:
            return False
        if (
            job.unique_key is None
            and job.workflow_id is not None
            and other.unique_key is None
            and other.workflow_id == job.workflow_id
        ):
            return False
    return True


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_the_indexes_match_a_scan_after_any_changes_and_after_a_bulk_load(data: Any) -> None:
    with small_blocks():
        store, model = Store(), Model()
        next_id = 1
        for _ in range(data.draw(st.integers(1, 40), label="steps")):
            op = data.draw(st.sampled_from(["new", "new", "change", "delete", "pop", "requeue"]))
            ids = sorted(store.jobs)
            if op == "new" or not ids:
                job = _job(next_id, data.draw)
                next_id += 1
                if _unique(store, job):
                    store.put(job)
            elif op == "change":
                old = store.jobs[data.draw(st.sampled_from(ids))]
                new = replace(_job(old.id, data.draw), workflow_id=old.workflow_id)
                if _unique(store, new):
                    store.put(new)
                    if (
                        new.status is not JobStatus.PENDING
                        or new.scheduled != old.scheduled
                        or new.type not in (JobType.DELAYED, JobType.SCHEDULED)
                    ):
                        model.found_due.discard(new.id)
            elif op == "delete":
                victim = data.draw(st.sampled_from(ids))
                store.delete(victim)
                model.found_due.discard(victim)
            elif op == "pop":
                for job in store.pop_due(data.draw(st.sampled_from([15.0, 25.0, 40.0]))):
                    if job.status is JobStatus.PENDING and job.type in (
                        JobType.DELAYED,
                        JobType.SCHEDULED,
                    ):
                        model.found_due.add(job.id)
            else:
                job = store.jobs[data.draw(st.sampled_from(ids))]
                store.requeue(job)
                model.found_due.discard(job.id)
            model.check(store)
        loaded = Store()
        loaded.load(dict(store.jobs), {}, paused=False)
        Model().check(loaded)
        for w in WORKFLOWS[1:]:
            assert w is not None
            assert loaded.workflow_holder(w) == store.workflow_holder(w)


async def test_the_workflow_routes_never_scan_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_api() as api:
        for n in range(30):
            await api.create(schedule={"delay": "1h"}, workflowId=f"other-{n}")

        def scan(_store: Store) -> Iterator[Job]:
            raise AssertionError("a workflow call scanned the whole store")

        monkeypatch.setattr(Store, "__iter__", scan)
        path = "/api/workflows/wf/schedule"
        body = {"task": "work", "schedule": {"every": "1h"}}
        assert (await api.call("PUT", path, json=body))[0] == 201
        assert (await api.call("PUT", path, json=body))[0] == 200
        status, page = await api.call("GET", "/api/jobs?workflowId=wf")
        assert (status, page["total"]) == (200, 1)
        assert (await api.call("DELETE", path))[0] == 204
        status, page = await api.call("GET", "/api/jobs?workflowId=wf")
        assert (status, page["total"]) == (200, 0)
