"""User input -> a normalised :class:`~scheduler.model.Schedule` (the JSON/TOML edge).

:func:`parse_schedule` checks the shape (known keys, at most one kind, types), normalises the
values (durations to seconds, ``@every`` to ``every``, ISO date-times and repeat values spelled
one way) and then compiles the result, so a schedule that cannot run never reaches the store or
the engine. Every error is :class:`~scheduler.errors.InvalidSchedule` whose ``field`` is the path
of the offending value (``schedule.repeat.weekdays[1]``) and whose message says what was
expected.

Bounds, checked before any parsing so that the work stays small whatever a client sends: a
``cron`` text has at most :data:`MAX_CRON_CHARS` characters, an ``rrule`` at most
:data:`MAX_RRULE_CHARS`, a date-time :data:`MAX_DATETIME_CHARS`, a ``repeat`` list
:data:`MAX_LIST_ITEMS` items. Every date-time (``at``, ``start``, ``end``, ``repeat.until``, an
RRULE's DTSTART and UNTIL) lies in the range of :mod:`scheduler.durations`, and so does every
duration.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import msgspec

from scheduler.durations import check_datetime, parse_duration
from scheduler.errors import InvalidInput, InvalidSchedule, describe
from scheduler.model import IMMEDIATE, DstFold, DstGap, DstPolicy, Frequency, Repeat, Schedule
from scheduler.triggers import compile_schedule
from scheduler.triggers.cron import parse_cron
from scheduler.triggers.once import parse_iso
from scheduler.triggers.repeat import normalise_repeat
from scheduler.triggers.rfc5545 import parse_rrule
from scheduler.triggers.wallclock import NeverRuns
from scheduler.triggers.zones import load_zone

__all__ = ["KINDS", "SCHEDULE_KEYS", "load_zone", "parse_schedule"]

#: The keys that say when a job runs; at most one per schedule.
KINDS = ("delay", "at", "every", "cron", "repeat", "rrule")
#: Every key a schedule object may have.
SCHEDULE_KEYS = (*KINDS, "start", "end", "timezone", "dst")
#: ``repeat`` keys spelled snake_case in TOML -> the camelCase the model reads.
_REPEAT_SNAKE = {"month_days": "monthDays"}
#: Shortest ``every``: a sub-second loop is a mistake, not a schedule.
MIN_EVERY = 1.0
#: Longest texts read, far past any real rule (a cron rule listing every minute has ~170).
MAX_CRON_CHARS = 1000
MAX_RRULE_CHARS = 2000
MAX_DATETIME_CHARS = 64
#: Most items in a ``repeat`` list (``weekdays``, ``monthDays``): 62 distinct ones exist.
MAX_LIST_ITEMS = 100
#: Longest message msgspec may add about a value (it quotes the value it refused).
_MAX_MESSAGE_CHARS = 300
# Compiling needs a creation instant; the shape of a schedule does not depend on which (whether
# a rule anchored at the creation ever runs may: see _compile_check).
_REFERENCE = datetime(1970, 1, 1, tzinfo=UTC)
_T = TypeVar("_T")
# The enum behind each key, to say what msgspec's "Invalid enum value" would have accepted.
_CHOICES: dict[str, type[enum.Enum]] = {"freq": Frequency, "gap": DstGap, "fold": DstFold}


def parse_schedule(
    raw: Mapping[str, Any] | None, *, field: str = "schedule", compile_check: bool = True
) -> tuple[Schedule, str | None]:
    """``raw`` (JSON object or TOML table) -> (normalised schedule, its ``timezone`` or None).

    ``None`` or ``{}`` is immediate. Keys: one of ``delay``, ``at``, ``every`` (with optional
    ``start``/``end``), ``cron`` (``@every 1h`` becomes ``every``), ``repeat``, ``rrule``; plus
    ``timezone`` (IANA name) and ``dst`` (``{"gap", "fold"}``). A key set to null is absent.
    ``compile_check`` False: the caller compiles the schedule itself right after, for the
    job's real zone and creation (the job input does: a schedule is compiled once per job).
    """
    if raw is None:
        return IMMEDIATE, None
    if not isinstance(raw, Mapping):
        raise InvalidSchedule(
            f'{field}: expected an object such as {{"cron": "0 9 * * 1-5"}}, '
            f"got {type(raw).__name__}",
            field=field,
        )
    values = {key: value for key, value in raw.items() if value is not None}
    _check_keys(values, field)
    zone_name = _zone_name(values.get("timezone"), field)
    kind = _kind(values, field)
    schedule = Schedule(**kind, dst=_dst(values.get("dst"), kind, field))
    if compile_check:
        _compile_check(schedule, load_zone(zone_name) if zone_name else load_zone("UTC"), field)
    return schedule, zone_name


def _check_keys(values: Mapping[str, Any], field: str) -> None:
    for key in values:
        if key not in SCHEDULE_KEYS:
            shown = str(key) if len(str(key)) <= 64 else str(key)[:61] + "..."
            raise InvalidSchedule(
                f"{field}.{shown}: unknown key (expected one of {', '.join(SCHEDULE_KEYS)})",
                field=f"{field}.{shown}",
            )
    kinds = [key for key in KINDS if key in values]
    if len(kinds) > 1:
        raise InvalidSchedule(
            f"{field}: give at most one of {', '.join(KINDS)} (got {' and '.join(kinds)})",
            field=field,
        )
    every = "every" in values or str(values.get("cron", "")).strip().startswith("@every")
    for key in ("start", "end"):
        if key in values and not every:
            raise InvalidSchedule(f"{field}.{key}: only allowed with every", field=f"{field}.{key}")


def _zone_name(value: object, field: str) -> str | None:
    if value is None:
        return None
    path = f"{field}.timezone"
    if not isinstance(value, str):
        raise InvalidSchedule(
            f"{path}: expected an IANA time zone name such as 'Asia/Seoul', got {describe(value)}",
            field=path,
        )
    try:
        load_zone(value, field=path)
    except InvalidInput as error:
        raise InvalidSchedule(error.message, field=path) from None
    return value


def _kind(values: Mapping[str, Any], field: str) -> dict[str, Any]:
    """The one kind key, normalised, as keyword arguments of :class:`Schedule`."""
    if "delay" in values:
        return {"delay": _duration(values["delay"], f"{field}.delay", allow_zero=True)}
    if "at" in values:
        return {"at": _iso(values["at"], f"{field}.at")}
    if "every" in values:
        return _every(_duration(values["every"], f"{field}.every"), values, field)
    if "cron" in values:
        return _cron(values, field)
    if "repeat" in values:
        return {"repeat": _repeat(values["repeat"], f"{field}.repeat")}
    if "rrule" in values:
        return {"rrule": _rrule(values["rrule"], f"{field}.rrule")}
    return {}


def _rrule(text: object, field: str) -> str:
    """The rule's text, parsed once to check it, with its DTSTART and UNTIL in range."""
    spec = parse_rrule(_bounded(text, MAX_RRULE_CHARS, field), field=field)
    for part, moment in (("DTSTART", spec.dtstart), ("UNTIL", spec.until_wall or spec.until_utc)):
        if moment is not None:
            try:
                check_datetime(moment, field=field)
            except InvalidInput as error:
                message = error.message.replace(f"{field}: ", f"{field}: {part}: ", 1)
                raise InvalidSchedule(message, field=field) from None
    assert isinstance(text, str)
    return text.strip()


def _bounded(text: object, limit: int, field: str) -> object:
    """``text`` when it is no string or at most ``limit`` characters; parsers see no more."""
    if isinstance(text, str) and len(text) > limit:
        raise InvalidSchedule(
            f"{field}: expected at most {limit} characters, got {len(text)}", field=field
        )
    return text


def _in_range(moment: datetime, field: str) -> datetime:
    try:
        return check_datetime(moment, field=field)
    except InvalidInput as error:
        raise InvalidSchedule(error.message, field=field) from None


def _cron(values: Mapping[str, Any], field: str) -> dict[str, Any]:
    text = _bounded(values["cron"], MAX_CRON_CHARS, f"{field}.cron")
    if isinstance(text, str) and text.strip().lower().startswith("@every"):
        seconds = _duration(text.strip()[len("@every") :].strip(), f"{field}.cron")
        return _every(seconds, values, field)
    return {"cron": parse_cron(text, field=f"{field}.cron").text}


def _every(seconds: float, values: Mapping[str, Any], field: str) -> dict[str, Any]:
    if seconds < MIN_EVERY:
        raise InvalidSchedule(
            f"{field}.every: expected at least {MIN_EVERY:g}s, got {seconds:g}s",
            field=f"{field}.every",
        )
    out: dict[str, Any] = {"every": seconds}
    for key in ("start", "end"):
        if key in values:
            out[key] = _iso(values[key], f"{field}.{key}")
    return out


def _duration(value: object, field: str, *, allow_zero: bool = False) -> float:
    try:
        return parse_duration(value, field=field, allow_zero=allow_zero)
    except InvalidInput as error:
        raise InvalidSchedule(error.message, field=field) from None


def _iso(value: object, field: str) -> str:
    moment = parse_iso(_bounded(value, MAX_DATETIME_CHARS, field), field=field)
    return _in_range(moment, field).isoformat()


def _repeat(value: object, field: str) -> Repeat:
    if not isinstance(value, Mapping):
        raise InvalidSchedule(
            f"{field}: expected an object such as "
            '{"freq": "weekly", "weekdays": ["mon"], "time": "09:00"}',
            field=field,
        )
    data = dict(value)
    for snake, camel in _REPEAT_SNAKE.items():
        if snake in data:
            if camel in data:
                raise InvalidSchedule(
                    f"{field}.{camel}: give {camel} or {snake}, not both", field=f"{field}.{camel}"
                )
            data[camel] = data.pop(snake)
    if isinstance(data.get("freq"), str):
        data["freq"] = data["freq"].strip().lower()
    for key in ("weekdays", "monthDays"):
        if isinstance(data.get(key), list) and len(data[key]) > MAX_LIST_ITEMS:
            raise InvalidSchedule(
                f"{field}.{key}: expected at most {MAX_LIST_ITEMS} items, got {len(data[key])}",
                field=f"{field}.{key}",
            )
    for key in ("time", "until"):
        _bounded(data.get(key), MAX_DATETIME_CHARS, f"{field}.{key}")
    _until_in_range(data.get("until"), f"{field}.until")
    return normalise_repeat(_convert(data, Repeat, field), field)


def _until_in_range(until: object, field: str) -> None:
    """A readable ``until`` in range (checked before the trigger code converts it); an
    unreadable one is left to :func:`normalise_repeat` to explain."""
    try:
        moment = datetime.fromisoformat(until.strip()) if isinstance(until, str) else None
    except ValueError:
        return
    if moment is not None:
        _in_range(moment, field)


def _dst(raw: object, kind: Mapping[str, Any], field: str) -> DstPolicy | None:
    if raw is None:
        return None
    path = f"{field}.dst"
    if not kind.keys() & {"at", "cron", "repeat", "rrule"}:
        raise InvalidSchedule(
            f"{path}: only for at, cron, repeat and rrule schedules (every and delay are "
            "absolute durations)",
            field=path,
        )
    if isinstance(raw, Mapping):
        raw = {key: v.strip().lower() if isinstance(v, str) else v for key, v in raw.items()}
    policy = _convert(raw, DstPolicy, path)
    if "at" in kind and policy.fold is DstFold.BOTH:
        raise InvalidSchedule(
            f"{path}.fold: an at time runs once: expected first or last", field=f"{path}.fold"
        )
    return policy


def _convert(value: object, kind: type[_T], field: str) -> _T:
    """msgspec's typed conversion; its ``$.a[1]`` error paths become ``field.a[1]``."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as error:
        message, sep, where = str(error).rpartition(" - at `$")
        if not sep:
            message, where = str(error), "`"
        path = field + where[:-1]
        choices = _CHOICES.get(path.rpartition(".")[2])
        if len(message) > _MAX_MESSAGE_CHARS:
            message = message[: _MAX_MESSAGE_CHARS - 3] + "..."
        if choices is not None and message.startswith("Invalid enum value"):
            message += f" (expected one of {', '.join(choice.value for choice in choices)})"
        raise InvalidSchedule(f"{path}: {message[:1].lower()}{message[1:]}", field=path) from None


def _compile_check(schedule: Schedule, tz: ZoneInfo, field: str) -> None:
    """Compile once, so that a rule that can never run is refused at the edge.

    ``repeat`` and an RRULE without DTSTART start at the job's creation, unknown here; whether
    they ever run may depend on it (an INTERVAL phase), so that question is left to the
    compilation with the real creation instant (:func:`compile_schedule`).
    """
    try:
        trigger = compile_schedule(schedule, tz, created=_REFERENCE, field=field)
    except NeverRuns:
        if schedule.repeat is not None or not _has_dtstart(schedule.rrule):
            return
        raise
    if schedule.cron is not None and trigger.next_after(_REFERENCE) is None:
        raise InvalidSchedule(f"{field}.cron: never matches a date", field=f"{field}.cron")


def _has_dtstart(rule: str | None) -> bool:
    return rule is not None and "DTSTART" in rule.upper()
