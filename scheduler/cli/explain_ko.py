"""``scheduler jobs explain`` in the operator's language: the summary and each reason written
from the explanation's stable ``code`` and ``details``, not from the daemon's English sentences.

The daemon writes its ``summary`` and each reason's ``message`` in English on purpose (clients
match codes, as they do the API's errors); the dashboard writes its own from the same codes
(``why.*`` in ``api/static/i18n/ko.json``), and the sentences here say what it says. English
keeps the daemon's sentences as they came: they say more than these (the exact rule, the
policy), so ours are used only when the catalogue translates them (:func:`own_words`).

Times are the API's (already in the job's zone), shown to the second with the offset as on the
command's other pages (:func:`~scheduler.cli.tables.long_time`). Korean lines are wrapped by
terminal cells (Hangul takes two) so the reasons block keeps to the width it is given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from scheduler.cli.tables import long_time, safe, span, width
from scheduler.i18n import N_, _

RUNNING = N_("{name}: it is running.")
UNTIL_RESUMED = N_("{name}: it does not run until it is resumed.")
NO_MORE = N_("{name}: it does not run again.")
LATE = N_("{name}: it was due at {when} and has not started.")
NEXT = N_("{name}: it runs next at {when}.")

QUARANTINED = N_("Quarantined at {at} after {count} interrupted runs in a row.")
RULE_ENDED = N_("Its rule has ended.")
RULE_ENDED_LAST = N_("Its rule has ended; its last run was at {last}.")
NO_NEXT_RUN = N_("Nothing is scheduled; the job is {status}.")
PAUSED = N_("It was paused.{by}{until}{reason}")
PAUSED_BY = N_(" Paused by: {by}.")
PAUSED_UNTIL = N_(" It resumes at {until}.")
PAUSED_REASON = N_(" Reason: {reason}.")
SCHEDULER_PAUSED = N_("The whole scheduler is paused: no run starts until it is resumed.")
MAINTENANCE = N_("It waits out maintenance window {window} (from {from} to {until}).")
RATE_LIMITED = N_("Task {task} starts at most {count} per {per}; this run waits until {until}.")
SLOT = N_("It waits for a free run slot: {running} of {max} running, {count} queued ahead.")
TASK_SLOT = N_(
    "It waits for a free slot of task {task}: {running} of {max} running, {count} queued ahead."
)
RETRY = N_("Attempt {attempt} is due at {at}, after its retry backoff.")
MISSED_ONE = N_("Its run of {from} was missed.")
MISSED = N_("{count} runs from {from} to {to} were missed.")
OVERLAP = N_("Its run of {at} was skipped: the previous run was still running.")
DST_SKIPPED = N_("A DST change skips its run of {at}.")
DST_MOVED = N_("A DST change moved its run to {at}.")
DST_FOLD = N_("Its run at {at} falls in the hour a DST change repeats.")

#: The narrowest a wrapped message gets, however wide an unknown code makes its column.
MIN_CELLS: Final = 20

#: A word, or a date and its time together with what sticks to them (``{at}에``).
_WORDS: Final = re.compile(r"\S*?\d{4}-\d\d-\d\d \d\d:\d\d\S*|\S+")

Details = Mapping[str, Any]


def own_words() -> bool:
    """Whether to write the explanation here: only when the catalogue translates it (in
    English the daemon's own sentences are better than ours)."""
    return _(NEXT) != NEXT


def summary(doc: Mapping[str, Any], name: str, now: float) -> str:
    """Where the job stands, as the dashboard says it; ``now`` tells late from next."""
    status, nxt = doc.get("status"), doc.get("nextRun")
    if status == "running":
        return _(RUNNING).format(name=name)
    if not nxt:
        return _(UNTIL_RESUMED if status == "paused" else NO_MORE).format(name=name)
    when = long_time(nxt)
    late = _epoch(nxt) <= now
    return _(LATE if late else NEXT).format(name=name, when=when)


def message(reason: Mapping[str, Any], word: Callable[[object], str]) -> str:
    """The reason in the operator's language; ``word`` says an API status in it.

    A code this command does not know (a newer daemon's) keeps the daemon's English message:
    an English sentence says more than none, and ``--json`` has the details."""
    code, details = reason.get("code"), reason.get("details")
    write = _REASONS.get(code) if isinstance(code, str) else None
    if write is None or not isinstance(details, Mapping):
        return safe(reason.get("message"))
    return safe(write(details, word))


def wrap(text: str, cells: int) -> list[str]:
    """``text`` in lines of at most ``cells`` terminal cells, broken at spaces but not inside a
    time (``2030-01-07 09:00:00+09:00``); a word wider than a line is broken where it must be."""
    cells = max(cells, MIN_CELLS)
    lines: list[str] = []
    line = ""
    for word in _WORDS.findall(text):
        joined = f"{line} {word}" if line else word
        if width(joined) <= cells:
            line = joined
            continue
        if line:
            lines.append(line)
        rest = word
        while width(rest) > cells:
            head = _fit(rest, cells)
            lines.append(head)
            rest = rest[len(head) :]
        line = rest
    return [*lines, line] if line or not lines else lines


def _fit(word: str, cells: int) -> str:
    used = 0
    for i, ch in enumerate(word):
        used += width(ch)
        if used > cells:
            return word[:i]
    return word


def _epoch(iso: object) -> float:
    try:
        return datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return math.inf  # not a time: say "next", which claims nothing about lateness


def _at(value: object) -> str:
    return long_time(value)


def _paused(d: Details, _w: Callable[[object], str]) -> str:
    by = _(PAUSED_BY).format(by=d["by"]) if d.get("by") else ""
    until = _(PAUSED_UNTIL).format(until=_at(d["until"])) if d.get("until") else ""
    why = _(PAUSED_REASON).format(reason=d["reason"]) if d.get("reason") else ""
    return _(PAUSED).format(by=by, until=until, reason=why)


def _slot(d: Details, _w: Callable[[object], str]) -> str:
    counts = {"running": d.get("running"), "max": d.get("max"), "count": d.get("ahead")}
    if d.get("limit") == "task":
        return _(TASK_SLOT).format(task=d.get("task"), **counts)
    return _(SLOT).format(**counts)


def _missed(d: Details, _w: Callable[[object], str]) -> str:
    if d.get("count") == 1:
        return _(MISSED_ONE).format(**{"from": _at(d.get("from"))})
    return _(MISSED).format(
        count=d.get("count"), to=_at(d.get("to")), **{"from": _at(d.get("from"))}
    )


def _dst(d: Details, _w: Callable[[object], str]) -> str:
    text = DST_SKIPPED if d.get("skipped") else DST_MOVED if d.get("kind") == "gap" else DST_FOLD
    return _(text).format(at=_at(d.get("at")))


def _rule_ended(d: Details, _w: Callable[[object], str]) -> str:
    return _(RULE_ENDED_LAST).format(last=_at(d["last"])) if d.get("last") else _(RULE_ENDED)


#: Each code of ``scheduler/engine/explain.py`` and how to say it from its details.
_REASONS: Final[dict[str, Callable[[Details, Callable[[object], str]], str]]] = {
    "quarantined": lambda d, _w: _(QUARANTINED).format(
        count=d.get("interruptions"), at=_at(d.get("at"))
    ),
    "rule_ended": _rule_ended,
    "no_next_run": lambda d, w: _(NO_NEXT_RUN).format(status=w(d.get("status"))),
    "paused": _paused,
    "scheduler_paused": lambda _d, _w: _(SCHEDULER_PAUSED),
    "maintenance": lambda d, _w: _(MAINTENANCE).format(
        window=d.get("window"), until=_at(d.get("until")), **{"from": _at(d.get("from"))}
    ),
    "rate_limited": lambda d, _w: _(RATE_LIMITED).format(
        task=d.get("task"), count=d.get("count"), per=span(d.get("per")), until=_at(d.get("until"))
    ),
    "waiting_for_slot": _slot,
    "retry_backoff": lambda d, _w: _(RETRY).format(attempt=d.get("attempt"), at=_at(d.get("at"))),
    "misfired": _missed,
    "overlap_skipped": lambda d, _w: _(OVERLAP).format(at=_at(d.get("at"))),
    "dst_shifted": _dst,
}
