"""Durations as users write them: ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"1h30m"``, seconds."""

from __future__ import annotations

import math
import re

from scheduler.errors import InvalidInput

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")


def parse_duration(value: object, *, field: str, allow_zero: bool = False) -> float:
    """Return ``value`` in seconds, or raise :class:`InvalidInput` naming ``field``.

    A number is seconds. A string is one or more ``<number><unit>`` parts with units
    ``ms``, ``s``, ``m``, ``h``, ``d`` and ``w`` (``"1h30m"``); a bare numeric string is seconds.
    """
    seconds: float
    if isinstance(value, bool):
        raise InvalidInput(
            f"{field}: expected a duration like '90s', '15m', '2h' or '1d'", field=field
        )
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if _WHOLE.fullmatch(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise InvalidInput(
                    f"{field}: expected a duration like '90s', '15m', '2h' or '1d', got {value!r}",
                    field=field,
                ) from None
    else:
        raise InvalidInput(
            f"{field}: expected a duration like '90s', '15m', '2h' or '1d',"
            f" got {type(value).__name__}",
            field=field,
        )
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise InvalidInput(f"{field}: expected a positive duration, got {value!r}", field=field)
    return seconds


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
