"""Maintenance windows: spans of time in which runs of some tasks (or of every task) do not
start (issue 15 part 2). Pure: the engine asks, nothing here reads the clock.

A window is configured by when it opens (a ``cron`` or ``rrule`` rule, compiled by the same
trigger code as a job's schedule, so a job's DST rules apply: cron's Debian rule, RFC 5545's for
an RRULE) and how long it lasts (``duration``), in its ``timezone``, for its ``tasks`` (none:
every task). An RRULE without DTSTART, or ``@every``, counts from 2000-01-01 00:00 in the
window's zone (:data:`ANCHOR`), so the openings are the same whenever the daemon starts.

An opening is the half-open span ``[start, start + duration)``: open at its start, closed at
its end. Openings of one window that overlap or touch are one span (a window that opens every
30 minutes for an hour is open from its first opening on); when windows of different names
overlap, :meth:`Maintenance.open_for` answers with the one that ends last, merged with those it
overlaps. Merging stops after :data:`MAX_HOPS` openings (a window that never closes is then
seen as closing that far ahead, and again after that).

The engine calls :meth:`Maintenance.open_for` for every due run when a window is configured:
each window caches the span that covers or follows the instant it was last asked about, so an
answer is a few comparisons per window and the trigger is asked only once that span has passed.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime, time
from typing import Any, Final

import msgspec

from scheduler.checks import (
    Check,
    expect_duration,
    expect_str,
    expect_str_list,
    expect_table,
    invalid,
    read_keys,
)
from scheduler.errors import InvalidInput, InvalidState
from scheduler.schedules import load_zone, parse_schedule
from scheduler.triggers import Timeline, compile_schedule

__all__ = [
    "ANCHOR",
    "MAX_WINDOWS",
    "InMaintenance",
    "Maintenance",
    "Window",
    "WindowSpec",
    "openings",
    "parse_windows",
]

#: Where a rule with no start of its own (an RRULE without DTSTART, ``@every``) counts from:
#: midnight of this day in the window's zone.
ANCHOR: Final = date(2000, 1, 1)
#: Most openings :meth:`Maintenance.between` returns.
MAX_WINDOWS: Final = 1000
#: Most openings merged into one span, forwards or backwards.
MAX_HOPS: Final = 100
#: The keys of a ``[[maintenance]]`` entry.
WINDOW_KEYS: Final = ("name", "cron", "rrule", "duration", "timezone", "tasks")
#: Longest window name (it is quoted in reasons, errors and the dashboard).
MAX_NAME_CHARS: Final = 100
_TINY = 1e-6  # far below a second (rules are at least a second apart), far above a float's step


class InMaintenance(InvalidState):
    """A run-now of a task inside an open maintenance window (HTTP 409)."""

    code = "maintenance"


def refuse_run_now(maintenance: Maintenance | None, task: str, now: float) -> None:
    """Raise :class:`InMaintenance` when ``task`` is inside an open window at ``now``: a run-now
    would start what the window is there to prevent (both engines ask this)."""
    window = None if maintenance is None else maintenance.open_for(task, now)
    if window is not None:
        raise InMaintenance(
            f"task {task} is inside {window.describe()}: its runs start when the window closes"
        )


class WindowSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One ``[[maintenance]]`` entry, checked: exactly one of ``cron``/``rrule``, a positive
    ``duration`` in seconds, a known ``timezone``, ``tasks`` empty for every task."""

    name: str
    duration: float
    timezone: str
    cron: str | None = None
    rrule: str | None = None
    tasks: tuple[str, ...] = ()

    @property
    def rule(self) -> str:
        """How it opens, as written: ``cron '0 2 * * *'`` or ``rrule '...'``."""
        return f"cron {self.cron!r}" if self.cron is not None else f"rrule {self.rrule!r}"


class Window(msgspec.Struct, frozen=True):
    """One opening (or several merged): ``[start, end)`` in epoch seconds."""

    name: str
    start: float
    end: float
    timezone: str
    tasks: tuple[str, ...]  # empty: every task

    def until(self) -> str:
        """The end, ISO 8601 with the offset of the window's zone."""
        return datetime.fromtimestamp(self.end, load_zone(self.timezone)).isoformat()

    def describe(self) -> str:
        """``maintenance window NAME until ISO``: the words a reason or an error uses."""
        return f"maintenance window {self.name} until {self.until()}"


# --- config.toml -----------------------------------------------------------------------------


def parse_windows(
    value: object, *, timezone: str, tasks: Collection[str] | None, problems: list[InvalidInput]
) -> tuple[WindowSpec, ...]:
    """The ``[[maintenance]]`` array, each entry checked; every problem (naming its key path,
    ``maintenance[0].duration``) is added to ``problems`` and the entry left out. ``tasks``:
    the task names a window may list (None: not checked), since a misspelt one would silently
    never match."""
    if not isinstance(value, list):
        problems.append(invalid("maintenance", "an array of tables ([[maintenance]])", value))
        return ()
    seen: dict[str, int] = {}
    specs = (
        _window(i, raw, default_zone=timezone, tasks=tasks, seen=seen, problems=problems)
        for i, raw in enumerate(value)
    )
    return tuple(spec for spec in specs if spec is not None)


def _zone(value: object, field: str) -> str:
    name = expect_str(value, field)
    load_zone(name, field=field)
    return name


def _text(value: object, field: str) -> str:
    return expect_str(value, field).strip()


def _name(value: object, field: str) -> str:
    name = _text(value, field)
    if len(name) > MAX_NAME_CHARS:
        raise invalid(field, f"a name of at most {MAX_NAME_CHARS} characters", value)
    return name


def _task_list(value: object, field: str) -> tuple[str, ...]:
    return expect_str_list(value, field, non_empty=True)


_CHECKS: Final[Mapping[str, Check]] = {
    "name": _name,
    "cron": _text,
    "rrule": _text,
    "duration": expect_duration,
    "timezone": _zone,
    "tasks": _task_list,
}


def _window(
    i: int,
    raw: object,
    *,
    default_zone: str,
    tasks: Collection[str] | None,
    seen: dict[str, int],
    problems: list[InvalidInput],
) -> WindowSpec | None:
    prefix = f"maintenance[{i}]"
    try:
        table = expect_table(raw, prefix)
    except InvalidInput as exc:
        problems.append(exc)
        return None
    before = len(problems)
    values = read_keys(table, _CHECKS, f"{prefix}.", problems)
    problems.extend(_required(table, values, prefix, seen, i))
    if tasks is not None:
        problems.extend(_unknown_tasks(values.get("tasks", ()), tasks, prefix))
    if len(problems) > before:
        return None
    values.setdefault("timezone", default_zone)
    spec = WindowSpec(**values)
    try:
        compile_window(spec, field=prefix)
    except InvalidInput as exc:
        problems.append(exc)
        return None
    return spec


def _required(
    table: Mapping[str, Any], values: Mapping[str, Any], prefix: str, seen: dict[str, int], i: int
) -> list[InvalidInput]:
    problems = []
    name = values.get("name")
    if "name" not in table:
        field = f"{prefix}.name"
        message = f"{field}: expected a unique name; every window needs one"
        problems.append(InvalidInput(message, field=field))
    elif name is not None and name in seen:
        problems.append(
            invalid(f"{prefix}.name", f"a unique name (maintenance[{seen[name]}] has it too)", name)
        )
    elif name is not None:
        seen[name] = i
    kinds = [key for key in ("cron", "rrule") if key in table]
    if len(kinds) != 1:
        got = " and ".join(kinds) or "neither"
        problems.append(
            InvalidInput(
                f"{prefix}: expected exactly one of cron, rrule (when it opens), got {got}",
                field=prefix,
            )
        )
    if "duration" not in table:
        field = f"{prefix}.duration"
        message = f"{field}: expected a duration such as '1h'; every window needs one"
        problems.append(InvalidInput(message, field=field))
    return problems


def _unknown_tasks(named: Iterable[str], tasks: Collection[str], prefix: str) -> list[InvalidInput]:
    known = ", ".join(sorted(tasks)) or "none defined"
    return [
        invalid(f"{prefix}.tasks[{j}]", f"a task defined in [tasks] (known: {known})", task)
        for j, task in enumerate(named)
        if task not in tasks
    ]


def compile_window(spec: WindowSpec, *, field: str = "maintenance") -> Timeline:
    """The openings of ``spec`` as a timeline in epoch seconds; raises
    :class:`~scheduler.errors.InvalidSchedule` naming ``field.cron`` / ``field.rrule``."""
    raw = {"cron": spec.cron} if spec.cron is not None else {"rrule": spec.rrule}
    schedule, _ = parse_schedule(raw, field=field)
    zone = load_zone(spec.timezone, field=f"{field}.timezone")
    anchor = datetime.combine(ANCHOR, time(), tzinfo=zone)
    return Timeline(compile_schedule(schedule, zone, created=anchor, field=field))


# --- the windows at run time -----------------------------------------------------------------


class _Entry:
    """One configured window, with its cached span: the one covering or following
    :attr:`since` (None: it never opens again)."""

    __slots__ = ("duration", "since", "span", "spec", "tasks", "timeline")

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.duration = spec.duration
        self.tasks = frozenset(spec.tasks)
        self.timeline = compile_window(spec)
        self.since = math.inf
        self.span: Window | None = None

    def covers(self, task: str | None) -> bool:
        return task is None or not self.tasks or task in self.tasks

    def at(self, now: float) -> Window | None:
        """The span covering ``now`` or, if none does, the next one (cached)."""
        span = self.span
        if self.since <= now and (span is None or now < span.end):
            return span
        self.span = span = self.span_from(now)
        self.since = now
        return span

    def span_from(self, instant: float) -> Window | None:
        """The span covering ``instant``, else the first one after it (uncached)."""
        timeline, duration = self.timeline, self.duration
        start = timeline.latest(instant - duration, instant)
        if start is None or start + duration <= instant:
            start = timeline.next_after(instant)
            if start is None:
                return None
        first, end = self._back(start), self._forward(start)
        spec = self.spec
        return Window(spec.name, first, end, spec.timezone, spec.tasks)

    def _back(self, start: float) -> float:
        """The first opening of the chain of openings that overlap or touch ``start``'s."""
        for _ in range(MAX_HOPS):
            earlier = self.timeline.next_after(start - self.duration - _TINY)
            if earlier is None or earlier >= start:
                break
            start = earlier
        return start

    def _forward(self, start: float) -> float:
        """The end of the chain of openings from ``start`` that overlap or touch."""
        last, end = start, start + self.duration
        for _ in range(MAX_HOPS):
            later = self.timeline.latest(last, end)
            if later is None or later <= last:
                break
            last, end = later, later + self.duration
        return end


class Maintenance:
    """The configured windows (see the module docstring); empty when none are (falsy)."""

    def __init__(self, specs: Iterable[WindowSpec] = ()) -> None:
        self.specs = tuple(specs)
        self._entries = tuple(_Entry(spec) for spec in self.specs)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def open_for(self, task: str, now: float) -> Window | None:
        """The open window covering ``task`` at ``now``; of several, the one that ends last,
        merged with the windows that overlap it (its ``start`` is the earliest of them)."""
        best: Window | None = None
        for entry in self._entries:
            if entry.tasks and task not in entry.tasks:
                continue
            span = entry.at(now)
            if span is not None and span.start <= now and (best is None or span.end > best.end):
                best = span
        if best is None or len(self._entries) == 1:
            return best
        return self._merged(best, task, now)

    def _merged(self, best: Window, task: str, now: float) -> Window:
        """``best`` extended by the spans of other windows (covering ``task``) that open
        before it ends and end later; at most one step per window."""
        start = best.start
        grew = True
        while grew:
            grew = False
            for entry in self._entries:
                span = entry.at(now) if entry.covers(task) else None
                if span is not None and span.start <= best.end < span.end:
                    best, grew = span, True
        return msgspec.structs.replace(best, start=start)

    def current(self, now: float) -> list[Window]:
        """Each window open at ``now``, by start."""
        spans = (entry.at(now) for entry in self._entries)
        return sorted(
            (span for span in spans if span is not None and span.start <= now),
            key=_by_start,
        )

    def next(self, now: float) -> list[Window]:
        """Each window's next opening after ``now`` (after the current one if it is open), by
        start."""
        found = []
        for entry in self._entries:
            span = entry.at(now)
            if span is not None and span.start <= now:
                span = entry.span_from(span.end)
            if span is not None:
                found.append(span)
        return sorted(found, key=_by_start)

    def between(self, since: float, until: float, task: str | None = None) -> list[Window]:
        """Every opening (merged span) that intersects ``[since, until]``, of the windows
        covering ``task`` (None: all), by start; at most :data:`MAX_WINDOWS`."""
        found: list[Window] = []
        for entry in self._entries:
            if entry.covers(task):
                found.extend(_spans(entry, since, until, MAX_WINDOWS))
        return sorted(found, key=_by_start)[:MAX_WINDOWS]

    def covered(self, task: str, since: float, until: float) -> float:
        """Seconds of ``[since, until]`` inside windows covering ``task`` (overlaps counted
        once): the time a one-off's grace does not count."""
        total, reached = 0.0, since
        for span in self.between(since, until, task):
            low, high = max(span.start, reached), min(span.end, until)
            if high > low:
                total += high - low
                reached = high
        return total

    def held_at(self, task: str, instant: float) -> Window | None:
        """The window covering ``task`` that is open at ``instant`` or closes exactly then
        (of several, the one that ends last): what held back an occurrence due then."""
        spans = [
            span
            for span in self.between(instant - _TINY, instant, task)
            if span.start <= instant <= span.end
        ]
        return max(spans, key=_by_end) if spans else None


def openings(spec: WindowSpec, after: float, count: int) -> list[Window]:
    """The next ``count`` openings (merged spans) of one window from ``after`` (a span open
    at ``after`` first), for ``scheduler check``."""
    return _spans(_Entry(spec), after, math.inf, count)


def _spans(entry: _Entry, since: float, until: float, limit: int) -> list[Window]:
    found: list[Window] = []
    span = entry.span_from(since)
    while span is not None and span.start <= until and len(found) < limit:
        found.append(span)
        span = entry.span_from(span.end)
    return found


def _by_start(window: Window) -> float:
    return window.start


def _by_end(window: Window) -> float:
    return window.end
