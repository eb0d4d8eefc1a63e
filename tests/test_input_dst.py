"""A local pause ``until`` is read by the one DST rule (issue 10.7): a time in a spring-forward
gap is the gap's end and a time in a fall-back fold its first occurrence, exactly as an ``at``
time and ``scheduler next --after`` read it. Vectors compared as ISO strings with offsets."""

from __future__ import annotations

from datetime import datetime

import pytest

from scheduler.api.inputs import expect_instant
from scheduler.cli.next import preview
from scheduler.schedules import load_zone
from tests.api.harness import Api

#: (zone, local wall time, the instant it names), all after the harness's clock (2030-01-07).
VECTORS = [
    # gaps: the first instant after the gap
    ("America/New_York", "2030-03-10T02:30", "2030-03-10T03:00:00-04:00"),
    ("America/New_York", "2030-03-10T02:00", "2030-03-10T03:00:00-04:00"),
    ("Europe/London", "2030-03-31T01:59:59", "2030-03-31T02:00:00+01:00"),
    ("Australia/Lord_Howe", "2030-10-06T02:15", "2030-10-06T02:30:00+11:00"),
    # folds: the first occurrence
    ("America/New_York", "2030-11-03T01:30", "2030-11-03T01:30:00-04:00"),
    ("Europe/London", "2030-10-27T01:00", "2030-10-27T01:00:00+01:00"),
    ("Australia/Lord_Howe", "2030-04-07T01:45", "2030-04-07T01:45:00+11:00"),
    # ordinary times, and a time with its own offset, are what they say
    ("America/New_York", "2030-03-10T03:30", "2030-03-10T03:30:00-04:00"),
    ("America/New_York", "2030-11-03T01:30-05:00", "2030-11-03T01:30:00-05:00"),
]


def in_zone(text: str, zone: str) -> str:
    """An ISO instant from the API, shown in ``zone`` to the second."""
    return datetime.fromisoformat(text).astimezone(load_zone(zone)).isoformat()


@pytest.mark.parametrize(("zone", "wall", "expected"), VECTORS)
async def test_pause_until_reads_a_local_time_like_at_and_next_after(
    api: Api, zone: str, wall: str, expected: str
) -> None:
    job = await api.create(schedule={"every": "1h"}, timezone=zone)
    status, paused = await api.call("POST", f"/api/jobs/{job['id']}/pause", json={"until": wall})
    assert status == 200, paused
    assert in_zone(paused["pausedUntil"], zone) == expected

    at_job = await api.create(schedule={"at": wall}, timezone=zone)
    assert in_zone(at_job["scheduledTime"], zone) == expected

    (after,) = preview("{}", tz=zone, after=wall, n=1)  # an immediate job "created" at TIME
    assert after.isoformat() == expected


@pytest.mark.parametrize(("zone", "wall", "expected"), VECTORS)
def test_expect_instant_gives_the_instant_of_the_dst_rule(
    zone: str, wall: str, expected: str
) -> None:
    stamp = expect_instant(zone)(wall, "until")
    assert datetime.fromtimestamp(stamp, load_zone(zone)).isoformat() == expected
