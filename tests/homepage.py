"""The status card's contract and a model of how gethomepage renders a ``customapi`` mapping,
shared by the tests of the README's English and Korean homepage snippets."""

from __future__ import annotations

import contextlib
import math
import re
from datetime import datetime
from typing import Any

#: The status card contract (SPEC.md): every path a widget may read, and its JSON types.
CONTRACT: dict[str, tuple[type, ...]] = {
    "isRunning": (bool,),
    "totalJobs": (int,),
    "pendingJobs": (int,),
    "runningJobs": (int,),
    "completedJobs": (int,),
    "failedJobs": (int,),
    "nextJob": (dict, type(None)),
    "nextJob.id": (str,),
    "nextJob.workflowName": (str,),
    "nextJob.scheduledTime": (str,),
    "nextJob.type": (str,),
}


# --- how gethomepage renders a customapi mapping -----------------------------------------
# A model of gethomepage's src/widgets/customapi/utils.js (formatValue: remap first, then the
# format) and of its i18next formatter "relativeDate" (next-i18next.config.js), in English with
# the default style. i18next catches a formatter's error and keeps the value as it was.

#: ECMAScript's Date Time String Format: the one format every engine's ``new Date(s)`` parses;
#: any other string is implementation-defined (Invalid Date in some browsers).
_JS_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{3})?)?(?:Z|[+-]\d{2}:\d{2})")
_CUTOFFS = (60, 3600, 86400, 86400 * 7, 86400 * 30, 86400 * 365, math.inf)
_UNITS = ("second", "minute", "hour", "day", "week", "month", "year")
#: Intl.RelativeTimeFormat("en", {numeric: "auto"}): the phrases that replace a number.
_AUTO = {
    ("second", 0): "now",
    ("minute", 0): "this minute",
    ("hour", 0): "this hour",
    ("day", -1): "yesterday",
    ("day", 0): "today",
    ("day", 1): "tomorrow",
    **{
        (unit, n): f"{word} {unit}"
        for unit in ("week", "month", "year")
        for n, word in ((-1, "last"), (0, "this"), (1, "next"))
    },
}


class InvalidDate(ValueError):
    pass


def js_date(value: Any) -> float:
    """``new Date(value).getTime()`` (ms) for null or a string; InvalidDate otherwise."""
    if value is None:
        return 0.0  # new Date(null) is the epoch ("57 years ago"), hence the remap to ""
    if not isinstance(value, str) or not _JS_DATE.fullmatch(value):
        raise InvalidDate(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000


def relative_date(ms: float, now: float, numeric: str = "always") -> str:
    """gethomepage's relativeDate: the largest unit under the distance, floored."""
    delta = math.floor((ms - now * 1000) / 1000 + 0.5)  # JavaScript's Math.round
    index = next(i for i, cutoff in enumerate(_CUTOFFS) if cutoff > abs(delta))
    count = math.floor(delta / (_CUTOFFS[index - 1] if index else 1))
    unit = _UNITS[index]
    if numeric == "auto" and (unit, count) in _AUTO:
        return _AUTO[unit, count]
    units = f"{abs(count)} {unit}{'' if abs(count) == 1 else 's'}"
    return f"in {units}" if count >= 0 else f"{units} ago"


def render(mapping: dict[str, Any], doc: dict[str, Any], now: float) -> str:
    """What a list row shows for ``mapping`` (a mapping or its additionalField) of ``doc``."""
    value = lookup(doc, mapping["field"])
    for remap in mapping.get("remap", []):
        if remap.get("any") or ("value" in remap and js_equal(remap["value"], value)):
            value = remap["to"]
            break
    if mapping.get("format") == "relativeDate":
        with contextlib.suppress(InvalidDate):  # i18next keeps the value on an error
            value = relative_date(js_date(value), now, mapping.get("numeric", "always"))
    elif mapping.get("format") == "number":
        value = f"{int(value):,}"
    return str(value)


def js_equal(a: Any, b: Any) -> bool:
    """JavaScript's ``===`` on JSON values: no ``True == 1``."""
    return type(a) is type(b) and a == b


def lookup(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for key in path.split("."):
        value = None if value is None else value[key]
    return value
