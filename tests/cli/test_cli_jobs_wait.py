"""``scheduler jobs run --wait`` without a daemon: the bar, following the event stream through
retries to the final outcome, the outcome line, and the requests in their order (the stream is
open before the run is asked for).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from scheduler.cli import exits
from scheduler.cli.exits import Failure
from scheduler.cli.http import Event, TimedOut
from scheduler.cli.jobs_view import outcome_line, retry_line, row_of
from scheduler.cli.jobs_wait import Progress, follow, run_and_wait
from scheduler.cli.tables import bar, width

# --- the bar and the run's end ----------------------------------------------------------------


def test_the_bar_shows_the_percent_and_the_message_within_the_line() -> None:
    assert bar(25, "copying", columns=80) == "[#####---------------]  25%  copying"
    assert bar(100, None, columns=80) == "[####################] 100%"
    assert bar(99.9, "", columns=80) == "[###################-]  99%"
    assert bar(-5, None, columns=80) == "[--------------------]   0%"
    long = bar(50, "m" * 300, columns=80)
    assert width(long) == 79
    assert long.endswith("m…")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_is_redrawn_in_place_elsewhere_each_report_is_a_line() -> None:
    screen = Tty()
    progress = Progress(screen, tty=True, columns=80)
    progress.show(50, "a long message")
    progress.show(75, "short")
    progress.note("attempt 1 ended")
    assert screen.getvalue() == (
        "\r[##########----------]  50%  a long message"
        "\r[###############-----]  75%  short         "
        "\nattempt 1 ended\n"
    )
    log = io.StringIO()
    plain = Progress(log, tty=False, columns=80)
    plain.show(50, "half")
    plain.end()
    assert log.getvalue() == "[##########----------]  50%  half\n"
    quiet = io.StringIO()
    Progress(quiet, tty=False, columns=80, quiet=True).show(50, "x")
    assert quiet.getvalue() == ""


def ev(kind: str, **data: Any) -> Event:
    return Event(kind, {"jobId": "18a4c1e9c1800000", **data})


def test_following_a_run_waits_through_a_retry_to_the_final_outcome() -> None:
    out = io.StringIO()
    events = [
        ev("job-completed", outcome="success", attempt=3, final=True),  # a run before ours
        ev("job-started", attempt=1, fire=0.0),
        ev("job-progress", percent=40, message="half"),
        ev("job-retry", outcome="error", attempt=1, error="boom", final=False),
        ev("job-started", attempt=2, fire=0.0),
        ev("job-progress", percent=100, message=None),
        ev("job-completed", outcome="success", attempt=2, error=None, final=True),
        ev("job-progress", percent=1, message="never read"),
    ]
    settled = follow(events, Progress(out, tty=False, columns=80))
    assert settled == events[6]
    assert out.getvalue().splitlines() == [
        "[--------------------]   0%  started (attempt 1)",
        "[########------------]  40%  half",
        "attempt 1 ended: error: boom; it will be retried",
        "[--------------------]   0%  started (attempt 2)",
        "[####################] 100%",
    ]


def test_a_cancel_ends_the_wait_even_before_a_start_and_a_closed_stream_returns_none() -> None:
    out = io.StringIO()
    cancelled = ev("job-cancelled", outcome="cancelled", attempt=0, final=True)
    assert follow([cancelled], Progress(out, tty=False, columns=80)) == cancelled
    assert follow([ev("job-started", attempt=1)], Progress(out, tty=False, columns=80)) is None


def test_the_outcome_line_takes_the_duration_from_the_matching_run_record() -> None:
    data = {"outcome": "error", "attempt": 1, "error": "exit code 3: broken\n"}
    run = {"attempt": 1, "outcome": "error", "duration": 0.031}
    assert row_of([run], data) is run
    assert row_of([run | {"attempt": 2}], data) is None
    assert (
        outcome_line(data, run) == "Outcome: error (attempt 1, took 0.03 s): exit code 3: broken\n"
    )
    assert outcome_line({"outcome": "cancelled", "attempt": 0}, None) == (
        "Outcome: cancelled (attempt 0, took -)\n"
    )
    assert retry_line(data) == "attempt 1 ended: error: exit code 3: broken; it will be retried"


# --- run --wait, its requests in order ----------------------------------------------------------

JOB_ID = "18a4c1e9c1800000"


class FakeStream:
    def __init__(self, events: list[Event], *, then_time_out: bool) -> None:
        self.events = events
        self.then_time_out = then_time_out
        self.closed = False

    def __enter__(self) -> FakeStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True

    def __iter__(self) -> Iterator[Event]:
        yield from self.events
        if self.then_time_out:
            raise TimedOut


class FakeClient:
    """The daemon as ``run_and_wait`` sees it: each request recorded in order."""

    def __init__(self, events: list[Event], *, state: str = "running", late: bool = False):
        self.stream = FakeStream(events, then_time_out=late)
        self.state = state
        self.calls: list[tuple[str, str]] = []

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls.append((method, path))
        if path == "/api/scheduler":
            return {"state": self.state}
        if path.endswith("/runs"):
            return {"items": [{"attempt": 1, "outcome": "error", "duration": 1.5}], "total": 1}
        return {"id": JOB_ID, "status": "pending"}

    def events(self, path: str, query: dict[str, str], **kwargs: Any) -> FakeStream:
        self.calls.append(("STREAM", f"{path}?jobId={query['jobId']}"))
        return self.stream


def wait_for(client: FakeClient, *, as_json: bool = False) -> tuple[int, str]:
    out = io.StringIO()
    fake: Any = client
    code = run_and_wait(
        fake,
        JOB_ID,
        query=None,
        timeout=90.0,
        progress=Progress(out, tty=False, columns=80, quiet=as_json),
        monotonic=lambda: 0.0,
        as_json=as_json,
    )
    return code, out.getvalue()


FAILED_RUN = [
    ev("job-started", attempt=1),
    ev("job-failed", outcome="error", attempt=1, error="boom", final=True),
]


def test_the_stream_is_opened_before_the_run_is_asked_for() -> None:
    client = FakeClient(FAILED_RUN)
    code, out = wait_for(client)
    assert code == exits.RUN_FAILED
    assert client.calls == [
        ("GET", "/api/scheduler"),
        ("STREAM", f"/api/events?jobId={JOB_ID}"),
        ("POST", f"/api/jobs/{JOB_ID}/run"),
        ("GET", f"/api/jobs/{JOB_ID}"),
        ("GET", f"/api/jobs/{JOB_ID}/runs"),
    ]
    assert client.stream.closed
    assert out.splitlines()[-1] == "Outcome: error (attempt 1, took 1.50 s): boom"


def test_with_json_the_one_document_is_the_job_with_its_run() -> None:
    code, out = wait_for(FakeClient(FAILED_RUN), as_json=True)
    assert code == exits.RUN_FAILED
    assert json.loads(out) == {
        "id": JOB_ID,
        "status": "pending",
        "run": {"attempt": 1, "outcome": "error", "duration": 1.5},
    }


def test_while_dispatch_is_paused_the_wait_is_refused_before_anything_runs() -> None:
    client = FakeClient(FAILED_RUN, state="paused")
    with pytest.raises(Failure) as refused:
        wait_for(client)
    assert refused.value.code == exits.CONFLICT
    assert "the scheduler is paused" in refused.value.message
    assert client.calls == [("GET", "/api/scheduler")]


def test_time_running_out_or_the_stream_ending_first_is_said() -> None:
    late = FakeClient([ev("job-started", attempt=1)], late=True)
    with pytest.raises(Failure) as timed_out:
        wait_for(late)
    assert timed_out.value.code == exits.RUN_FAILED
    assert timed_out.value.message == (
        f"the run of {JOB_ID} had not finished after 90 s; it goes on in the daemon "
        f"(scheduler jobs show {JOB_ID})"
    )
    assert late.stream.closed
    ended = FakeClient([ev("job-started", attempt=1)])
    with pytest.raises(Failure) as closed:
        wait_for(ended)
    assert closed.value.code == exits.ERROR
    assert "closed the event stream before the run" in closed.value.message
