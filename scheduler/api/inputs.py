"""Reading requests: JSON bodies, small action bodies, query parameters, and the PATCH merge.

Every problem is an :class:`~scheduler.errors.InvalidInput` naming the field (``body``,
``until``, ``page``...), which the error middleware turns into a 400. Nothing here changes state.

A body nests at most :data:`~scheduler.checks.MAX_JSON_DEPTH` levels (deeper JSON could
not be journalled, and decoding it at all can exhaust the stack). A body of
:data:`LARGE_BODY` bytes or more is checked and decoded one at a time, each in a loop turn of its
own: asyncio runs every handler that is ready in one turn, so eight mebibyte bodies arriving
together (60,000 unknown keys each, or brackets) once held the loop for eight decodes in a row
(~100 ms of CPU, over a second on a busy machine) before ``/healthz`` could answer.

An instant (pause ``until``) lies in the range of :mod:`scheduler.durations`, and a local one
is read by the one DST rule ``at`` times use (:func:`scheduler.triggers.once.local_instants`): a
time in a spring-forward gap is the end of the gap, a time in a fold its first occurrence.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from typing import Any, Final

import msgspec
from aiohttp import web

from scheduler.api.keys import SCHEDULER, STATE, Phase
from scheduler.checks import MAX_JSON_DEPTH, Check, expect_int, invalid, json_deeper, read_keys
from scheduler.durations import check_datetime
from scheduler.errors import InvalidInput, InvalidState, NotReady
from scheduler.model import Job
from scheduler.schedules import load_zone
from scheduler.triggers.dst import AT
from scheduler.triggers.once import local_instants, parse_iso
from scheduler.views import JOB_KEYS, job_document

_JSON_TYPES: Final = ("application/json", "application/merge-patch+json")
#: Bodies from this size on are decoded one per loop turn (see the module docstring). Smaller
#: ones, nearly all of them, cost well under a millisecond and are decoded at once.
LARGE_BODY: Final = 64 * 1024
#: One lock per event loop (an asyncio lock belongs to the loop it first waits on).
_LARGE_BODY_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def admitting(request: web.Request) -> None:
    if request.app[STATE].phase is not Phase.RUNNING:
        raise NotReady("the scheduler is starting or stopping; try again shortly")


def check_can_wait(request: web.Request) -> None:
    """``?wait=true`` while dispatching is paused would hang until resumed: refuse it."""
    if request.app[SCHEDULER].store.paused:
        raise InvalidState(
            "the scheduler is paused, so a run waited for would not start; resume it first",
            field="wait",
        )


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; 415 for another media type, 400 naming the problem."""
    if request.content_type not in _JSON_TYPES:
        raise web.HTTPUnsupportedMediaType(reason="send the body as application/json")
    raw = await request.read()
    if len(raw) < LARGE_BODY:
        return decode_body(raw)
    loop = asyncio.get_running_loop()
    lock = _LARGE_BODY_LOCKS.setdefault(loop, asyncio.Lock())
    async with lock:
        try:
            return decode_body(raw)
        finally:
            # Hand the lock on only after a turn of the loop, so the next large body is
            # decoded in a later turn than this one, with other requests answered between.
            await asyncio.sleep(0)


def decode_body(raw: bytes) -> Any:
    """JSON bytes -> a value nested at most MAX_JSON_DEPTH levels, or a 400 on ``body``.

    The nesting is read from the bytes first: decoding a deeper body could exhaust the stack.
    """
    if json_deeper(raw):
        raise InvalidInput(
            f"body: expected JSON nested at most {MAX_JSON_DEPTH} levels deep", field="body"
        )
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"body: malformed JSON ({exc})", field="body") from None


async def read_object(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object. With ``optional``, no body at all means ``{}``."""
    if optional and not request.body_exists:
        return {}
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise invalid("body", "a JSON object", raw)
    return raw


def read_fields(raw: Mapping[str, Any], checks: Mapping[str, Check]) -> dict[str, Any]:
    """Check a small body's camelCase keys (``checks`` keyed snake_case); unknown keys are
    errors. Raises the first problem."""
    problems: list[InvalidInput] = []
    values = read_keys(raw, checks, "", problems, style="camel")
    if problems:
        raise problems[0]
    return values


def query_int(request: web.Request, name: str, default: int, *, minimum: int, maximum: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value: object = int(text)
    except ValueError:
        value = text
    return expect_int(value, name, minimum=minimum, maximum=maximum)


def query_bool(request: web.Request, name: str) -> bool:
    text = request.query.get(name)
    if text is None or text in ("true", "1"):
        return text is not None
    if text in ("false", "0"):
        return False
    raise invalid(name, "true or false", text)


_INSTANT = "an ISO 8601 date-time such as 2026-12-24T09:00+09:00"


def expect_instant(zone: str) -> Check:
    """An ISO 8601 date-time: with an offset, or local in ``zone`` (read like an ``at`` time,
    so a time in a DST gap is the gap's end); returns epoch seconds."""

    def check(value: object, field: str) -> float:
        if not isinstance(value, str) or len(value) > 64:
            raise invalid(field, _INSTANT, value)
        try:
            moment = parse_iso(value, field=field)
        except InvalidInput:
            raise invalid(field, _INSTANT, value) from None
        check_datetime(moment, field=field)
        # AT never skips a gap time, so there is always an instant: the first.
        return local_instants(value, load_zone(zone), AT, field=field)[0].timestamp()

    return check


def expect_name(value: object, field: str) -> str:
    """Who did something (a pause's ``by``): a short line of text."""
    if not isinstance(value, str) or not value.strip() or len(value) > 100 or "\n" in value:
        raise invalid(field, "a name of 1 to 100 characters on one line", value)
    return value.strip()


def expect_reason(value: object, field: str) -> str:
    if not isinstance(value, str) or len(value) > 500:
        raise invalid(field, "a string of at most 500 characters", value)
    return value


# --- PATCH ------------------------------------------------------------------------------------

#: Keys a client may change with PATCH (camelCase, as in a job's input).
WRITABLE: Final = frozenset(
    {
        "task",
        "payload",
        "schedule",
        "timezone",
        "priority",
        "retry",
        "maxRetries",
        "timeout",
        "misfire",
        "overlap",
        "onCrash",
        "workflowName",
        "name",
    }
)

#: Keys of a job document that the server owns, or that identify the job: all the others.
READ_ONLY: Final = frozenset(JOB_KEYS) - WRITABLE

#: The keys of a job's document that make up its input, in the order the input lists them.
INPUT_KEYS: Final = (
    "task",
    "payload",
    "schedule",
    "timezone",
    "priority",
    "retry",
    "timeout",
    "misfire",
    "overlap",
    "onCrash",
    "workflowId",
    "workflowName",
    "uniqueKey",
    "name",
)
#: Input keys left out when unset (the others are spelled out even when null).
_NAMES: Final = frozenset({"workflowId", "workflowName", "uniqueKey", "name"})


def job_input(job: Job) -> dict[str, Any]:
    """The camelCase input that would create ``job`` as it is now (all policies spelled out,
    so that config defaults do not creep back in when a patch is merged over it): the job's
    document with its durations in seconds, which text would round."""
    doc = job_document(job, _seconds)
    doc["workflowName"] = job.workflow_name  # the document shows a fallback name when unset
    return {key: doc[key] for key in INPUT_KEYS if doc[key] is not None or key not in _NAMES}


def _seconds(seconds: float) -> float:
    return seconds


def merge_patch(job: Job, patch: Mapping[str, Any]) -> dict[str, Any]:
    """The job's input with ``patch`` applied, ready for the one job parser.

    Rules: a server-owned or identity key is a 400 naming it; ``retry`` and ``misfire`` objects
    merge key by key over the current values; any other key (``schedule`` included, whose kinds
    exclude each other) is replaced whole; ``null`` removes a key, so its default applies.
    Unknown keys pass through for the parser to reject with a suggestion.
    """
    for key in patch:
        if key in READ_ONLY:
            raise InvalidInput(
                f"{key}: not writable (the server sets it, or it identifies the job)", field=key
            )
    merged = job_input(job)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif key in ("retry", "misfire") and isinstance(value, dict):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    retry_patch = patch.get("retry")
    if "maxRetries" in patch and not (isinstance(retry_patch, dict) and "max" in retry_patch):
        retry = merged.get("retry")
        if isinstance(retry, dict):
            retry.pop("max", None)
    schedule_patch = patch.get("schedule")
    if (
        isinstance(schedule_patch, dict)
        and "timezone" in schedule_patch
        and "timezone" not in patch
    ):
        merged.pop("timezone", None)  # the new schedule names its own zone
    return merged
