"""A job's schedule is compiled once on its way in: the input check's compilation is the one
the service computes the first run with and the engine keeps for every later occurrence."""

from __future__ import annotations

from typing import Any

import pytest

import scheduler.jobspec
import scheduler.schedules
import scheduler.triggers
from tests.api.harness import running_api

HOUR = 3600.0


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every compilation of a schedule, wherever it happens."""
    seen: list[Any] = []
    real = scheduler.triggers.compile_schedule

    def counting(schedule: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(schedule)
        return real(schedule, *args, **kwargs)

    for module in (scheduler.triggers, scheduler.jobspec, scheduler.schedules):
        monkeypatch.setattr(module, "compile_schedule", counting)
    return seen


@pytest.mark.parametrize(
    "schedule",
    [
        {"cron": "0 * * * *"},
        {"rrule": "FREQ=HOURLY;BYMINUTE=0"},
        {"repeat": {"freq": "daily", "time": "10:00"}},
        {"every": "1h"},
        {"at": "2030-01-08T09:00"},
    ],
    ids=["cron", "rrule", "repeat", "every", "at"],
)
async def test_a_created_job_is_compiled_once_through_its_runs(
    compiles: list[Any], schedule: dict[str, Any]
) -> None:
    async with running_api() as api:
        job = await api.create(schedule=schedule)
        await api.clock.advance(25 * HOUR)
        assert (await api.get(job["id"]))["runs"] >= 1
    assert len(compiles) == 1, compiles


async def test_changing_the_schedule_compiles_the_new_one_once(compiles: list[Any]) -> None:
    async with running_api() as api:
        job = await api.create(schedule={"cron": "0 * * * *"})
        status, _ = await api.call(
            "PATCH", f"/api/jobs/{job['id']}", json={"schedule": {"cron": "30 * * * *"}}
        )
        assert status == 200
        await api.clock.advance(5 * HOUR)
    assert len(compiles) == 2, compiles
