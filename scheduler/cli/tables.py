"""Text for ``scheduler jobs``: tables that fit the terminal, times, durations, the progress bar.

Pure functions of strings and the API's JSON values, so they are tested without a daemon.

Every cell is made safe first (:func:`safe`): a job's name, an error or a progress message comes
from whoever created the job or from a task's output, and a control character in it (an escape
sequence, a carriage return, a bidirectional override) must neither break a table nor drive the
operator's terminal; each becomes U+FFFD. Widths count terminal cells, not characters: wide
characters (Korean, CJK) take two and combining marks none, so a table of Korean names fits as
well as one of ASCII names. A cell that is cut ends with ``…``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from scheduler.i18n import N_, _

ELLIPSIS: Final = "…"
REPLACEMENT: Final = "\ufffd"
GAP: Final = "  "
#: A flexible column is never cut narrower than this many cells (nor than its header).
MIN_FLEX: Final = 8
#: Cells of the progress bar between its brackets.
BAR_CELLS: Final = 20
NONE: Final = "-"
_UNITS: Final = ((N_("{n} d"), 86400), (N_("{n} h"), 3600), (N_("{n} min"), 60), (N_("{n} s"), 1))
_BREAKS: Final = re.compile(r"[\t\n\v\f\r\x1c-\x1e\x85\u2028\u2029]+")
#: Format characters that reorder or hide text (bidirectional overrides and isolates).
_BIDI: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def safe(value: object) -> str:
    """``value`` as one line of text (None: empty): line breaks and tabs become one space
    (none at the ends: an error often ends with a newline), other control characters U+FFFD."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    text = _BREAKS.sub(" ", text).strip(" ")
    return "".join(
        REPLACEMENT if unicodedata.category(ch) == "Cc" or ch in _BIDI else ch for ch in text
    )


def _cells(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def width(text: str) -> int:
    """Terminal cells ``text`` takes."""
    if text.isascii():
        return len(text)
    return sum(_cells(ch) for ch in text)


def clip(text: str, cells: int) -> str:
    """``text`` cut to at most ``cells`` cells, ending with ``…`` when it was cut."""
    if width(text) <= cells:
        return text
    out: list[str] = []
    used = 0
    for ch in text:
        need = _cells(ch)
        if used + need > cells - 1:
            break
        out.append(ch)
        used += need
    return "".join(out) + ELLIPSIS


def _pad(text: str, cells: int) -> str:
    return text + " " * max(0, cells - width(text))


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    columns: int,
    flexible: Sequence[int],
) -> list[str]:
    """The lines of a table at most ``columns`` cells wide: each column as wide as its widest
    cell, then the ``flexible`` columns (indexes) cut, widest first, until the table fits (or
    each is down to :data:`MIN_FLEX`). No line ends with spaces."""
    cells = [[safe(value) for value in row] for row in rows]
    widths = [
        max([width(header)] + [width(row[i]) for row in cells]) for i, header in enumerate(headers)
    ]
    floors = {i: max(MIN_FLEX, width(headers[i])) for i in flexible}
    excess = sum(widths) + len(GAP) * (len(widths) - 1) - columns
    while excess > 0:
        shrinkable = [i for i in flexible if widths[i] > floors[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return [_line(row, widths) for row in [list(headers), *cells]]


def _line(row: Sequence[str], widths: Sequence[int]) -> str:
    parts = [_pad(clip(text, cells), cells) for text, cells in zip(row, widths, strict=True)]
    return GAP.join(parts).rstrip()


def key_values(rows: Sequence[tuple[str, object]]) -> list[str]:
    """``Label  value`` lines, labels aligned; a value of several lines continues indented."""
    label_width = max((width(label) for label, _ in rows), default=0)
    lines: list[str] = []
    for label, value in rows:
        first, *rest = str(value).split("\n") or [""]
        lines.append(f"{_pad(label, label_width)}{GAP}{safe(first)}".rstrip())
        lines.extend(f"{' ' * label_width}{GAP}{safe(more)}".rstrip() for more in rest)
    return lines


def short_time(value: object) -> str:
    """``2030-01-07 11:13`` from an ISO 8601 instant of the API (already in the job's zone)."""
    moment = _instant(value)
    if moment is None:
        return NONE if value is None else safe(value)
    return moment.strftime("%Y-%m-%d %H:%M")


def long_time(value: object) -> str:
    """``2030-01-07 11:13:05+09:00``: to the second, with the zone's offset."""
    moment = _instant(value)
    if moment is None:
        return NONE if value is None else safe(value)
    return moment.isoformat(sep=" ", timespec="seconds")


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def span(seconds: object) -> str:
    """A run's duration: ``0.25 s``, ``12.5 s``, ``3 min 20 s``, ``2 h 5 min`` (Korean:
    ``0.25초``, ``3분 20초``), the units of ``scheduler status``'s relative times."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return NONE
    if not math.isfinite(seconds) or seconds < 0:
        return NONE
    if seconds < 10:
        return _("{n} s").format(n=f"{seconds:.2f}")
    if seconds < 60:
        return _("{n} s").format(n=f"{seconds:.1f}")
    left = round(seconds)
    parts: list[str] = []
    for unit, size in _UNITS:
        if left >= size and len(parts) < 2:
            parts.append(_(unit).format(n=left // size))
            left %= size
        elif parts:
            break
    return " ".join(parts)


def bar(percent: float, message: object, *, columns: int) -> str:
    """``[#####---------------]  25%  message``, the message cut so the line fits in
    ``columns - 1`` cells (a line that fills the last column wraps on some terminals)."""
    value = min(100.0, max(0.0, percent)) if math.isfinite(percent) else 0.0
    filled = math.floor(value * BAR_CELLS / 100)
    head = f"[{'#' * filled}{'-' * (BAR_CELLS - filled)}] {math.floor(value):>3}%"
    text = safe(message)
    if not text:
        return head
    room = columns - 1 - width(head) - len(GAP)
    return f"{head}{GAP}{clip(text, room)}" if room >= MIN_FLEX else head
