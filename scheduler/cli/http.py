"""Requests to a running daemon for ``scheduler jobs``: one JSON request, or its event stream.

The standard library's client, because a one-shot command needs no event loop. ``http.client``
rather than urllib (which ``scheduler status`` uses): the event stream needs a read timeout that
shrinks to the time left before ``--timeout``, and urllib cannot change it once the response is
open; the stream's socket is kept for that. No proxy is used: the daemon is on this machine or
reached directly. The token goes as ``Authorization: Bearer`` and is never printed; a refusal is
a :class:`~scheduler.cli.exits.Failure` with the daemon's own message (it names the field) and
the exit code of its status, and a 401 says how to give a token.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit

from scheduler.cli.exits import ERROR, FOR_STATUS, USAGE, Failure
from scheduler.cli.target import Target
from scheduler.i18n import N_, _

#: Seconds a one-shot request may take: a cancel or a delete waits for the run to stop.
REQUEST_TIMEOUT: Final = 60.0
#: Longest line of the event stream read (an event is one ``data:`` line).
MAX_LINE: Final = 1 << 21
STREAM_TYPE: Final = "text/event-stream"

NO_ANSWER = N_("no scheduler answers at {url} ({reason})")
BAD_URL = N_("{url}: the URL must be http:// or https://HOST[:PORT]")
NOT_JSON = N_("{url} answered {status} without a JSON document")
ANSWERED = N_("{url} answered {status} {reason}")
ASK_FOR_KEY = N_(
    "{url} needs the API token: give --token-file FILE (such as /etc/scheduler/api_token), "
    "or set {env}"
)
NO_KEY_VARIABLE = "[server] token_env"
KEY_REFUSED = N_("{url} refused the API token from {source}: {message}")
LONG_LINE = N_("the event stream sent a line longer than {limit} bytes")


class TimedOut(Exception):
    """The deadline of a stream passed."""


def job_path(job_id: str, action: str = "") -> str:
    """``/api/jobs/ID[/ACTION]`` with the id quoted (it is whatever the user typed)."""
    path = f"/api/jobs/{quote(job_id, safe='')}"
    return f"{path}/{action}" if action else path


@dataclass(frozen=True)
class Event:
    """One event of the stream: its type (``job-progress``...) and its JSON data."""

    type: str
    data: dict[str, Any]


class Client:
    """Requests to one daemon; every answer is JSON, every refusal a :class:`Failure`."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.url = target.url.rstrip("/")
        try:
            parts = urlsplit(self.url)
            port = parts.port
        except ValueError:
            raise Failure(_(BAD_URL).format(url=self.url), USAGE) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Failure(_(BAD_URL).format(url=self.url), USAGE)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = port
        self._prefix = parts.path.rstrip("/")  # a daemon behind a proxy at /scheduler/

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """The JSON answer (None for 204). Changes are sent as JSON, an empty object when
        there is nothing to say: the daemon takes no other media type."""
        headers = self._headers("application/json")
        data = None
        if method in ("POST", "PUT", "PATCH"):
            data = json.dumps(dict(body or {})).encode()
            headers["Content-Type"] = "application/json"
        conn = self._connection(REQUEST_TIMEOUT)
        try:
            conn.request(method, self._target(path, query), body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise Failure(_(NO_ANSWER).format(url=self.url, reason=_reason(exc))) from None
        finally:
            conn.close()
        if resp.status == 204:
            return None
        doc = _json_or_none(raw)
        if resp.status >= 400:
            raise self.refusal(resp.status, resp.reason, doc)
        if doc is None:
            raise Failure(_(NOT_JSON).format(url=self.url, status=resp.status))
        return doc

    def events(
        self,
        path: str,
        query: Mapping[str, str],
        *,
        deadline: float,
        monotonic: Callable[[], float],
    ) -> EventStream:
        """Open the stream now: once this returns, the daemon keeps every event for it (so a
        run posted next cannot be missed). Iterate it for the events; close it after."""
        conn = self._connection(max(0.001, deadline - monotonic()))
        try:
            conn.connect()
            sock = conn.sock  # kept: the stream's reads get the time left as their timeout
            conn.request("GET", self._target(path, query), headers=self._headers(STREAM_TYPE))
            resp = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise TimedOut from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise Failure(_(NO_ANSWER).format(url=self.url, reason=_reason(exc))) from None
        if resp.status >= 400:
            doc = _json_or_none(resp.read())
            conn.close()
            raise self.refusal(resp.status, resp.reason, doc)
        return EventStream(conn, resp, sock, deadline, monotonic)

    def refusal(self, status: int, reason: str, doc: Any) -> Failure:
        """The daemon's own message (it names the field), with how to give a token on 401."""
        error = doc.get("error") if isinstance(doc, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        code = FOR_STATUS.get(status, ERROR)
        answered = _(ANSWERED).format(url=self.url, status=status, reason=reason)
        if status == 401:
            target = self.target
            if target.token is None:
                env = f"${target.token_env}" if target.token_env else NO_KEY_VARIABLE
                return Failure(_(ASK_FOR_KEY).format(url=self.url, env=env), code)
            text = str(message) if message else answered
            said = _(KEY_REFUSED).format(url=self.url, source=target.source, message=text)
            return Failure(said, code)
        return Failure(str(message), code, daemon=True) if message else Failure(answered, code)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=timeout)

    def _target(self, path: str, query: Mapping[str, str] | None) -> str:
        return self._prefix + path + (f"?{urlencode(query)}" if query else "")

    def _headers(self, accept: str) -> dict[str, Any]:
        headers: dict[str, Any] = {"Accept": accept}
        if self.target.token is not None:
            # Sent as bytes: a token is not always Latin-1, and the daemon compares bytes.
            headers["Authorization"] = b"Bearer " + self.target.token.encode()
        return headers


class EventStream:
    """An open event stream. Iterating yields its events until it ends (the daemon stopped or
    dropped it) and raises :class:`TimedOut` once ``monotonic()`` passes ``deadline``: each
    read waits at most for the time left, so the deadline holds however quiet the stream."""

    def __init__(
        self,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
        sock: Any,
        deadline: float,
        monotonic: Callable[[], float],
    ) -> None:
        self._conn = conn
        self._resp = resp
        self._sock = sock
        self._deadline = deadline
        self._monotonic = monotonic

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()
        self._resp.close()

    def __iter__(self) -> Iterator[Event]:
        """``event:`` and ``data:`` lines; a blank line ends an event, ``:`` lines are pings."""
        kind = "message"
        data: list[str] = []
        while (line := self._line()) is not None:
            if not line:
                if data:
                    doc = _json_or_none("\n".join(data).encode())
                    yield Event(kind, doc if isinstance(doc, dict) else {})
                kind, data = "message", []
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))

    def _line(self) -> str | None:
        """The next line without its end; None when the stream is over."""
        left = self._deadline - self._monotonic()
        if left <= 0:
            raise TimedOut
        self._sock.settimeout(left)
        try:
            raw = self._resp.readline(MAX_LINE + 1)
        except TimeoutError:
            raise TimedOut from None
        except (OSError, http.client.HTTPException):
            return None  # the daemon went away: the caller says the stream ended
        if len(raw) > MAX_LINE:
            raise Failure(_(LONG_LINE).format(limit=MAX_LINE))
        if not raw:
            return None
        return raw.decode("utf-8", "replace").rstrip("\r\n")


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc) or type(exc).__name__
