"""The library API checks what it is given, as the HTTP API does, naming the argument."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from scheduler.config import Config, PersistenceConfig
from scheduler.errors import InvalidInput
from scheduler.runtime.library import Scheduler


async def noop(payload: Any) -> None:
    return None


@pytest.fixture
async def sched() -> AsyncIterator[Scheduler]:
    sched = Scheduler(Config(persistence=PersistenceConfig(enabled=False)))
    sched.register_task("noop", noop)
    await sched.start()
    yield sched
    await sched.stop(grace=0)


def deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    "payload", [deep(1000), 10**30, {"text": "\ud800"}], ids=["deep", "bigint", "surrogate"]
)
async def test_a_payload_the_journal_cannot_hold_is_refused_naming_payload(
    sched: Scheduler, payload: Any
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await sched.create_task("noop", payload)
    assert caught.value.field == "payload"
    assert len(sched.store) == 0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"retries": True}, "retries"),
        ({"concurrency": 0}, "concurrency"),
    ],
)
def test_register_task_checks_its_limits(options: dict[str, Any], field: str) -> None:
    sched = Scheduler(Config(persistence=PersistenceConfig(enabled=False)))
    with pytest.raises(InvalidInput) as caught:
        sched.register_task("noop", noop, **options)
    assert caught.value.field == field
    assert "noop" not in sched.runtimes


def test_register_task_takes_a_duration_text_for_its_timeout() -> None:
    sched = Scheduler(Config(persistence=PersistenceConfig(enabled=False)))
    sched.register_task("noop", noop, timeout="90s")
    assert sched.runtimes["noop"].timeout == 90.0
