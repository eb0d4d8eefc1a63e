"""What ``scheduler jobs`` prints, from the API's JSON documents: the job list, one job, its
runs, the explanation of its state, the line after an action and the outcome of a run.

Times are the API's, already in the job's zone: tables show them short (``2030-01-07 11:13``),
key/value pages to the second with the offset. Anything missing from a document shows as ``-``
rather than failing: the command must still print what it has when a daemon of another version
leaves a key out. Every label and sentence is a constant here, marked for the catalogue
(``N_``) and said in the operator's language where it is used (:mod:`scheduler.i18n`); so are
the API's statuses, types and outcomes (:func:`word`), which ``--json`` keeps as they came.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from scheduler.cli import explain_ko
from scheduler.cli.tables import (
    NONE,
    clip,
    key_values,
    long_time,
    safe,
    short_time,
    span,
    table,
)
from scheduler.i18n import N_, _

LIST_HEADERS: Final = (N_("ID"), N_("NAME"), N_("STATUS"), N_("SCHEDULED"), N_("TASK"))
LIST_FLEXIBLE: Final = (1, 4)  # the name, then the task, give way first
RUN_HEADERS: Final = (N_("SCHEDULED"), N_("ATTEMPT"), N_("OUTCOME"), N_("TOOK"), N_("NOTE"))
RUN_FLEXIBLE: Final = (4,)
NO_JOBS = N_("no jobs")
MORE_JOBS = N_("jobs {first}-{last} of {total}; --page {next} for more")
NO_RUNS = N_("no runs kept yet")
NOT_SCHEDULED = N_("immediately")
#: Cells a JSON value (payload, result) may take on ``show``; ``--json`` has it whole.
VALUE_CELLS: Final = 400

CARD: Final = {
    "id": N_("ID"),
    "name": N_("Name"),
    "workflow": N_("Workflow"),
    "status": N_("Status"),
    "progress": N_("Progress"),
    "type": N_("Type"),
    "schedule": N_("Schedule"),
    "timezone": N_("Time zone"),
    "scheduled": N_("Scheduled"),
    "created": N_("Created"),
    "executed": N_("Last started"),
    "completed": N_("Last ended"),
    "task": N_("Task"),
    "attempt": N_("Attempt"),
    "runs": N_("Runs"),
    "priority": N_("Priority"),
    "overlap": N_("Overlap"),
    "source": N_("Defined by"),
    "unique": N_("Unique key"),
    "payload": N_("Payload"),
    "error": N_("Error"),
    "result": N_("Result"),
}
PAUSED_UNTIL = N_("{status} until {until}")
PAUSE_REASON = N_("{status} ({reason})")
ATTEMPT = N_("{attempt} (retried up to {retries} times)")

EXPLAIN: Final = {
    "status": N_("Status"),
    "last": N_("Last expected"),
    "next": N_("Next run"),
    "timezone": N_("Time zone"),
    "reasons": N_("Reasons"),
}
NO_REASONS = N_("none")

#: The line after an action: ``paused: 0123… (nightly-backup), status paused``.
DONE: Final = {
    "run": N_("queued"),
    "pause": N_("paused"),
    "resume": N_("resumed"),
    "cancel": N_("cancelled"),
    "retry": N_("queued again"),
}
DONE_LINE = N_("{verb}: {id} ({name}); status {status}, scheduled {scheduled}")
DELETED_LINE = N_("deleted: {id}")

STARTED = N_("started (attempt {attempt})")
RETRYING = N_("attempt {attempt} ended: {outcome}{error}; it will be retried")
OUTCOME = N_("Outcome: {outcome} (attempt {attempt}, took {took}){error}")

#: The words of the API's values shown in text (``--json`` keeps the API's own): job statuses,
#: job types and run outcomes; a value a newer daemon adds is shown as it came.
WORDS: Final = {
    "pending": N_("pending"),
    "running": N_("running"),
    "completed": N_("completed"),
    "failed": N_("failed"),
    "cancelled": N_("cancelled"),
    "paused": N_("paused"),
    "immediate": N_("immediate"),
    "delayed": N_("delayed"),
    "scheduled": N_("scheduled"),
    "recurring": N_("recurring"),
    "success": N_("success"),
    "error": N_("error"),
    "timeout": N_("timeout"),
    "missed": N_("missed"),
    "skipped_overlap": N_("skipped_overlap"),
    "interrupted": N_("interrupted"),
}


def job_list(doc: Mapping[str, Any], columns: int) -> str:
    """The page as a table, and how to get the next page when there is one."""
    jobs = [job for job in doc.get("items", []) if isinstance(job, Mapping)]
    if not jobs:
        return _(NO_JOBS) + "\n"
    rows = [
        (
            job.get("id"),
            job.get("workflowName"),
            word(job.get("status")),
            short_time(job.get("scheduledTime")),
            job.get("task"),
        )
        for job in jobs
    ]
    lines = table([_(h) for h in LIST_HEADERS], rows, columns=columns, flexible=LIST_FLEXIBLE)
    page, limit, total = (_int(doc.get(key)) for key in ("page", "limit", "total"))
    first = (page - 1) * limit + 1
    last = first + len(jobs) - 1
    if page > 0 and limit > 0 and last < total:
        lines.append(_(MORE_JOBS).format(first=first, last=last, total=total, next=page + 1))
    return "".join(f"{line}\n" for line in lines)


def job_card(job: Mapping[str, Any]) -> str:
    """One job as ``Label  value`` lines."""
    rows: list[tuple[str, object]] = [
        (CARD["id"], job.get("id")),
        (CARD["name"], job.get("workflowName")),
    ]
    if job.get("workflowId") is not None:
        rows.append((CARD["workflow"], job.get("workflowId")))
    rows.append((CARD["status"], _status(job)))
    progress = job.get("progress")
    if isinstance(progress, Mapping):
        rows.append((CARD["progress"], _progress(progress)))
    rows += [
        (CARD["type"], word(job.get("type"))),
        (CARD["schedule"], _schedule(job.get("schedule"))),
        (CARD["timezone"], job.get("timezone")),
        (CARD["scheduled"], long_time(job.get("scheduledTime"))),
        (CARD["created"], long_time(job.get("createdAt"))),
        (CARD["executed"], long_time(job.get("executedAt"))),
        (CARD["completed"], long_time(job.get("completedAt"))),
        (CARD["task"], job.get("task")),
        (
            CARD["attempt"],
            _(ATTEMPT).format(attempt=job.get("attempt"), retries=job.get("maxRetries")),
        ),
        (CARD["runs"], job.get("runs")),
        (CARD["priority"], job.get("priority")),
        (CARD["overlap"], job.get("overlap")),
        (CARD["source"], job.get("source")),
    ]
    optional = (("unique", "uniqueKey"), ("payload", "payload"), ("error", "error"))
    rows += [(CARD[label], _value(job[key])) for label, key in optional if job.get(key) is not None]
    if job.get("result") is not None:
        rows.append((CARD["result"], _value(job["result"])))
    return "".join(f"{line}\n" for line in key_values([(_(k), _text(v)) for k, v in rows]))


def run_table(doc: Mapping[str, Any], columns: int) -> str:
    """The kept runs, newest first, as a table."""
    runs = [run for run in doc.get("items", []) if isinstance(run, Mapping)]
    if not runs:
        return _(NO_RUNS) + "\n"
    rows = [
        (
            short_time(run.get("scheduledTime")),
            run.get("attempt"),
            word(run.get("outcome")),
            span(run.get("duration")),
            run.get("error") or run.get("reason") or "",
        )
        for run in runs
    ]
    lines = table([_(h) for h in RUN_HEADERS], rows, columns=columns, flexible=RUN_FLEXIBLE)
    return "".join(f"{line}\n" for line in lines)


def explanation(
    doc: Mapping[str, Any], *, name: str = "", now: float = 0.0, columns: int = 80
) -> str:
    """The summary, the job's last and next fire, then each reason's code and message.

    In English the daemon's sentences as they came; in another language the command's own from
    the codes and details (:mod:`.explain_ko`), naming the job ``name``, wrapped to ``columns``.
    """
    own = explain_ko.own_words()
    rows: list[tuple[str, object]] = [
        (EXPLAIN["status"], word(doc.get("status"))),
        (EXPLAIN["last"], long_time(doc.get("lastExpected"))),
        (EXPLAIN["next"], long_time(doc.get("nextRun"))),
        (EXPLAIN["timezone"], doc.get("timezone")),
    ]
    reasons = [r for r in doc.get("reasons") or [] if isinstance(r, Mapping)]
    if not reasons:
        rows.append((EXPLAIN["reasons"], _(NO_REASONS)))
    said = safe(explain_ko.summary(doc, safe(name), now)) if own else safe(doc.get("summary"))
    lines = explain_ko.wrap(said, columns) if own else [said]
    lines += key_values([(_(k), _text(v)) for k, v in rows])
    if reasons:
        lines.append(_(EXPLAIN["reasons"]))
        lines += _reason_lines(reasons, own=own, columns=columns)
    return "".join(f"{line}\n" for line in lines)


def _reason_lines(reasons: Sequence[Mapping[str, Any]], *, own: bool, columns: int) -> list[str]:
    """``  code  message`` lines, codes aligned; in the command's own words a message wraps by
    cells under itself, to ``columns`` (the daemon's English line stays whole, as it came)."""
    codes = [safe(reason.get("code")) for reason in reasons]
    wide = max(len(code) for code in codes)
    indent = " " * (wide + 4)
    lines: list[str] = []
    for code, reason in zip(codes, reasons, strict=True):
        said = [safe(reason.get("message"))]
        if own:
            said = explain_ko.wrap(explain_ko.message(reason, word), columns - len(indent))
        lines.append(f"  {code.ljust(wide)}  {said[0]}".rstrip())
        lines += [f"{indent}{more}" for more in said[1:]]
    return lines


def done_line(action: str, job: Mapping[str, Any]) -> str:
    return (
        _(DONE_LINE).format(
            verb=_(DONE[action]),
            id=safe(job.get("id")),
            name=safe(job.get("workflowName")),
            status=word(job.get("status")),
            scheduled=short_time(job.get("scheduledTime")),
        )
        + "\n"
    )


def deleted_line(job_id: str) -> str:
    return _(DELETED_LINE).format(id=safe(job_id)) + "\n"


def retry_line(data: Mapping[str, Any]) -> str:
    """A failed attempt that will be retried, while ``run --wait`` goes on waiting."""
    return _(RETRYING).format(
        attempt=safe(data.get("attempt")),
        outcome=word(data.get("outcome")),
        error=_error_suffix(data.get("error")),
    )


def outcome_line(data: Mapping[str, Any], run: Mapping[str, Any] | None) -> str:
    """``Outcome: success (attempt 1, took 0.52 s)``; a failure's error follows, whole."""
    took = span(run.get("duration")) if run is not None else NONE
    line = _(OUTCOME).format(
        outcome=word(data.get("outcome")),
        attempt=safe(data.get("attempt")),
        took=took,
        error=_error_suffix(data.get("error")),
    )
    return line + "\n"


def word(value: object) -> str:
    """An API value (a status, a type, an outcome) in the operator's language."""
    text = safe(value)
    return _(WORDS[text]) if text in WORDS else text


def _error_suffix(error: object) -> str:
    return f": {safe(error)}" if error else ""


def _status(job: Mapping[str, Any]) -> str:
    status = word(job.get("status"))
    if job.get("pausedUntil"):
        status = _(PAUSED_UNTIL).format(status=status, until=long_time(job["pausedUntil"]))
    if job.get("pauseReason"):
        status = _(PAUSE_REASON).format(status=status, reason=safe(job["pauseReason"]))
    return status


def _progress(progress: Mapping[str, Any]) -> str:
    percent = progress.get("percent")
    shown = math.floor(percent) if isinstance(percent, int | float) else NONE
    message = progress.get("message")
    return f"{shown}%" + (f"  {safe(message)}" if message else "")


def _schedule(schedule: object) -> str:
    """``cron 0 2 * * *``, ``every 1h, start 2030-01-01T00:00``: the keys as written."""
    if not isinstance(schedule, Mapping) or not schedule:
        return _(NOT_SCHEDULED)
    parts = [
        f"{key} {value if isinstance(value, str) else _compact(value)}"
        for key, value in schedule.items()
        if value is not None
    ]
    return ", ".join(parts) or _(NOT_SCHEDULED)


def _value(value: object) -> str:
    text = value if isinstance(value, str) else _compact(value)
    return clip(safe(text), VALUE_CELLS)


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _text(value: object) -> str:
    return NONE if value is None else str(value)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def row_of(runs: Sequence[Mapping[str, Any]], data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The run record a settled event stands for: the newest one, when it matches."""
    if not runs:
        return None
    newest = runs[0]
    same = newest.get("attempt") == data.get("attempt") and newest.get("outcome") == data.get(
        "outcome"
    )
    return newest if same else None
