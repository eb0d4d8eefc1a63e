"""Previews of run times: :func:`upcoming` and ``scheduler next``."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.cli.problems import problem_text
from scheduler.clock import SystemClock, to_datetime
from scheduler.durations import check_datetime
from scheduler.errors import InvalidInput
from scheduler.i18n import N_, _
from scheduler.schedules import load_zone, parse_schedule
from scheduler.triggers import Trigger, compile_schedule, resolve_local
from scheduler.triggers.dst import AT

__all__ = ["DEFAULT_ZONE", "MAX_RUNS", "next_command", "parse_spec", "preview", "upcoming"]

DEFAULT_ZONE = "Asia/Seoul"
MAX_RUNS = 10_000
_RRULE = re.compile(r"(?:^|[\s:;])(FREQ=|DTSTART)", re.IGNORECASE)
_TINY = timedelta(microseconds=1)
#: ``%a`` of a run, in the operator's language rather than the C locale's (Monday first).
_WEEKDAYS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))


def upcoming(trigger: Trigger, after: datetime, n: int) -> list[datetime]:
    """The next ``n`` runs strictly after ``after``; fewer when the schedule ends."""
    runs: list[datetime] = []
    current: datetime | None = after
    while len(runs) < n and current is not None:
        current = trigger.next_after(current)
        if current is not None:
            runs.append(current)
    return runs


def parse_spec(spec: str) -> dict[str, Any]:
    """``scheduler next`` SPEC -> a schedule object.

    A JSON object is taken as is; text containing ``FREQ=`` or ``DTSTART`` is an RRULE;
    anything else is cron (including ``@daily`` and ``@every 1h``).
    """
    text = spec.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            message = _("SPEC: not valid JSON: {error}").format(error=error)
            raise InvalidInput(message, field="schedule") from None
        if not isinstance(value, dict):
            raise InvalidInput(_("SPEC: expected a JSON object"), field="schedule")
        return value
    if _RRULE.search(text):
        return {"rrule": text}
    return {"cron": text}


def next_command(spec: str, *, tz: str | None, after: str | None, n: int, as_json: bool) -> int:
    """``scheduler next``: print the next ``n`` runs of SPEC after TIME in ZONE.

    A job "created" at TIME: repeat and an RRULE without DTSTART are anchored there (an RRULE
    from TIME's minute, so its first run may be a few seconds before TIME), ``delay`` counts
    from it, immediate runs at it, and a run exactly at TIME is listed. Exit 0; 2 with the
    reason on stderr for a bad SPEC, zone, time or count.
    """
    try:
        runs = preview(spec, tz=tz, after=after, n=n)
    except InvalidInput as error:
        print(f"scheduler next: {problem_text(error.message)}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps([run.isoformat() for run in runs]))
    else:
        for run in runs:
            print(_line(run))
        if len(runs) < n:
            print(_("(no more runs)"))
    return 0


def preview(spec: str, *, tz: str | None, after: str | None, n: int) -> list[datetime]:
    """The runs ``scheduler next`` prints; :class:`InvalidInput` says what is wrong."""
    if not 0 <= n <= MAX_RUNS:
        message = _("-n: expected 0..{maximum}, got {n}").format(maximum=MAX_RUNS, n=n)
        raise InvalidInput(message, field="n")
    schedule, inner_zone = parse_schedule(parse_spec(spec))
    zone = load_zone(tz or inner_zone or DEFAULT_ZONE, field="--tz")
    start = _after(after, zone)
    trigger = compile_schedule(schedule, zone, created=start)
    moment = start.astimezone(UTC)  # UTC: exact inside a fold
    candidates = [trigger.first_run(moment), trigger.next_after(moment - _TINY)]
    first = min((run for run in candidates if run is not None), key=_instant, default=None)
    if first is None or n == 0:
        return []
    return [first, *upcoming(trigger, first, n - 1)]


def _instant(run: datetime) -> float:
    return run.timestamp()


def _after(text: str | None, zone: ZoneInfo) -> datetime:
    """TIME: an ISO 8601 date-time, local in ``zone`` unless it has an offset; default now."""
    if text is None:
        return to_datetime(SystemClock().time()).astimezone(zone)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        message = _("--after: expected an ISO 8601 date-time like '2026-12-24T09:00', got {text}")
        raise InvalidInput(message.format(text=repr(text)), field="after") from None
    check_datetime(value, field="--after")
    if value.tzinfo is not None:
        return value.astimezone(zone)
    instants = resolve_local(value, zone, AT)
    return instants[0]


def _line(run: datetime) -> str:
    """``Mon 2026-03-09 09:00:00 -04:00 (EDT)   2026-03-09 13:00:00 UTC`` (Korean: ``월 ...``)."""
    offset = run.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}"
    utc = run.astimezone(UTC)
    day = _(_WEEKDAYS[run.weekday()])
    return f"{day} {run:%Y-%m-%d %H:%M:%S} {offset} ({run.tzname()})   {utc:%Y-%m-%d %H:%M:%S} UTC"
