"""One middleware maps error types to status codes and one error document shape:
``{"error": {"code", "message", "field"}}``. Nothing else ever reaches a client as an error.

A message (and a field name) is cut to :data:`MAX_MESSAGE_CHARS`: messages name the field and
what was expected, and may quote the bad value, so a client that sends a 5,000-character job id
must not get it back whole (the checks cut what they quote; this bounds what any of them may
miss).

An exception that is not one of ours is a bug: it is logged with its traceback and the client
gets a 500 with the same document and no detail (never a traceback, never a secret). A
``ConnectionError`` is the client having gone (or been cut off by a read deadline): it is left
to the server's protocol (:mod:`.server`), which closes the connection without a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from scheduler.api.keys import SETTINGS
from scheduler.errors import (
    DuplicateJob,
    InvalidInput,
    InvalidState,
    JobNotFound,
    NotReady,
    SchedulerError,
    StorageFull,
)

log = logging.getLogger("scheduler.api")

#: The longest error message (or field name) an answer carries; longer ones are cut.
MAX_MESSAGE_CHARS = 500

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS: list[tuple[type[SchedulerError], int]] = [
    (InvalidInput, 400),
    (JobNotFound, 404),
    (DuplicateJob, 409),
    (InvalidState, 409),
    (StorageFull, 507),
    (NotReady, 503),
]

_HTTP_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, field: str | None = None, **extra: str
) -> web.Response:
    body = {"error": {"code": code, "message": message, "field": field, **extra}}
    return json_response(body, status=status)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON document encoded with msgspec (enums and structs as their JSON values)."""
    return web.Response(
        body=msgspec.json.encode(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _redact(request: web.Request, text: str) -> str:
    """Error messages quote the bad input; a client that sent the API token as a value must
    not get it back (nor see it in any log of the answer). Cut to MAX_MESSAGE_CHARS after the
    token is replaced, so that no part of it survives the cut."""
    settings = request.app.get(SETTINGS)
    token = settings.token if settings is not None else None
    shown = text.replace(token, "[redacted]") if token else text
    if len(shown) <= MAX_MESSAGE_CHARS:
        return shown
    return shown[: MAX_MESSAGE_CHARS - 3] + "..."


def status_for(exc: SchedulerError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SchedulerError as exc:
        status = status_for(exc)
        if status == 500:
            log.exception("request %s %s failed", request.method, request.path)
            return error_response(500, "internal", "internal error; see the daemon's log")
        extra = {"existingId": exc.existing_id} if isinstance(exc, DuplicateJob) else {}
        message = _redact(request, exc.message)
        field = None if exc.field is None else _redact(request, exc.field)
        response = error_response(status, exc.code, message, field, **extra)
        if status == 503:
            response.headers["Retry-After"] = "1"
        return response
    except ConnectionError:
        raise  # the client went away (or was cut off) mid-request: not a bug, nobody to answer
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        response = error_response(exc.status, code, exc.reason)
        for header in ("Allow", "WWW-Authenticate", "Retry-After"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    except Exception:
        log.exception("request %s %s failed", request.method, request.path)
        return error_response(500, "internal", "internal error; see the daemon's log")
