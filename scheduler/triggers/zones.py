"""IANA time zones from the ``tzdata`` package, never from the host.

Run times must not depend on the machine: ``/usr/share/zoneinfo`` may be missing, stale or
patched, and ``$TZ`` may be anything. So zones are read from the ``tzdata`` wheel (a pinned
dependency) with :meth:`ZoneInfo.from_file`. ``zoneinfo.reset_tzpath`` is left alone because the
scheduler is also embedded in other programs. One :class:`ZoneInfo` object per name is kept, so
every job in a zone shares it.

An unknown name gets a suggestion (a different case, or a near miss), but only a name of at most
:data:`MAX_ZONE_CHARS` characters is compared with the ~600 known ones: the longest IANA name is
half that, and a fuzzy match of a huge string would stall the loop.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
from zoneinfo import ZoneInfo

from scheduler.errors import InvalidInput, describe

__all__ = ["MAX_ZONE_CHARS", "load_zone", "zone_names"]

#: Longest name looked at for a suggestion ("America/Argentina/ComodRivadavia" has 32).
MAX_ZONE_CHARS = 64


@functools.cache
def zone_names() -> frozenset[str]:
    """Every zone (and link) name the ``tzdata`` package ships, from its ``zones`` index."""
    text = importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def load_zone(name: str, *, field: str = "timezone") -> ZoneInfo:
    """The zone called ``name`` (e.g. ``"Asia/Seoul"``), or :class:`InvalidInput` naming ``field``.

    Only names listed by ``tzdata`` are accepted, so a path such as ``"../etc/passwd"`` or a
    data file such as ``"zone.tab"`` is rejected before anything is opened.
    """
    if not isinstance(name, str) or name not in zone_names():
        raise InvalidInput(_unknown_zone_message(name, field), field=field)
    return _load(name)


@functools.cache
def _load(name: str) -> ZoneInfo:
    resource = importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
    with resource.open("rb") as stream:
        return ZoneInfo.from_file(stream, key=name)


@functools.cache
def _by_lower() -> dict[str, str]:
    return {zone.lower(): zone for zone in zone_names()}


@functools.cache
def _sorted_names() -> list[str]:
    return sorted(zone_names())


def _unknown_zone_message(name: object, field: str) -> str:
    if not isinstance(name, str) or not name.strip():
        return (
            f"{field}: expected an IANA time zone name such as 'Asia/Seoul', got {describe(name)}"
        )
    guess = None
    if len(name) <= MAX_ZONE_CHARS:
        guess = _by_lower().get(name.strip().lower())
        if guess is None:
            close = difflib.get_close_matches(name, _sorted_names(), n=1)
            guess = close[0] if close else None
    hint = f" (did you mean {guess!r}?)" if guess else ""
    return f"{field}: unknown IANA time zone {describe(name)}{hint}"
