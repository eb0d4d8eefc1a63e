"""Maintenance windows, the pure part (:mod:`scheduler.maintenance`): when a window opens and
closes, across DST days, how overlapping windows merge, which tasks a window holds, and that
asking is cheap. Instants are compared as ISO strings so the offsets show."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scheduler.maintenance import MAX_WINDOWS, Maintenance, Window, WindowSpec, openings

SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")


def at(text: str) -> float:
    """An ISO instant with its offset -> epoch seconds."""
    return datetime.fromisoformat(text).timestamp()


def spec(
    name: str = "w", duration: float = 3600.0, zone: str = "Asia/Seoul", **kw: Any
) -> WindowSpec:
    return WindowSpec(name=name, duration=duration, timezone=zone, **kw)


def shown(window: Window | None) -> tuple[str, str, str] | None:
    """A window as (name, start, end), ISO in its own zone."""
    if window is None:
        return None
    zone = ZoneInfo(window.timezone)
    start, end = (datetime.fromtimestamp(t, zone).isoformat() for t in (window.start, window.end))
    return window.name, start, end


# --- opening and closing ------------------------------------------------------------------------

NIGHTLY = Maintenance([spec("backup", cron="0 2 * * *", tasks=("report",))])


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        ("2026-12-04T01:59:59+09:00", None),
        (
            "2026-12-04T02:00:00+09:00",
            ("backup", "2026-12-04T02:00:00+09:00", "2026-12-04T03:00:00+09:00"),
        ),
        (
            "2026-12-04T02:59:59.999000+09:00",
            ("backup", "2026-12-04T02:00:00+09:00", "2026-12-04T03:00:00+09:00"),
        ),
        ("2026-12-04T03:00:00+09:00", None),
    ],
    ids=["before", "exact-start-is-open", "just-before-the-end", "exact-end-is-closed"],
)
def test_a_window_is_open_from_its_start_included_to_its_end_excluded(
    instant: str, expected: tuple[str, str, str] | None
) -> None:
    assert shown(NIGHTLY.open_for("report", at(instant))) == expected


def test_a_window_holds_only_its_tasks_and_one_without_tasks_holds_every_task() -> None:
    inside = at("2026-12-04T02:30:00+09:00")
    assert NIGHTLY.open_for("report", inside) is not None
    assert NIGHTLY.open_for("email", inside) is None
    everything = Maintenance([spec("all", cron="0 2 * * *")])
    assert shown(everything.open_for("email", inside)) == (
        "all",
        "2026-12-04T02:00:00+09:00",
        "2026-12-04T03:00:00+09:00",
    )


def test_a_window_opened_before_the_first_question_is_seen_open() -> None:
    """Asked first in the middle of a window (the daemon started inside it), it is open."""
    fresh = Maintenance([spec("backup", cron="0 2 * * *")])
    assert shown(fresh.open_for("x", at("2026-12-04T02:59:00+09:00"))) == (
        "backup",
        "2026-12-04T02:00:00+09:00",
        "2026-12-04T03:00:00+09:00",
    )


def test_asking_backwards_in_time_is_answered_too() -> None:
    windows = Maintenance([spec("backup", cron="0 2 * * *")])
    assert windows.open_for("x", at("2026-12-05T02:30:00+09:00")) is not None
    assert windows.open_for("x", at("2026-12-04T01:30:00+09:00")) is None  # a clock step back
    assert windows.open_for("x", at("2026-12-04T02:30:00+09:00")) is not None


# --- DST days --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "after", "expected"),
    [
        # Seoul has no DST: the same wall time every day.
        (
            spec(cron="0 2 * * *"),
            "2026-03-07T12:00:00+09:00",
            [("2026-03-08T02:00:00+09:00", "2026-03-08T03:00:00+09:00")],
        ),
        (
            spec(rrule="FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0"),
            "2026-12-01T00:00:00+09:00",
            [
                ("2026-12-06T02:00:00+09:00", "2026-12-06T03:00:00+09:00"),
                ("2026-12-13T02:00:00+09:00", "2026-12-13T03:00:00+09:00"),
            ],
        ),
        # New York springs forward at 02:00 on 2026-03-08: cron's 02:30 runs at the gap's end.
        (
            spec(cron="30 2 * * *", zone="America/New_York"),
            "2026-03-07T12:00:00-05:00",
            [
                ("2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"),
                ("2026-03-09T02:30:00-04:00", "2026-03-09T03:30:00-04:00"),
            ],
        ),
        # RFC 5545: a gap time is read with the offset before the gap (02:30 -> 03:30).
        (
            spec(rrule="FREQ=DAILY;BYHOUR=2;BYMINUTE=30", zone="America/New_York"),
            "2026-03-07T12:00:00-05:00",
            [
                ("2026-03-08T03:30:00-04:00", "2026-03-08T04:30:00-04:00"),
                ("2026-03-09T02:30:00-04:00", "2026-03-09T03:30:00-04:00"),
            ],
        ),
        # The duration is absolute: four hours from midnight on the spring-forward day.
        (
            spec(cron="0 0 * * *", zone="America/New_York", duration=4 * 3600.0),
            "2026-03-07T12:00:00-05:00",
            [("2026-03-08T00:00:00-05:00", "2026-03-08T05:00:00-04:00")],
        ),
        # Falling back on 2026-11-01: 01:30 happens twice; cron opens at the first one, and an
        # hour later it is 01:30 again, in standard time.
        (
            spec(cron="30 1 * * *", zone="America/New_York"),
            "2026-10-31T12:00:00-04:00",
            [
                ("2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00"),
                ("2026-11-02T01:30:00-05:00", "2026-11-02T02:30:00-05:00"),
            ],
        ),
    ],
    ids=[
        "seoul-cron",
        "seoul-rrule-weekly",
        "new-york-cron-gap",
        "new-york-rrule-gap",
        "new-york-duration-across-the-gap",
        "new-york-cron-fold",
    ],
)
def test_openings_follow_the_schedule_dst_rules_of_the_window_zone(
    window: WindowSpec, after: str, expected: list[tuple[str, str]]
) -> None:
    found = [shown(w) for w in openings(window, at(after), len(expected))]
    assert found == [(window.name, start, end) for start, end in expected]
    windows = Maintenance([window])
    first_start, first_end = expected[0]
    assert shown(windows.open_for("x", at(first_start))) == (window.name, first_start, first_end)
    assert windows.open_for("x", at(first_end)) is None


# --- overlaps ---------------------------------------------------------------------------------


def test_openings_of_one_window_that_overlap_are_one_window() -> None:
    twice = Maintenance([spec("twice", cron="0,30 2 * * *")])
    expected = ("twice", "2026-12-04T02:00:00+09:00", "2026-12-04T03:30:00+09:00")
    assert shown(twice.open_for("x", at("2026-12-04T02:10:00+09:00"))) == expected
    assert shown(twice.open_for("x", at("2026-12-04T03:10:00+09:00"))) == expected
    assert [
        shown(w)
        for w in twice.between(at("2026-12-04T00:00:00+09:00"), at("2026-12-04T23:00:00+09:00"))
    ] == [expected]


def test_windows_that_overlap_merge_and_the_one_that_ends_last_names_them() -> None:
    windows = Maintenance(
        [
            spec("backup", cron="0 2 * * *"),
            spec("reindex", cron="30 2 * * *", tasks=("report",)),
            spec("vacuum", cron="30 3 * * *", tasks=("report",)),  # touches reindex's end
        ]
    )
    early = at("2026-12-04T02:10:00+09:00")
    assert shown(windows.open_for("report", early)) == (
        "vacuum",
        "2026-12-04T02:00:00+09:00",
        "2026-12-04T04:30:00+09:00",
    )
    assert shown(windows.open_for("email", early)) == (
        "backup",
        "2026-12-04T02:00:00+09:00",
        "2026-12-04T03:00:00+09:00",
    )
    assert windows.open_for("report", at("2026-12-04T04:30:00+09:00")) is None


def test_a_window_always_open_is_seen_closing_a_bounded_distance_ahead() -> None:
    always = Maintenance([spec("freeze", cron="* * * * *", duration=7200.0)])
    now = at("2026-12-04T02:00:30+09:00")
    window = always.open_for("x", now)
    assert window is not None
    assert window.start < now < window.end < now + 2 * 100 * 7200


# --- listings ----------------------------------------------------------------------------------


def test_current_next_and_between() -> None:
    windows = Maintenance(
        [spec("backup", cron="0 2 * * *", tasks=("report",)), spec("weekly", cron="0 4 * * 0")]
    )
    now = at("2026-12-04T02:30:00+09:00")  # a Friday
    assert [shown(w) for w in windows.current(now)] == [
        ("backup", "2026-12-04T02:00:00+09:00", "2026-12-04T03:00:00+09:00")
    ]
    assert [shown(w) for w in windows.next(now)] == [
        ("backup", "2026-12-05T02:00:00+09:00", "2026-12-05T03:00:00+09:00"),
        ("weekly", "2026-12-06T04:00:00+09:00", "2026-12-06T05:00:00+09:00"),
    ]
    day = [shown(w) for w in windows.between(now, now + 48 * 3600)]
    assert day == [
        ("backup", "2026-12-04T02:00:00+09:00", "2026-12-04T03:00:00+09:00"),
        ("backup", "2026-12-05T02:00:00+09:00", "2026-12-05T03:00:00+09:00"),
        ("backup", "2026-12-06T02:00:00+09:00", "2026-12-06T03:00:00+09:00"),
    ]
    assert [shown(w) for w in windows.between(now, now + 48 * 3600, "email")] == []
    assert windows.current(at("2026-12-04T03:00:00+09:00")) == []


def test_between_is_bounded() -> None:
    busy = Maintenance([spec("tick", cron="* * * * *", duration=1.0)])
    now = at("2026-12-04T00:00:00+09:00")
    found = busy.between(now, now + 7 * 86400)
    assert len(found) == MAX_WINDOWS
    assert [w.start for w in found] == sorted(w.start for w in found)


def test_a_window_whose_rule_has_ended_never_opens() -> None:
    ended = Maintenance([spec("once", rrule="DTSTART:20200101T020000\nFREQ=DAILY;COUNT=2")])
    now = at("2026-12-04T02:30:00+09:00")
    assert ended.open_for("x", now) is None
    assert ended.next(now) == []
    assert not Maintenance()
    assert Maintenance().open_for("x", now) is None


def test_time_covered_by_windows_counts_overlaps_once() -> None:
    windows = Maintenance([spec("a", cron="0 2 * * *"), spec("b", cron="30 2 * * *")])
    since, until = at("2026-12-04T01:00:00+09:00"), at("2026-12-04T03:10:00+09:00")
    assert windows.covered("x", since, until) == 70 * 60


# --- cost --------------------------------------------------------------------------------------


class CountingTimeline:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def next_after(self, instant: float) -> float | None:
        self.calls += 1
        result: float | None = self.inner.next_after(instant)
        return result

    def latest(self, since: float, until: float) -> float | None:
        self.calls += 1
        result: float | None = self.inner.latest(since, until)
        return result


def test_asking_again_costs_no_trigger_query_until_the_cached_window_has_passed() -> None:
    windows = Maintenance([spec("backup", cron="0 2 * * *")])
    entry = windows._entries[0]
    counting = CountingTimeline(entry.timeline)
    entry.timeline = counting  # type: ignore[assignment]  # a counting stand-in
    start = at("2026-12-04T00:00:00+09:00")
    for minute in range(24 * 60):  # a day, asked every minute: two windows are computed
        windows.open_for("x", start + 60 * minute)
    computed = counting.calls
    assert 0 < computed <= 2 * 4
    opening = at("2026-12-05T02:00:00+09:00")
    for second in range(3600):  # the next window, cached: open, and nothing is asked
        assert windows.open_for("x", opening + second) is not None
    assert counting.calls == computed
