"""A config problem in the operator's language, for ``scheduler check`` and ``next``.

The loader's messages stay English: the API answers with the same ones, and clients match
them. So the command line translates their common shapes as it prints them, keeping what
names the problem (the file, the key path, the value given, a suggested key) exactly as it
came: ``FIELD: expected WHAT, got VALUE``, ``FIELD: unknown key; did you mean 'KEY'?``,
``FIELD: unknown key (known keys: ...)`` and ``FIELD: N more unknown keys (not listed)``.
WHAT is translated too when it is one of the checkers' usual phrases; any other message (a
TOML syntax error, a schedule that does not compile) is printed as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from scheduler.i18n import N_, _

#: The phrases of :mod:`scheduler.checks` after "expected" that read as they are written.
PHRASES: Final = frozenset(
    {
        N_("a non-empty string"),
        N_("a string"),
        N_("true or false"),
        N_("an integer"),
        N_("a number from 0 to 1"),
        N_("a table of keys and values"),
        N_("a list of strings"),
        N_("a non-empty list of strings"),
    }
)
#: The phrases with a value in them: their pattern, and the message that says them.
VALUED: Final = (
    (re.compile(r"an integer from (?P<minimum>-?\d+) to (?P<maximum>-?\d+)"),
     N_("an integer from {minimum} to {maximum}")),
    (re.compile(r"an integer of at least (?P<minimum>-?\d+)"),
     N_("an integer of at least {minimum}")),
    (re.compile(r"one of (?P<names>.+)"), N_("one of {names}")),
)  # fmt: skip
_EXPECTED: Final = re.compile(r"(?P<head>.*?: )expected (?P<what>.+?), got (?P<got>.+)")
_NEAR: Final = re.compile(r"(?P<head>.*?: )unknown key; did you mean (?P<near>'.*')\?")
_KNOWN: Final = re.compile(r"(?P<head>.*?: )unknown key \(known keys: (?P<known>.*)\)")
_MORE: Final = re.compile(r"(?P<head>.*?: )(?P<n>\d+) more unknown keys \(not listed\)")


def problem_text(line: str) -> str:
    """``line`` (``FILE: FIELD: message``) with its message in the operator's language."""
    for pattern, say in _SHAPES:
        found = pattern.fullmatch(line)
        if found is not None:
            return found["head"] + say(found)
    return line


def _expected(found: re.Match[str]) -> str:
    message = _("expected {what}, got {got}")
    return message.format(what=phrase(found["what"]), got=found["got"])


def phrase(what: str) -> str:
    """What a checker expected, in the operator's language when it is a usual phrase."""
    if what in PHRASES:
        return _(what)
    for pattern, message in VALUED:
        found = pattern.fullmatch(what)
        if found is not None:
            return _(message).format(**found.groupdict())
    return what


_SHAPES: Final[tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...]] = (
    (_EXPECTED, _expected),
    (_NEAR, lambda found: _("unknown key; did you mean {near}?").format(near=found["near"])),
    (_KNOWN, lambda found: _("unknown key (known keys: {known})").format(known=found["known"])),
    (_MORE, lambda found: _("{n} more unknown keys (not listed)").format(n=found["n"])),
)
