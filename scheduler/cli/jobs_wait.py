"""``scheduler jobs run ID --wait``: run a job now and follow it to its outcome.

The job's event stream (``GET /api/events?jobId=ID``) is opened before the run is asked for,
so not one of its events can be missed, however fast the run. Then:

- ``job-progress`` redraws the bar: one line redrawn with ``\\r`` on a terminal, one line per
  report otherwise (a log file or a pipe gets no carriage returns);
- a settled event (``job-completed``, ``job-failed``, ``job-retry``, ``job-cancelled``) ends the
  wait when it is ``final``; an attempt that will be retried (``final: false``) is reported
  and the wait goes on to the next attempt. A settled event counts only after a
  ``job-started`` on this stream (or when it is a cancel, which may come before any start), so
  the end of a run already in flight when ours was queued (``overlap = "buffer_one"``) is not
  taken for ours;
- ``--timeout`` bounds it all, the stream's quiet spells included: on time out the run goes on
  in the daemon and the command says so.

While dispatching is paused the run would not start before the timeout, so that is refused at
once (exit 4), as the API refuses ``?wait=true`` then.

Exit 0 when the run succeeded, 6 when it failed, was cancelled or time ran out; the outcome
line (or, with ``--json``, the job with its ``run``, as ``POST .../run?wait=true`` answers)
comes from the daemon's record of the run, read once it has settled.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TextIO

from scheduler.cli.exits import CONFLICT, ERROR, OK, RUN_FAILED, Failure
from scheduler.cli.http import Client, Event, TimedOut, job_path
from scheduler.cli.jobs_view import STARTED, outcome_line, retry_line, row_of
from scheduler.cli.tables import bar, width
from scheduler.i18n import N_, _

SETTLED: Final = frozenset({"job-completed", "job-failed", "job-retry", "job-cancelled"})
NOT_FINISHED = N_(
    "the run of {id} had not finished after {timeout} s; it goes on in the daemon "
    "(scheduler jobs show {id})"
)
DISPATCH_PAUSED = N_(
    "the scheduler is paused, so the run would not start; resume it first "
    "(POST /api/scheduler/resume)"
)
STREAM_ENDED = N_(
    "the daemon closed the event stream before the run of {id} finished (scheduler jobs runs {id})"
)


class Progress:
    """The progress bar: redrawn in place on a terminal, one line per report elsewhere."""

    def __init__(self, out: TextIO, *, tty: bool, columns: int, quiet: bool = False) -> None:
        self.out = out
        self.tty = tty
        self.columns = columns
        self.quiet = quiet  # --json: stdout is for the one document
        self._drawn = 0  # cells of the line on screen (terminal only)

    def show(self, percent: float, message: object) -> None:
        if self.quiet:
            return
        line = bar(percent, message, columns=self.columns)
        if self.tty:
            self.out.write("\r" + line + " " * max(0, self._drawn - width(line)))
            self._drawn = width(line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A line of its own, below the bar."""
        if self.quiet:
            return
        self.end()
        self.out.write(text + "\n")
        self.out.flush()

    def end(self) -> None:
        """Leave the bar's line (terminal): what follows starts on a line of its own."""
        if self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = 0


def run_and_wait(
    client: Client,
    job_id: str,
    *,
    query: Mapping[str, str] | None,
    timeout: float,
    progress: Progress,
    monotonic: Callable[[], float],
    as_json: bool,
) -> int:
    """Queue a run of ``job_id`` and follow it (see the module docstring). While dispatching
    is paused the run would not start before the timeout: refused, as ``?wait=true`` is."""
    card = client.call("GET", "/api/scheduler")
    if isinstance(card, Mapping) and card.get("state") == "paused":
        raise Failure(_(DISPATCH_PAUSED), CONFLICT)
    deadline = monotonic() + timeout
    late = Failure(_(NOT_FINISHED).format(id=job_id, timeout=f"{timeout:g}"), RUN_FAILED)
    try:
        stream = client.events(
            "/api/events", {"jobId": job_id}, deadline=deadline, monotonic=monotonic
        )
    except TimedOut:
        raise late from None
    with stream:
        client.call("POST", job_path(job_id, "run"), query=query)
        try:
            settled = follow(stream, progress)
        except TimedOut:
            raise late from None
        finally:
            progress.end()
    if settled is None:
        raise Failure(_(STREAM_ENDED).format(id=job_id), ERROR)
    job = client.call("GET", job_path(job_id))
    runs = client.call("GET", job_path(job_id, "runs"))
    items = runs.get("items", []) if isinstance(runs, Mapping) else []
    run = row_of([item for item in items if isinstance(item, Mapping)], settled.data)
    if as_json:
        doc: Any = {**job, "run": run} if isinstance(job, Mapping) else job
        progress.out.write(json.dumps(doc, indent=2) + "\n")
    else:
        progress.out.write(outcome_line(settled.data, run))
    return OK if settled.data.get("outcome") == "success" else RUN_FAILED


def follow(events: Iterable[Event], progress: Progress) -> Event | None:
    """Draw the run's progress until its final settled event (returned); None when the
    stream ended first. Raises :class:`TimedOut` from the stream."""
    started = False
    for event in events:
        data = event.data
        if event.type == "job-started":
            started = True
            progress.show(0.0, _(STARTED).format(attempt=data.get("attempt")))
        elif event.type == "job-progress":
            percent = data.get("percent")
            if isinstance(percent, int | float) and not isinstance(percent, bool):
                progress.show(float(percent), data.get("message"))
        elif event.type in SETTLED and (started or event.type == "job-cancelled"):
            if data.get("final") is not False:
                return event
            progress.note(retry_line(data))
            started = False
    return None
