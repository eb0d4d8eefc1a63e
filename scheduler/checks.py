"""The generic field checkers of the input layer, shared by the job parser, config loading and
the API's small bodies.

Each ``expect_*`` checker takes ``(value, field path)`` and returns the converted value or raises
:class:`~scheduler.errors.InvalidInput` with the message ``"<field>: expected ..., got ..."``.

Checking costs the same whatever a client sends: only the first :data:`MAX_UNKNOWN_REPORTED`
unknown keys of a table get a suggestion (the rest are counted in one more problem), a key longer
than :data:`MAX_KEY_CHARS` gets none and is cut where it is named, and every value quoted back in
a message is short (:func:`~scheduler.errors.describe`). 60,000 unknown keys once cost 4.4 s of
fuzzy matching; now they cost one set look-up each.
"""

from __future__ import annotations

import difflib
import enum
import functools
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Literal, TypeVar

from scheduler.durations import parse_duration
from scheduler.errors import InvalidInput, describe
from scheduler.executors.base import MAX_JSON_DEPTH, shape_problem

Style = Literal["camel", "snake"]
E = TypeVar("E", bound=enum.Enum)
Check = Callable[[Any, str], Any]
"""A key's checker: ``(value, field path) -> converted value``, raising ``InvalidInput``."""

#: Unknown keys of one table that are reported one by one (with a suggestion each).
MAX_UNKNOWN_REPORTED = 5
#: Longest key compared with the known ones for a suggestion, and shown whole in a message.
MAX_KEY_CHARS = 64


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
