"""RFC 5545 RRULE text -> :class:`RRuleSpec`, with errors that name the wrong part.

A scheduler user needs to know which line or part is wrong and what would be right, so the text
is split and each part checked here, including the combinations RFC 5545 (3.3.10) forbids: a
numbered BYDAY (``-1FR``) only with FREQ=MONTHLY or YEARLY (and not with BYWEEKNO), BYWEEKNO
only with YEARLY, BYYEARDAY not with DAILY, WEEKLY or MONTHLY, BYMONTHDAY not with WEEKLY.
DTSTART (floating, ``Z`` or ``;TZID=``) and UNTIL/COUNT are taken out of the text: :mod:`.rrule`
applies them itself. :func:`rule_parts` gives the rule as :class:`~.recur.Parts` to evaluate.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Literal, TypeAlias

from scheduler.errors import InvalidInput, InvalidSchedule
from scheduler.triggers.recur import Parts, explicit
from scheduler.triggers.zones import load_zone

__all__ = [
    "FREQUENCIES",
    "MAX_COUNT",
    "WEEKDAYS",
    "Freq",
    "RRuleSpec",
    "parse_rrule",
    "rule_parts",
]


#: Upper bound of COUNT (and of ``repeat.count``): the last occurrence is found by counting.
MAX_COUNT = 100_000

Freq: TypeAlias = Literal[0, 1, 2, 3, 4, 5, 6]
FREQUENCIES: dict[str, Freq] = {
    "YEARLY": 0,
    "MONTHLY": 1,
    "WEEKLY": 2,
    "DAILY": 3,
    "HOURLY": 4,
    "MINUTELY": 5,
    "SECONDLY": 6,
}
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_INT_LISTS = {
    "BYSECOND": (0, 59, False),
    "BYMINUTE": (0, 59, False),
    "BYHOUR": (0, 23, False),
    "BYMONTH": (1, 12, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYSETPOS": (1, 366, True),
}
_PARTS = frozenset({"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "WKST", *_INT_LISTS})
_DAY_PARTS = frozenset({"BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY"})
_BYDAY_ITEM = re.compile(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_DTSTART = re.compile(r"DTSTART(?:;(?P<params>[^:]*))?:(?P<value>.*)", re.IGNORECASE)
_DATE_TIME = re.compile(r"(\d{8})(?:T(\d{6})(Z?))?", re.IGNORECASE)
# Lines may also be separated by spaces (handy on a command line): "DTSTART:... FREQ=...".
_LINE_BREAK = re.compile(r"\n|\s+(?=(?:DTSTART|RRULE|FREQ)\b)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RRuleSpec:
    """A parsed rule. ``body`` is the rule without COUNT/UNTIL, WKST explicit; ``parts`` its
    parts as (NAME, VALUE) pairs.

    ``dtstart`` is a naive wall time in ``zone`` (None: the job's zone); without it the rule is
    anchored at the job's creation. ``until_wall`` is a wall time in that zone, ``until_utc`` an
    instant (an UNTIL ending in ``Z``); both are inclusive.
    """

    body: str
    parts: tuple[tuple[str, str], ...]
    freq: Freq
    interval: int
    wkst: int
    keys: frozenset[str]
    count: int | None
    until_wall: datetime | None
    until_utc: datetime | None
    dtstart: datetime | None
    zone: str | None


def parse_rrule(text: object, *, field: str) -> RRuleSpec:
    """Parse ``[DTSTART...]\\n[RRULE:]FREQ=...;...``; errors name the line or part that is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchedule(
            f"{field}: expected an RFC 5545 rule like 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=9', "
            f"got {text!r}",
            field=field,
        )
    return _parse_rrule(text.strip(), field)


@functools.lru_cache(maxsize=1024)
def _parse_rrule(text: str, field: str) -> RRuleSpec:
    dtstart: tuple[datetime, str | None] | None = None
    body: str | None = None
    for raw_line in _LINE_BREAK.split(text):
        line = "".join(raw_line.split())
        if not line:
            continue
        upper = line.upper()
        if upper.startswith("DTSTART"):
            if dtstart is not None:
                raise InvalidSchedule(f"{field}: more than one DTSTART line", field=field)
            dtstart = _parse_dtstart(line, field)
        elif upper.startswith("RRULE:") or (":" not in line and "=" in line):
            if body is not None:
                raise InvalidSchedule(f"{field}: more than one RRULE", field=field)
            body = line.split(":", 1)[1] if upper.startswith("RRULE:") else line
        else:
            raise InvalidSchedule(
                f"{field}: unsupported line {line!r} (expected an RRULE and an optional "
                "DTSTART line)",
                field=field,
            )
    if body is None:
        raise InvalidSchedule(f"{field}: missing the RRULE (FREQ=...)", field=field)
    parts = _split_parts(body, field)
    return _spec(parts, dtstart, field)


def _split_parts(body: str, field: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in body.split(";"):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name, value = name.upper(), value.upper()
        if not sep or not value:
            raise InvalidSchedule(f"{field}: part {item!r}: expected NAME=VALUE", field=field)
        if name not in _PARTS:
            raise InvalidSchedule(
                f"{field}: unknown part {name!r} (expected {', '.join(sorted(_PARTS))})",
                field=field,
            )
        if name in parts:
            raise InvalidSchedule(f"{field}: {name} given twice", field=field)
        _check_part(name, value, field)
        parts[name] = value
    if "FREQ" not in parts:
        raise InvalidSchedule(f"{field}: missing FREQ (e.g. FREQ=DAILY)", field=field)
    if "COUNT" in parts and "UNTIL" in parts:
        raise InvalidSchedule(f"{field}: give COUNT or UNTIL, not both (RFC 5545)", field=field)
    _check_combination(parts, field)
    return parts


def _check_combination(parts: dict[str, str], field: str) -> None:
    """The part-by-frequency rules of RFC 5545 3.3.10 (dateutil silently ignores or misreads
    these)."""
    freq = parts["FREQ"]
    numbered = [item for item in parts.get("BYDAY", "").split(",") if item[:-2]]
    if numbered and freq not in {"MONTHLY", "YEARLY"}:
        raise InvalidSchedule(
            f"{field}: BYDAY {numbered[0]!r}: a numbered weekday needs FREQ=MONTHLY or YEARLY "
            f"(RFC 5545); with FREQ={freq} write the weekday alone ({numbered[0][-2:]})",
            field=field,
        )
    if numbered and "BYWEEKNO" in parts:
        raise InvalidSchedule(
            f"{field}: BYDAY {numbered[0]!r}: a numbered weekday cannot be combined with "
            "BYWEEKNO (RFC 5545)",
            field=field,
        )
    for name, allowed in (
        ("BYWEEKNO", {"YEARLY"}),
        ("BYYEARDAY", {"YEARLY", "HOURLY", "MINUTELY", "SECONDLY"}),
        ("BYMONTHDAY", set(FREQUENCIES) - {"WEEKLY"}),
    ):
        if name in parts and freq not in allowed:
            raise InvalidSchedule(
                f"{field}: {name} cannot be used with FREQ={freq} (RFC 5545 allows it with "
                f"FREQ={' or '.join(sorted(allowed))})",
                field=field,
            )


def _check_part(name: str, value: str, field: str) -> None:
    if name == "FREQ" and value not in FREQUENCIES:
        _bad(field, name, value, f"one of {', '.join(FREQUENCIES)}")
    elif name == "INTERVAL" and not (value.isdigit() and 1 <= int(value) <= 10_000):
        _bad(field, name, value, "a whole number from 1 to 10000")
    elif name == "COUNT" and not (value.isdigit() and 1 <= int(value) <= MAX_COUNT):
        _bad(field, name, value, f"a whole number from 1 to {MAX_COUNT}")
    elif name == "WKST" and value not in WEEKDAYS:
        _bad(field, name, value, f"one of {', '.join(WEEKDAYS)}")
    elif name == "UNTIL":
        _parse_until(value, field)
    elif name == "BYDAY":
        for item in value.split(","):
            match = _BYDAY_ITEM.fullmatch(item)
            if match is None or (match[1] is not None and not 1 <= abs(int(match[1])) <= 53):
                _bad(field, name, item, "weekdays MO..SU, optionally with an ordinal like -1FR")
    elif name in _INT_LISTS:
        low, high, negative = _INT_LISTS[name]
        for item in value.split(","):
            if not _in_range(item, low, high, negative=negative):
                span = f"{low}..{high}" + (f" or -{high}..-1" if negative else "")
                _bad(field, name, item, f"whole numbers {span}")


def _in_range(item: str, low: int, high: int, *, negative: bool) -> bool:
    try:
        number = int(item)
    except ValueError:
        return False
    return low <= number <= high or (negative and -high <= number <= -1)


def _bad(field: str, name: str, value: str, expected: str) -> None:
    raise InvalidSchedule(f"{field}: bad {name} {value!r} (expected {expected})", field=field)


def _parse_dtstart(line: str, field: str) -> tuple[datetime, str | None]:
    """A DTSTART line -> (naive wall time, zone name or None for the job's zone)."""
    match = _DTSTART.fullmatch(line)
    stamp = _DATE_TIME.fullmatch(match["value"]) if match else None
    if match is None or stamp is None:
        raise InvalidSchedule(
            f"{field}: bad DTSTART {line!r} (expected DTSTART:YYYYMMDDTHHMMSS, "
            "optionally with Z or ;TZID=Zone)",
            field=field,
        )
    zone: str | None = None
    for param in filter(None, (match["params"] or "").split(";")):
        key, _, value = param.partition("=")
        if key.upper() == "TZID":
            zone = _checked_zone(value, field)
        elif param.upper() not in {"VALUE=DATE", "VALUE=DATE-TIME"}:
            raise InvalidSchedule(f"{field}: unsupported DTSTART parameter {param!r}", field=field)
    wall = _stamp(stamp, line, field)
    if stamp[3]:
        if zone is not None:
            raise InvalidSchedule(f"{field}: DTSTART has both TZID and Z", field=field)
        zone = "UTC"
    return wall, zone


def _checked_zone(name: str, field: str) -> str:
    try:
        load_zone(name, field=field)
    except InvalidInput as error:
        raise InvalidSchedule(f"{error.message} (in DTSTART;TZID=)", field=field) from None
    return name


def _stamp(match: re.Match[str], text: str, field: str) -> datetime:
    day, clock = match[1], match[2] or "000000"
    try:
        return datetime.combine(
            date(int(day[:4]), int(day[4:6]), int(day[6:])),
            time(int(clock[:2]), int(clock[2:4]), int(clock[4:])),
        )
    except ValueError as error:
        raise InvalidSchedule(f"{field}: bad date-time in {text!r}: {error}", field=field) from None


def _parse_until(value: str, field: str) -> tuple[datetime | None, datetime | None]:
    """UNTIL -> (wall time, None) or (None, UTC instant). A bare date includes that whole day."""
    stamp = _DATE_TIME.fullmatch(value)
    if stamp is None:
        _bad(field, "UNTIL", value, "YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ")
        raise AssertionError  # pragma: no cover - _bad always raises
    wall = _stamp(stamp, value, field)
    if stamp[2] is None:
        return wall.replace(hour=23, minute=59, second=59), None
    if stamp[3]:
        return None, wall.replace(tzinfo=UTC)
    return wall, None


def _spec(
    parts: dict[str, str], dtstart: tuple[datetime, str | None] | None, field: str
) -> RRuleSpec:
    parts.setdefault("WKST", "MO")  # RFC 5545's default; dateutil's follows the `calendar` module
    until_wall, until_utc = (
        _parse_until(parts["UNTIL"], field) if "UNTIL" in parts else (None, None)
    )
    body = ";".join(
        f"{key}={value}" for key, value in parts.items() if key not in {"COUNT", "UNTIL"}
    )
    return RRuleSpec(
        body=body,
        parts=tuple((key, value) for key, value in parts.items() if key not in {"COUNT", "UNTIL"}),
        freq=FREQUENCIES[parts["FREQ"]],
        interval=int(parts.get("INTERVAL", "1")),
        wkst=WEEKDAYS.index(parts["WKST"]),
        keys=frozenset(parts),
        count=int(parts["COUNT"]) if "COUNT" in parts else None,
        until_wall=until_wall,
        until_utc=until_utc,
        dtstart=dtstart[0] if dtstart else None,
        zone=dtstart[1] if dtstart else None,
    )


def rule_parts(spec: RRuleSpec, start: datetime) -> Parts:
    """The rule from DTSTART ``start`` (naive), with every part dateutil would infer from
    DTSTART made explicit (see :func:`~.recur.explicit`)."""
    values = dict(spec.parts)

    def numbers(name: str) -> tuple[int, ...]:
        return tuple(int(item) for item in values[name].split(",")) if name in values else ()

    weekdays: list[int] = []
    nth: list[tuple[int, int]] = []
    for item in values.get("BYDAY", "").split(",") if "BYDAY" in values else ():
        match = _BYDAY_ITEM.fullmatch(item)
        assert match is not None  # checked by _check_part
        day = WEEKDAYS.index(match[2])
        if match[1]:
            nth.append((day, int(match[1])))
        else:
            weekdays.append(day)
    return explicit(
        Parts(
            freq=spec.freq,
            interval=spec.interval,
            wkst=spec.wkst,
            dtstart=start,
            months=numbers("BYMONTH"),
            weeknos=numbers("BYWEEKNO"),
            yeardays=numbers("BYYEARDAY"),
            monthdays=numbers("BYMONTHDAY"),
            weekdays=tuple(weekdays),
            nth=tuple(nth),
            hours=numbers("BYHOUR"),
            minutes=numbers("BYMINUTE"),
            seconds=numbers("BYSECOND"),
            setpos=numbers("BYSETPOS"),
        )
    )
