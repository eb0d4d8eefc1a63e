"""Running the API: what the transport bounds, so that no client can hold the daemon down.

aiohttp accepts every connection and waits for a request as long as the client likes; 1,100
half-sent requests once kept the status card down for 40 s, used up the process's file
descriptors (so every command job failed with "Too many open files") and, through a traceback
per malformed request, logged 88 MB. :class:`GuardedRunner` runs the app with these bounds
(:class:`ServerLimits`, set in ``[server]``):

- ``idle_timeout``: a connection with no request in progress (before the first byte, or between
  keep-alive requests) is closed after this long (aiohttp's keep-alive timeout, which it also
  arms when a connection opens).
- ``header_timeout``: once a request's first byte has arrived, its headers must be complete
  within this long; once they are, its body must be complete within this long again. A client
  that sends a byte at a time is closed, however long the idle timeout.
- ``max_connections``: when one more is accepted, the oldest connection that is idle or still
  sending its headers is closed to make room; if none is (all busy, e.g. event streams), the new
  one gets a 503 and is closed. A flood of idle connections thus never locks out a real client.
  The daemon also keeps this below the process's file-descriptor limit (see the unit's
  ``LimitNOFILE``), leaving room for jobs, the journal and webhooks.
- A request the HTTP parser refuses is answered with the usual JSON error and never echoed:
  431 for a header over 32 KiB (401 if it is ``Authorization``: the same answer as any bad
  token), 400 for anything else malformed. It is logged as one line without a traceback, and
  like every other event here (refused, evicted or timed-out connections, ``accept()`` failing
  for lack of file descriptors) at most once per 10 s with a count of the rest.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader

from scheduler.api.errors import error_response
from scheduler.observability.logs import Throttled

log = logging.getLogger("scheduler.api.server")

#: Pending connections the kernel queues before ``accept``. asyncio also accepts up to this
#: many in one loop turn, so a larger value turns a burst of connections into a longer stall
#: (1,024 stalled the loop for 200 ms); aiohttp's default of 128 keeps each turn short.
BACKLOG: Final = 128
#: File descriptors kept free of connections: jobs, the journal, snapshots, webhooks, alerts.
FD_RESERVE: Final = 256
#: Bytes of a header line kept to name it if it turns out too long.
_NAME_BYTES: Final = 64
_REFUSED: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
)
_REFUSED_BODY: Final = (
    b'{"error": {"code": "unavailable", "message": "too many connections; retry shortly",'
    b' "field": null}}'
)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """How the HTTP edge bounds its clients (``[server]`` keys of the same names)."""

    idle_timeout: float = 15.0
    header_timeout: float = 10.0
    max_connections: int = 1024
    max_streams: int = 100
    cors_routes: tuple[str, ...] = ("/api/scheduler",)


def connection_cap(limits: ServerLimits, nofile: int | None) -> int:
    """``max_connections``, lowered to leave ``FD_RESERVE`` descriptors of the soft
    ``RLIMIT_NOFILE`` (``nofile``; None: no limit known) to everything else."""
    if nofile is None or nofile <= 0:
        return limits.max_connections
    return max(16, min(limits.max_connections, nofile - FD_RESERVE))


class ConnectionGuard:
    """The connections of one server, oldest first, and the throttled log of what it does."""

    def __init__(self, limits: ServerLimits) -> None:
        self.limits = limits
        self.max_connections = limits.max_connections
        self.open: dict[GuardedHandler, None] = {}
        self.refused = Throttled(log)
        self.evicted = Throttled(log, logging.INFO)
        self.timed_out = Throttled(log, logging.INFO)
        self.malformed = Throttled(log)

    def admit(self, handler: GuardedHandler, transport: asyncio.Transport) -> None:
        self.open[handler] = None
        if len(self.open) <= self.max_connections:
            return
        victim = next((h for h in self.open if h is not handler and h.idle), None)
        if victim is not None:
            self.evicted(
                "connection limit (%d) reached: closed the oldest idle connection",
                self.max_connections,
            )
            victim.force_close()
            return
        self.refused(
            "connection limit (%d) reached and every connection is busy: refused one",
            self.max_connections,
        )
        transport.write(_REFUSED % (len(_REFUSED_BODY), _REFUSED_BODY))
        handler.force_close()

    def forget(self, handler: GuardedHandler) -> None:
        self.open.pop(handler, None)


class GuardedHandler(web.RequestHandler):
    """aiohttp's protocol with a deadline for each request's head and body, a place in the
    guard's connection list, and parser errors answered without echo or traceback.

    It reads a few of aiohttp's private attributes (``_waiter``, ``_messages``,
    ``_request_count``, ``_force_close``, ``_close``); the connection tests pin them."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = guard
        self._deadline: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None  # the payload still arriving, if any
        self._line = b""  # the start of the last (incomplete) line received
        self._line_len = 0
        self._too_long: bytes | None = None  # the name of an oversized header line

    @property
    def idle(self) -> bool:
        """Waiting for a request: between requests, or before its first complete head
        (connected, or half-sent), whether or not aiohttp's task has started waiting yet."""
        if self._force_close:
            return False
        waiting = self._waiter is not None and not self._waiter.done()
        return waiting or (self._request_count == 0 and not self._messages)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._force_close and isinstance(transport, asyncio.Transport):
            self.guard.admit(self, transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.guard.forget(self)
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._force_close or self._close:
            return
        before = self._request_count
        line, line_len = self._line, self._line_len
        super().data_received(data)
        self._follow_lines(data)
        if self._request_count != before:
            self._head_received(line, line_len, data)
        elif self._body is not None:
            if self._body.is_eof():
                self._body = None
                self._cancel_deadline()
        elif data and self._deadline is None:
            self._arm(self.guard.limits.header_timeout)

    def _head_received(self, line: bytes, line_len: int, data: bytes) -> None:
        self._cancel_deadline()
        message, payload = self._messages[-1] if self._messages else (None, None)
        exc = getattr(message, "exc", None)
        if isinstance(exc, LineTooLong):
            self._too_long = _longest_line_name(line, line_len, data)
        elif isinstance(payload, StreamReader) and not payload.is_eof():
            self._body = payload
            self._arm(self.guard.limits.header_timeout)

    def _follow_lines(self, data: bytes) -> None:
        """Keep the start and length of the last incomplete line (cheap: one ``rfind``)."""
        end = data.rfind(b"\n")
        if end < 0:
            if len(self._line) < _NAME_BYTES:
                self._line += data[: _NAME_BYTES - len(self._line)]
            self._line_len += len(data)
        else:
            self._line = data[end + 1 : end + 1 + _NAME_BYTES]
            self._line_len = len(data) - end - 1

    def _arm(self, seconds: float) -> None:
        self._cancel_deadline()
        self._deadline = self._loop.call_later(seconds, self._expired)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        what = "body" if self._body is not None else "headers"
        self.guard.timed_out(
            "closed a connection whose request %s did not arrive within %gs",
            what,
            self.guard.limits.header_timeout,
        )
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, ConnectionError):  # the client went, or a deadline cut it off
            response = web.Response(status=400)
            response.force_close()
            return response
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:
            raise ConnectionError("the response was already started")
        status, code, text = _refusal(exc, self._too_long)
        self.guard.malformed("refused a request from %s: %s", request.remote, text)
        response = error_response(status, code, text)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="scheduler"'
        response.force_close()
        return response


def _refusal(exc: HttpProcessingError, too_long: bytes | None) -> tuple[int, str, str]:
    """Status, code and message for a request the parser refused. Never the request's text:
    it may hold a token (only a header's name is quoted, and only if it is a plain name)."""
    if isinstance(exc, LineTooLong):
        name = (too_long or b"").decode("ascii", "replace")
        if name.lower() in ("authorization", "proxy-authorization"):
            return 401, "unauthorized", "missing or invalid bearer token"
        if name and all(c.isalnum() or c in "-_" for c in name):
            return 431, "header_too_large", f"request header {name} is too large"
        return 431, "header_too_large", "request line or header too large"
    return 400, "invalid", f"malformed HTTP request ({type(exc).__name__})"


def _longest_line_name(line: bytes, line_len: int, data: bytes) -> bytes | None:
    """The name of the longest header line in the chunk that overflowed (continuing ``line``,
    ``line_len`` bytes long so far): the parser stops at the first line over its limit, and
    that is the longest one it saw. None when that line is not ``Name: value``."""
    best_len, best = line_len, line
    start = 0
    while start <= len(data):
        end = data.find(b"\n", start)
        stop = len(data) if end < 0 else end
        length = stop - start + (line_len if start == 0 else 0)
        if length >= best_len:
            head = data[start : min(stop, start + _NAME_BYTES)]
            best_len, best = length, (line + head if start == 0 else head)[:_NAME_BYTES]
        if end < 0:
            break
        start = end + 1
    name, sep, _ = best.partition(b":")
    return name.strip() if sep and b" " not in name.strip() else None


class GuardedServer(web.Server):
    """aiohttp's server (the protocol factory) making :class:`GuardedHandler` protocols."""

    def __init__(self, plain: web.Server, guard: ConnectionGuard) -> None:
        # Same handler, factory and keyword arguments as the server aiohttp built; ``_loop``
        # and ``_kwargs`` are read because ``Server`` offers no public way to copy them.
        super().__init__(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
        self.guard = guard

    def __call__(self) -> web.RequestHandler:
        return GuardedHandler(self, guard=self.guard, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """``AppRunner`` whose connections are bounded by ``limits`` (see the module)."""

    def __init__(
        self, app: web.Application, *, limits: ServerLimits, nofile: int | None = None, **kw: Any
    ) -> None:
        super().__init__(app, keepalive_timeout=limits.idle_timeout, **kw)
        self.guard = ConnectionGuard(limits)
        self.guard.max_connections = connection_cap(limits, nofile)

    async def _make_server(self) -> web.Server:
        return GuardedServer(await super()._make_server(), self.guard)


def throttle_accept_errors(loop: asyncio.AbstractEventLoop) -> Throttled:
    """Make asyncio's "socket.accept() out of system resource" (logged with a traceback on
    every retry while the process is out of file descriptors) one line per 10 s."""
    accept_errors = Throttled(log, logging.ERROR)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            exc = context.get("exception")
            accept_errors("cannot accept connections: %s (raise LimitNOFILE?)", exc)
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return accept_errors
