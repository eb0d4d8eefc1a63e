"""Durations and date-times as users write them, and the range of each that the scheduler takes.

Durations: ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"1h30m"``, or seconds.

The accepted ranges are defined here once and applied wherever a value enters (API bodies, pause
``until``, config.toml, the library API), so that every instant the scheduler computes from them
(``now + delay``, a retry ``now + maxDelay``, a run rendered in any zone) stays inside what
``datetime`` can represent:

- a duration is at most :data:`MAX_DURATION` (36500 days, about 100 years), and finite;
- a date-time, as written (local, or with its offset), lies from :data:`EARLIEST` (1970-01-02)
  to before :data:`LATEST` (9000-01-01). Offsets are under a day, so its instant is after the
  epoch and nearly a thousand years before ``datetime``'s end, whatever the zone.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from scheduler.errors import InvalidInput, describe

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")

#: Longest duration accepted anywhere (delay, every, timeout, retry delays, misfire grace,
#: config intervals): 36500 days, about 100 years.
MAX_DURATION = 36500 * 86400.0
#: Longest duration text read; the longest sensible spelling is far shorter.
MAX_DURATION_CHARS = 64
#: Earliest date-time accepted, as written (naive: compared before any zone is applied).
EARLIEST = datetime(1970, 1, 2)  # noqa: DTZ001 - a wall time: the bound is on what is written
#: Date-times accepted are before this one, as written.
LATEST = datetime(9000, 1, 1)  # noqa: DTZ001 - a wall time, as above
_EXPECTED = "a duration like '90s', '15m', '2h' or '1d'"


def parse_duration(value: object, *, field: str, allow_zero: bool = False) -> float:
    """Return ``value`` in seconds, or raise :class:`InvalidInput` naming ``field``.

    A number is seconds. A string is one or more ``<number><unit>`` parts with units
    ``ms``, ``s``, ``m``, ``h``, ``d`` and ``w`` (``"1h30m"``); a bare numeric string is seconds.
    The result is finite, positive (or zero with ``allow_zero``) and at most
    :data:`MAX_DURATION`.
    """
    seconds = _seconds(value, field)
    if math.isnan(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise InvalidInput(
            f"{field}: expected a positive duration, got {_shown(value)}", field=field
        )
    if seconds > MAX_DURATION:
        raise InvalidInput(
            f"{field}: expected a duration of at most 36500d (100 years), got {_shown(value)}",
            field=field,
        )
    return seconds


def _seconds(value: object, field: str) -> float:
    if isinstance(value, bool):
        raise InvalidInput(f"{field}: expected {_EXPECTED}", field=field)
    if isinstance(value, int):
        # A JSON integer may have hundreds of digits, which float() cannot take: any value
        # past the bound is refused the same way.
        if abs(value) > MAX_DURATION:
            return math.inf if value > 0 else -math.inf
        return float(value)
    if isinstance(value, float):
        return value
    if not isinstance(value, str):
        raise InvalidInput(
            f"{field}: expected {_EXPECTED}, got {type(value).__name__}", field=field
        )
    text = value.strip().lower()
    if len(text) > MAX_DURATION_CHARS:
        raise InvalidInput(
            f"{field}: expected {_EXPECTED}, got a text of {len(text)} characters", field=field
        )
    if _WHOLE.fullmatch(text):
        return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(
            f"{field}: expected {_EXPECTED}, got {_shown(value)}", field=field
        ) from None


def _shown(value: object) -> str:
    return describe(value.strip() if isinstance(value, str) else value)


def check_datetime(value: datetime, *, field: str) -> datetime:
    """``value`` when it lies in the accepted range (see the module docstring), compared as
    written; else :class:`InvalidInput` naming ``field``."""
    wall = value.replace(tzinfo=None)
    if not EARLIEST <= wall < LATEST:
        raise InvalidInput(
            f"{field}: expected a date-time from 1970-01-02 to 8999-12-31, got {value.isoformat()}",
            field=field,
        )
    return value


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` in the units :func:`parse_duration` reads."""
    if seconds == 0:
        return "0s"
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)
