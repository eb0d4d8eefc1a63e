"""The single box's job service (``scheduler/service/``), driven directly: what it promises every
caller, the HTTP API and the library alike.

- A change answers only once it is durable: the journal's commit has returned.
- A bad change changes nothing: it is validated whole first, and nothing is journalled.
- A job defined in ``config.toml`` is the file's: the service refuses to change or remove it.
- A workflow saved again keeps its one job.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from msgspec.structs import replace

from scheduler import ids
from scheduler.config import Config, SchedulerConfig
from scheduler.errors import InvalidInput, InvalidState, SchedulerError, UnknownTask
from scheduler.jobspec import JobSpec
from scheduler.model import Change, Job, JobStatus, Source
from scheduler.runtime.library import Scheduler
from scheduler.service import JobService, WorkflowNotFound
from tests.fakes import FakeClock

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Seoul")).timestamp()


class GatedJournal:
    """Counts what is journalled; its commit waits while ``open`` is clear, like a slow fsync."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.changes = 0
        self.commits = 0

    def append(self, change: Change) -> int:
        self.changes += 1
        return self.changes

    def append_group(self, changes: Sequence[Change]) -> int:
        for change in changes:
            seq = self.append(change)
        return seq

    async def commit(self) -> None:
        await self.open.wait()
        self.commits += 1


class Rig:
    def __init__(self, sched: Scheduler, journal: GatedJournal) -> None:
        self.sched = sched
        self.journal = journal
        assert isinstance(sched.service, JobService)  # the single box's, not a cluster node's
        self.service = sched.service

    def spec(self, **raw: Any) -> JobSpec:
        return self.sched.parse_input({"task": "work", **raw})

    async def create(self, *, source: Source = Source.API, **raw: Any) -> Job:
        return await self.service.create(self.spec(**raw), source=source)

    def journalled(self) -> tuple[int, int]:
        return self.journal.changes, self.journal.commits


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    sched = Scheduler(Config(scheduler=SchedulerConfig()), clock=FakeClock(T0), persistence=False)
    sched.register_task("work", lambda payload: None)
    journal = GatedJournal()
    sched.store.journal = journal
    await sched.start()
    yield Rig(sched, journal)
    journal.open.set()
    await sched.stop(grace=0)


async def held_until_durable(rig: Rig, change: Awaitable[Any]) -> Any:
    """Run ``change`` with the journal's commit held: it must not answer before the commit."""
    rig.journal.open.clear()
    pending = asyncio.ensure_future(change)
    for _ in range(20):
        await asyncio.sleep(0)
    assert not pending.done(), "the service answered before its change was durable"
    commits = rig.journal.commits
    rig.journal.open.set()
    result = await asyncio.wait_for(pending, timeout=5)
    assert rig.journal.commits > commits
    return result


async def test_each_change_answers_only_once_it_is_durable(rig: Rig) -> None:
    job = await held_until_durable(rig, rig.create(schedule={"cron": "0 9 * * *"}))
    encoded = ids.encode(job.id)
    changed = rig.spec(schedule={"cron": "0 10 * * *"})
    assert (await held_until_durable(rig, rig.service.modify(encoded, changed))).schedule.cron
    paused = await held_until_durable(rig, rig.service.pause(encoded))
    assert paused.status is JobStatus.PAUSED
    resumed = await held_until_durable(rig, rig.service.resume(encoded))
    assert resumed.status is JobStatus.PENDING
    await held_until_durable(rig, rig.service.delete(encoded))
    assert rig.service.find(encoded) is None


async def test_a_bad_change_is_refused_whole_and_changes_nothing(rig: Rig) -> None:
    job = await rig.create(schedule={"cron": "0 9 * * *"}, payload={"n": 1})
    encoded = ids.encode(job.id)
    before, journalled = rig.service.get(encoded), rig.journalled()
    # Valid but for its task (gone since it was parsed): the new schedule must not land either.
    wrong = replace(rig.spec(schedule={"cron": "0 10 * * *"}, payload={"n": 2}), task="nope")
    with pytest.raises(UnknownTask) as refused:
        await rig.service.modify(encoded, wrong)
    assert refused.value.field == "task"
    with pytest.raises(InvalidInput) as late:
        await rig.service.pause(encoded, until=T0 - 1)
    assert late.value.field == "until"
    with pytest.raises(InvalidInput) as unfinished:
        await rig.service.clean([JobStatus.PENDING], older_than=0)
    assert unfinished.value.field == "status"
    assert rig.service.get(encoded) == before
    assert rig.journalled() == journalled


def never_built(job: Job) -> JobSpec:
    raise AssertionError("a config job's new definition is never even built")


Edit = Callable[[JobService, str], Awaitable[Any]]
EDITS: dict[str, Edit] = {
    "modify": lambda service, job_id: service.modify(job_id, never_built),
    "delete": lambda service, job_id: service.delete(job_id),
}


@pytest.mark.parametrize("action", list(EDITS))
async def test_a_job_from_config_toml_is_not_changed_or_removed_over_the_service(
    rig: Rig, action: str
) -> None:
    job = await rig.create(source=Source.CONFIG, schedule={"every": "1h"}, name="nightly")
    encoded = ids.encode(job.id)
    before, journalled = rig.service.get(encoded), rig.journalled()
    with pytest.raises(InvalidState) as refused:
        await EDITS[action](rig.service, encoded)
    assert refused.value.field == "source"
    assert "config.toml" in refused.value.message
    assert rig.service.get(encoded) == before
    assert rig.journalled() == journalled
    paused = await rig.service.pause(encoded)  # an action, not an edit: still allowed
    assert paused.status is JobStatus.PAUSED


async def test_a_workflow_saved_again_keeps_its_one_job(rig: Rig) -> None:
    first, created = await rig.service.upsert_workflow("wf", rig.spec(schedule={"every": "1h"}))
    again, created_again = await rig.service.upsert_workflow(
        "wf", rig.spec(schedule={"every": "2h"})
    )
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert again.schedule.every == 7200
    assert [job.id for job in rig.sched.store.workflow_jobs("wf")] == [first.id]
    assert await rig.service.delete_workflow("wf") == 1
    assert rig.service.find_workflow("wf") is None
    with pytest.raises(WorkflowNotFound) as missing:
        await rig.service.delete_workflow("wf")
    assert isinstance(missing.value, SchedulerError)
    assert missing.value.field == "workflowId"
