"""``Store.load`` with the ids already grouped by index key (as a format 2 snapshot gives them)
builds the same store as without them and as one change at a time; groups that do not cover
the jobs exactly are not trusted."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.index import Key
from scheduler.model import Job, JobStatus, PutJob, Schedule
from scheduler.store import Store
from tests.fakes import job, run
from tests.persistence.store_groups import assert_same, grouped, reference

SCHEDULES = [Schedule(), Schedule(delay=60.0), Schedule(at="2030-01-01T09:00"), Schedule(every=5)]


@st.composite
def job_sets(draw: Any) -> dict[int, Job]:
    jobs = {}
    for i in range(1, draw(st.integers(0, 25)) + 1):
        jobs[i] = job(
            i,
            task=draw(st.sampled_from(["a", "b"])),
            status=draw(st.sampled_from(list(JobStatus))),
            schedule=draw(st.sampled_from(SCHEDULES)),
            workflow_id=draw(st.sampled_from([None, "w1", "w2"])),
            unique_key=draw(st.sampled_from([None, f"k{i}"])),
            scheduled=draw(st.sampled_from([None, 1.0, 2.0])),
            paused_until=draw(st.sampled_from([None, 3.0])),
        )
    return jobs


def runs_of(jobs: dict[int, Job], first: int = 0) -> dict[int, list[Any]]:
    """Seven runs of every fourth job (the store keeps the last five: ``history=5``)."""
    return {i: [run(i, k) for k in range(first, 7)] for i in jobs if i % 4 == 0}


def load(jobs: dict[int, Job], groups: dict[Key, list[int]] | None) -> Store:
    store = Store(history=5)
    store.load(dict(jobs), runs_of(jobs), paused=False, groups=groups)
    return store


@settings(max_examples=60, deadline=None)
@given(jobs=job_sets())
def test_given_groups_build_the_same_store(jobs: dict[int, Job]) -> None:
    expected = reference(jobs, runs_of(jobs, first=2), paused=False)
    assert_same(load(jobs, grouped(jobs)), expected)
    assert_same(load(jobs, None), reference(jobs, runs_of(jobs, first=2), paused=False))


@settings(max_examples=40, deadline=None)
@given(jobs=job_sets().filter(bool), data=st.data())
def test_groups_that_miss_a_job_are_not_trusted(jobs: dict[int, Job], data: Any) -> None:
    groups = grouped(jobs)
    key = data.draw(st.sampled_from(sorted(groups, key=str)))
    groups[key] = groups[key][1:]  # one job left out: its bucket, counts and type would be lost
    assert_same(load(jobs, groups), reference(jobs, runs_of(jobs, first=2), paused=False))


def test_a_store_filled_from_groups_keeps_working() -> None:
    """After a grouped load the store's incremental paths see consistent indexes."""
    jobs = {i: job(i, task="a", scheduled=float(i)) for i in range(1, 6)}
    store = load(jobs, grouped(jobs))
    store.put(job(3, task="b", status=JobStatus.COMPLETED))
    store.delete(4)
    store.apply(PutJob(job(9, task="a", scheduled=0.5)))
    assert store.count(JobStatus.PENDING, None, "a") == 4
    assert [j.id for j in store.page(None, None, None)] == [1, 2, 3, 5, 9]
    assert [j.id for j in store.pop_due(10.0)] == [9, 1, 2, 5]
