"""The DST and calendar policy, pinned by the named vectors of ``tests/triggers/dst_vectors.py``
compared as ISO strings with offsets: the runs the single box lists for each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from scheduler.cli.next import upcoming
from scheduler.schedules import load_zone, parse_schedule
from scheduler.triggers import compile_schedule
from tests.triggers.dst_vectors import OVERRIDES, VECTORS


def runs(raw: dict[str, Any], zone: str, created: str, n: int) -> list[str]:
    schedule, _ = parse_schedule(raw)
    tz = load_zone(zone)
    start = datetime.fromisoformat(created)
    start = start.replace(tzinfo=tz) if start.tzinfo is None else start
    trigger = compile_schedule(schedule, tz, created=start)
    return [run.isoformat() for run in upcoming(trigger, start, n)]


@pytest.mark.parametrize(
    ("raw", "zone", "created", "expected"),
    [pytest.param(*vector[1:], id=vector[0]) for vector in VECTORS],
)
def test_vector(raw: dict[str, Any], zone: str, created: str, expected: list[str]) -> None:
    assert runs(raw, zone, created, len(expected)) == expected


@pytest.mark.parametrize(
    ("raw", "zone", "created", "expected"),
    [pytest.param(*vector[1:], id=vector[0]) for vector in OVERRIDES],
)
def test_dst_override(raw: dict[str, Any], zone: str, created: str, expected: list[str]) -> None:
    assert runs(raw, zone, created, len(expected) or 1) == expected
