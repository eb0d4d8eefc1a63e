"""A job's schedule is compiled once on its way in: the spec keeps the compilation that
validated it (with the creation instant it was for), and hands it out instead of compiling
again; the kept trigger is a cache, never part of the spec's value."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler import jobspec
from scheduler.clock import to_datetime
from scheduler.jobspec import JobDefaults, JobSpec, parse_job_input
from scheduler.model import Schedule
from scheduler.schedules import load_zone
from scheduler.triggers import Trigger, compile_schedule

DEFAULTS = JobDefaults(timezone="Asia/Seoul")
CREATED = datetime(2026, 11, 22, 0, 0, 30, 250000, tzinfo=UTC)
#: Runs now, or after a delay: nothing to validate by compiling, and a new job's first run
#: needs no trigger, so these are compiled only when something asks for the trigger.
CERTAIN: list[dict[str, Any]] = [{}, {"delay": "15m"}]
SCHEDULES: list[dict[str, Any]] = [
    {"at": "2027-03-01T09:00"},
    {"every": "90s"},
    {"every": "1h", "start": "2026-11-01T00:00"},
    {"cron": "0 9 * * 1-5"},
    {"repeat": {"freq": "weekly", "time": "08:30"}},
    {"rrule": "FREQ=MINUTELY;INTERVAL=7;COUNT=20"},
]


@pytest.fixture
def compiles() -> Iterator[mock.MagicMock]:
    """Every compilation the job parser and the spec make."""
    with mock.patch.object(jobspec, "compile_schedule", wraps=compile_schedule) as spy:
        yield spy


def parse(schedule: dict[str, Any], created: datetime = CREATED) -> JobSpec:
    return parse_job_input(
        {"task": "t", "schedule": schedule}, defaults=DEFAULTS, style="camel", created=created
    )


def runs(trigger: Trigger, after: datetime, n: int = 3) -> list[str]:
    found: list[str] = []
    moment: datetime | None = trigger.first_run(after)
    while moment is not None and len(found) < n:
        found.append(moment.isoformat())
        moment = trigger.next_after(moment)
    return found


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_the_spec_hands_out_the_compilation_that_validated_it(
    compiles: mock.MagicMock, schedule: dict[str, Any]
) -> None:
    spec = parse(schedule)
    assert compiles.call_count == 1
    assert spec.compiled_for == CREATED.timestamp()
    trigger = spec.trigger(CREATED.timestamp())
    assert compiles.call_count == 1  # not compiled again
    fresh = compile_schedule(spec.schedule, load_zone(spec.timezone), created=CREATED)
    assert runs(trigger, CREATED) == runs(fresh, CREATED)


@pytest.mark.parametrize("schedule", CERTAIN, ids=repr)
def test_a_schedule_certain_to_compile_is_compiled_only_when_asked_for(
    compiles: mock.MagicMock, schedule: dict[str, Any]
) -> None:
    spec = parse(schedule)
    assert compiles.call_count == 0
    assert spec.compiled_for is None
    trigger = spec.trigger(CREATED.timestamp())
    assert spec.trigger(CREATED.timestamp()) is trigger
    assert compiles.call_count == 1
    fresh = compile_schedule(spec.schedule, load_zone(spec.timezone), created=CREATED)
    assert runs(trigger, CREATED) == runs(fresh, CREATED)


def test_another_creation_instant_is_compiled_once_and_kept(compiles: mock.MagicMock) -> None:
    spec = parse({"every": "90s"})
    later = CREATED.timestamp() + 0.5
    first = spec.trigger(later)
    assert compiles.call_count == 2
    assert spec.trigger(later) is first
    assert compiles.call_count == 2
    assert spec.compiled_for == later
    assert runs(first, CREATED)[0] == "2026-11-22T09:02:00.750000+09:00"  # created + 90 s


def test_the_kept_trigger_is_not_part_of_the_spec() -> None:
    spec = parse({"cron": "0 9 * * *"})
    twin = JobSpec(**msgspec.structs.asdict(spec))
    assert twin.compiled_for is None
    assert spec == twin
    assert msgspec.json.encode(spec) == msgspec.json.encode(twin)
    assert "_compiled" not in msgspec.to_builtins(spec)
    assert msgspec.structs.replace(spec, name="renamed").compiled_for is None


def test_a_spec_built_in_code_compiles_when_first_asked() -> None:
    spec = JobSpec(task="t", timezone="Europe/Berlin", schedule=Schedule(cron="0 9 * * *"))
    assert spec.compiled_for is None
    trigger = spec.trigger(CREATED.timestamp())
    assert runs(trigger, CREATED, 2) == ["2026-11-22T09:00:00+01:00", "2026-11-23T09:00:00+01:00"]
    assert spec.compiled_for == CREATED.timestamp()


@settings(max_examples=60, deadline=None)
@given(
    instant=st.floats(min_value=86400 * 2, max_value=4e9, allow_nan=False),
    schedule=st.sampled_from(SCHEDULES),
    zone=st.sampled_from(["Asia/Seoul", "America/New_York", "Australia/Lord_Howe", "UTC"]),
)
def test_any_creation_instant_finds_the_compilation_made_for_it(
    instant: float, schedule: dict[str, Any], zone: str
) -> None:
    """The library parses at ``to_datetime(now)`` and builds at ``now``: whatever the float,
    the spec recognises the instant it was compiled for (to the microsecond)."""
    with mock.patch.object(jobspec, "compile_schedule", wraps=compile_schedule) as spy:
        spec = parse({**schedule, "timezone": zone}, created=to_datetime(instant))
        kept = spec.trigger(instant)
        assert spec.compiled_for is not None
        assert spec.trigger(spec.compiled_for) is kept
        assert spy.call_count == 1
