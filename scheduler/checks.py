"""The generic field checkers of the input layer, shared by the job parser, config loading and
the API's small bodies.

Each ``expect_*`` checker takes ``(value, field path)`` and returns the converted value or raises
:class:`~scheduler.errors.InvalidInput` with the message ``"<field>: expected ..., got ..."``.

Checking costs the same whatever a client sends: only the first :data:`MAX_UNKNOWN_REPORTED`
unknown keys of a table get a suggestion (the rest are counted in one more problem), a key longer
than :data:`MAX_KEY_CHARS` gets none and is cut where it is named, and every value quoted back in
a message is short (:func:`~scheduler.errors.describe`). 60,000 unknown keys once cost 4.4 s of
fuzzy matching; now they cost one set look-up each.

The bounds of a JSON value live here too (:data:`MAX_JSON_DEPTH`, :func:`shape_problem`): what
the journal can hold is checked at this edge for a payload or a request body, and again by the
executors for what a task brings back, so both layers above import it from here.
"""

from __future__ import annotations

import difflib
import enum
import functools
import itertools
import operator
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Literal, TypeVar

import msgspec

from scheduler.durations import parse_duration
from scheduler.errors import InvalidInput, describe

Style = Literal["camel", "snake"]
E = TypeVar("E", bound=enum.Enum)
Check = Callable[[Any, str], Any]
"""A key's checker: ``(value, field path) -> converted value``, raising ``InvalidInput``."""

#: Unknown keys of one table that are reported one by one (with a suggestion each).
MAX_UNKNOWN_REPORTED = 5
#: Longest key compared with the known ones for a suggestion, and shown whole in a message.
MAX_KEY_CHARS = 64
#: Deepest nesting of arrays and objects accepted in a request body or a payload, and kept in
#: a run's result: far below what encoding needs of Python's recursion limit (1000), with room
#: for the levels of the records around it.
MAX_JSON_DEPTH = 64
#: The integers the journal (msgpack) can hold.
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1
_CONTAINERS = (dict, list, tuple)
# For reading the nesting of JSON text: the bytes that are not brackets, and a table that
# writes an opening bracket as the digit 1 and a closing one as 0.
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_BITS = bytes.maketrans(b"[{]}", b"1100")


def _byte_peak(byte: int) -> int:
    """The highest level reached within 8 brackets (the bits of ``byte``, first the highest),
    from level 0, plus 8 (so that it fits a byte)."""
    level, peak = 0, -8
    for shift in range(7, -1, -1):
        level += 1 if byte >> shift & 1 else -1
        peak = max(peak, level)
    return peak + 8


# For 8 brackets packed in a byte: twice its openings (the change of level, plus 8), and the
# highest level reached within it (plus 8).
_TWICE_OPENINGS = bytes(2 * byte.bit_count() for byte in range(256))
_PEAK = bytes(_byte_peak(byte) for byte in range(256))


def invalid(field: str, expected: str, value: object) -> InvalidInput:
    return InvalidInput(f"{field}: expected {expected}, got {describe(value)}", field=field)


def expect_str(value: object, field: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(field, "a non-empty string", value)
    return value


def expect_int(
    value: object, field: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """An integer (never a boolean or a float) within the given bounds."""
    if minimum is not None and maximum is not None:
        expected = f"an integer from {minimum} to {maximum}"
    elif minimum is not None:
        expected = f"an integer of at least {minimum}"
    else:
        expected = "an integer"
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(field, expected, value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise invalid(field, expected, value)
    return value


def expect_fraction(value: object, field: str) -> float:
    """A number from 0 to 1 (jitter, failure rate, utilisation)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise invalid(field, "a number from 0 to 1", value)
    return float(value)


def expect_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(field, "true or false", value)
    return value


def expect_choice(kind: type[E], value: object, field: str) -> E:
    """One of an enum's values, written as its string."""
    names = [str(member.value) for member in kind]
    for member in kind:
        if member.value == value:
            return member
    raise invalid(field, f"one of {', '.join(names)}", value)


def choice(kind: type[E]) -> Check:
    return lambda value, field: expect_choice(kind, value, field)


def expect_duration(value: object, field: str) -> float:
    """A positive duration (``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` or seconds) in seconds."""
    return parse_duration(value, field=field)


def expect_duration_or_zero(value: object, field: str) -> float:
    return parse_duration(value, field=field, allow_zero=True)


def expect_table(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid(field, "a table of keys and values", value)
    return value


def expect_str_list(value: object, field: str, *, non_empty: bool = False) -> tuple[str, ...]:
    expected = "a non-empty list of strings" if non_empty else "a list of strings"
    if not isinstance(value, list | tuple) or (non_empty and not value):
        raise invalid(field, expected, value)
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise invalid(f"{field}[{i}]", "a non-empty string", item)
    return tuple(value)


def expect_str_map(value: object, field: str) -> dict[str, str]:
    table = expect_table(value, field)
    for key, item in table.items():
        if not isinstance(item, str):
            raise invalid(f"{field}.{key}", "a string", item)
    return dict(table)


def unknown_key(field: str, key: str, known: Collection[str]) -> InvalidInput:
    """An unknown key (``field`` is its path, ending in ``key``), with the nearest known
    spelling when there is one. A key longer than :data:`MAX_KEY_CHARS` is no near miss of
    any, and is cut where the path shows it."""
    close: list[str] = []
    if len(key) > MAX_KEY_CHARS:
        field = field.removesuffix(key) + key[: MAX_KEY_CHARS - 3] + "..."
    else:
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
        for candidate in (camel(key), snake(key)):
            if candidate != key and candidate in known:
                close = [candidate]
    hint = f"; did you mean {close[0]!r}?" if close else f" (known keys: {', '.join(known)})"
    return InvalidInput(f"{field}: unknown key{hint}", field=field)


def unknown_keys(
    keys: Iterable[str], known: Collection[str], prefix: str, *, where: str | None = None
) -> list[InvalidInput]:
    """A problem for each key of ``keys`` not in ``known``, for the first
    :data:`MAX_UNKNOWN_REPORTED` of them, and one more counting the rest (named ``where``,
    by default the table's path): the work is one look-up per key however many a client
    sends."""
    known_set = frozenset(known)
    unknown = [key for key in keys if key not in known_set]
    # An empty key is named by its quotes, so that the field is never empty.
    problems = [
        unknown_key(prefix + (key or '""'), key or '""', known)
        for key in unknown[:MAX_UNKNOWN_REPORTED]
    ]
    rest = len(unknown) - MAX_UNKNOWN_REPORTED
    if rest > 0:
        where = where or prefix.removesuffix(".") or "body"
        problems.append(
            InvalidInput(f"{where}: {rest} more unknown keys (not listed)", field=where)
        )
    return problems


@functools.cache
def camel(name: str) -> str:
    """``workflow_id`` -> ``workflowId``."""
    # Cached: the key names are a small fixed set, and every API request spells ~30 of them.
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def snake(camel_name: str) -> str:
    """``workflowId`` -> ``workflow_id``."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel_name).lower()


def read_keys(
    table: Mapping[str, Any],
    checks: Mapping[str, Check],
    prefix: str,
    problems: list[InvalidInput],
    *,
    style: Style = "snake",
) -> dict[str, Any]:
    """Check every key of ``table`` (spelled in ``style``; ``checks`` are keyed snake_case).

    Returns the converted values by snake_case key; each bad or unknown key adds a problem.
    """
    spelled = {(camel(key) if style == "camel" else key): key for key in checks}
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = spelled.get(key)
        if name is not None:
            try:
                out[name] = checks[name](value, f"{prefix}{key}")
            except InvalidInput as exc:
                problems.append(exc)
    problems.extend(unknown_keys(table, list(spelled), prefix))
    return out


def expect_payload(value: object, field: str) -> Any:
    """Any JSON value (a library caller's own objects too) that the journal can hold: nested
    at most MAX_JSON_DEPTH levels, with integers of at most 64 bits and text that is UTF-8."""
    problem = shape_problem(value, MAX_JSON_DEPTH)
    if problem == "depth":
        raise invalid(field, f"a value nested at most {MAX_JSON_DEPTH} levels deep", value)
    if problem == "int":
        raise InvalidInput(
            f"{field}: expected integers from -2**63 to 2**64-1 (send a larger number as a string)",
            field=field,
        )
    if problem == "text":
        raise InvalidInput(f"{field}: expected text without lone surrogates", field=field)
    return value


# --- the bounds of a JSON value ----------------------------------------------------------------


def json_deeper(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``raw`` nests arrays and objects more than ``limit`` levels.

    Read from the bytes, before (or instead of) decoding them, in a few passes that run in C:
    strings are dropped, the brackets kept, and the deepest level is the largest running sum
    of +1 per opening and -1 per closing bracket. So a hostile body can neither make this
    recurse nor cost much beside decoding it; a text with at most ``limit`` opening brackets
    is not even scanned. The running sum is taken 8 brackets at a time (a mebibyte of
    brackets: ~10 ms of CPU, where one step per bracket took ~55 ms, the loop held meanwhile).
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    # Without its escapes (pairs of backslashes first), a string is what lies between two
    # quotes: every other piece of the text is outside the strings.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(unescaped.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return False
    return _rises_above(brackets, limit)


def _rises_above(brackets: bytes, limit: int) -> bool:
    """Whether the level, from 0, rises above ``limit`` after some prefix of ``brackets``.

    The brackets become binary digits (closing ones padded on at the end, which never raise
    the peak), packed 8 to a byte by ``int``; the level before byte ``g`` is twice the
    openings before it minus ``8 g``, and the byte's own peak comes from a table. It stops at
    the first byte whose peak is above ``limit``."""
    if not brackets:
        return limit < 0
    digits = brackets.translate(_BITS) + b"0" * (-len(brackets) % 8)
    packed = int(digits, 2).to_bytes(len(digits) // 8, "big")
    twice_before = itertools.chain((0,), itertools.accumulate(packed.translate(_TWICE_OPENINGS)))
    peaks = map(operator.add, twice_before, packed.translate(_PEAK))
    # twice_before[g] + peak[g] counts 8 g + 8 too much.
    return any(map(limit.__lt__, map(operator.sub, peaks, itertools.count(8, 8))))


def nested_deeper(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the Python value ``value`` nests lists, tuples and dicts more than ``limit``
    levels deep (for JSON text, :func:`json_deeper` is cheaper). Iterative, so no depth can
    exhaust the stack; it stops at the first level past ``limit``."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, _CONTAINERS) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINERS))
    return False


def shape_problem(value: Any, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why the journal could not hold ``value``, or None: ``"depth"`` when it nests more than
    ``limit`` levels, ``"int"`` for an integer past 64 bits (JSON allows it, msgpack does not),
    ``"text"`` for a lone surrogate. A value that is not JSON (a library caller's own object)
    is only measured for depth. The checks run in C: encodings, and :func:`json_deeper`."""
    try:
        encoded = msgspec.json.encode(value)
    except RecursionError:
        return "depth"
    except UnicodeEncodeError:
        return "text"
    except Exception:  # noqa: BLE001 (not JSON: whether it is storable is its owner's concern)
        return "depth" if nested_deeper(value, limit) else None
    if json_deeper(encoded, limit):
        return "depth"
    try:
        msgspec.msgpack.encode(value)  # what the journal writes
    except OverflowError:
        return "int"
    return None


def is_big_int(value: Any) -> bool:
    """Whether ``value`` is an integer the journal cannot hold (past 64 bits)."""
    return type(value) is int and not MIN_INT <= value <= MAX_INT
