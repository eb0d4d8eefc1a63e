"""The ``http`` task: one request to a configured webhook per attempt.

Policy, and why:

- One ``aiohttp.ClientSession`` for the whole daemon (:func:`make_session`), so connections are
  pooled and bounded; the executor never owns or closes it.
- The body is the run's JSON document with ``Idempotency-Key: <fire id>``, so a receiver can
  recognise a run repeated after a crash or a retry.
- Redirects are not followed: the configured headers often carry credentials and following a
  redirect would send them wherever the server points. A 3xx is an error that retrying cannot
  fix, so it is not retried; configure the final URL instead.
- 2xx is success. 4xx other than 408 and 429 is not retried (the request itself is wrong);
  anything else (408, 429, 5xx, no connection, timeout) is. 429 and 503 with ``Retry-After``
  (delta-seconds or an HTTP-date) report how long to wait.
- At most ``max_response_bytes`` of the body are ever read into memory; a longer body is cut
  and the result says so. The result is the parsed JSON when the body is complete JSON, else
  text.
- Messages name the method, the URL without query or credentials, the status and a short body
  excerpt; never a header.
- What the server sends back is bounded and cleaned by :func:`~.base.sane_result`: a JSON body
  nested more than 64 levels is replaced by a note, and the task's secrets are redacted from
  the error and the result, because a server may echo the request. The secrets are the values
  of every configured header except the plainly descriptive ones (``Accept*``,
  ``Content-Type``, ``User-Agent``...), the credential after an auth scheme (``Bearer x``:
  ``x``; ``Basic``: also the decoded password), the URL's password and its query values.
- ``Retry-After`` is honoured up to one day (:data:`~.base.MAX_RETRY_AFTER`): a larger value,
  a date further away or a number too long to read waits one day. A server cannot push a retry
  out of the range of dates, and a day is longer than any real rate-limit window.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC
from typing import Any

import aiohttp
import msgspec
from multidict import CIMultiDict
from yarl import URL

from scheduler.checks import json_deeper
from scheduler.clock import Clock, SystemClock
from scheduler.errors import ExecutorError
from scheduler.executors.base import (
    MAX_RESULT_BYTES,
    MAX_RETRY_AFTER,
    TOO_DEEP,
    RunContext,
    Secrets,
    sane_result,
)
from scheduler.executors.tasks import TaskConfig
from scheduler.model import Outcome, RunResult

_log = logging.getLogger(__name__)

#: Total time for one request when neither the task nor the job sets a timeout.
DEFAULT_TIMEOUT = 300.0
#: Total time for a request on the shared session that sets no timeout of its own.
SESSION_TIMEOUT = 60.0
_EXCERPT_CHARS = 200
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_RETRYABLE_4XX = frozenset({408, 429})
#: Configured headers whose values describe the request and are never secret.
_PLAIN_HEADERS = frozenset(
    {
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "content-language",
        "content-type",
        "pragma",
        "prefer",
        "user-agent",
    }
)
_DELTA_SECONDS = re.compile(r"[0-9]{1,15}")  # RFC 9110: 1*DIGIT; more digits than a day needs


def make_session(*, limit: int = 100, limit_per_host: int = 20) -> aiohttp.ClientSession:
    """The daemon's one client session; create it inside the running loop, close it at exit.

    Connections are capped (``limit`` in all, ``limit_per_host`` per webhook) so a burst of due
    jobs cannot open thousands of sockets. Each executor request sets its own total timeout;
    other requests on this session (alerts, say) get :data:`SESSION_TIMEOUT` unless they set
    one. Cookies are never kept, so one task's responses cannot change another task's requests.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host),
        timeout=aiohttp.ClientTimeout(total=SESSION_TIMEOUT),
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": "scheduler"},
    )


class HttpExecutor:
    """Runs an ``http`` task. ``session`` is the shared session or a getter for it (so an
    executor can be built before the loop runs and the session created lazily inside it)."""

    def __init__(
        self,
        task_name: str,
        task: TaskConfig,
        session: aiohttp.ClientSession | Callable[[], aiohttp.ClientSession],
        *,
        clock: Clock | None = None,
    ) -> None:
        if not task.url:
            raise ExecutorError(f"task {task_name!r}: an http task needs a url", field="url")
        url = URL(task.url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ExecutorError(
                f"task {task_name!r}: url must be an absolute http(s) URL", field="url"
            )
        self._name = task_name
        self._url = url
        self._method = task.method.upper()
        self._headers = dict(task.headers)
        self._cap = task.max_response_bytes
        self._timeout = aiohttp.ClientTimeout(total=task.timeout or DEFAULT_TIMEOUT)
        self._session = session
        self._clock: Clock = clock or SystemClock()
        self._secrets = http_secrets(self._headers, url)
        # Room beside the cap for the marker of a cut body.
        self._keep = max(MAX_RESULT_BYTES, self._cap + 64)
        # For messages: no credentials, no query string (tokens often live there).
        self._where = f"{self._method} {url.with_user(None).with_query(None).with_fragment(None)}"

    def _get_session(self) -> aiohttp.ClientSession:
        if isinstance(self._session, aiohttp.ClientSession):
            return self._session
        return self._session()

    async def run(self, ctx: RunContext) -> RunResult:
        return sane_result(await self._request(ctx), self._secrets, max_bytes=self._keep)

    async def _request(self, ctx: RunContext) -> RunResult:
        # Case-insensitive, so a configured "content-type" replaces ours instead of doubling it.
        headers = CIMultiDict({"Content-Type": "application/json"})
        headers.update(self._headers)
        headers["Idempotency-Key"] = ctx.fire_id
        try:
            async with self._get_session().request(
                self._method,
                self._url,
                data=msgspec.json.encode(ctx.body),
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                body, truncated = await _read_capped(resp, self._cap)
                return self._result(resp, body, truncated=truncated)
        except TimeoutError:
            total = self._timeout.total
            return _failed(f"{self._where}: no complete response within {total:g}s")
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error)
            return _failed(f"{self._where}: cannot connect to {exc.host}:{exc.port}: {reason}")
        except aiohttp.ClientError as exc:
            return _failed(f"{self._where}: {type(exc).__name__}: {self._scrub(str(exc))}")
        except Exception as exc:  # noqa: BLE001 (logged; a run must end as a RunResult)
            # Anything else is a bug or an odd environment; it must still end as a recorded run.
            _log.exception("task %r: unexpected error in the http executor", self._name)
            return _failed(f"{self._where}: {type(exc).__name__}: {self._scrub(str(exc))}")

    def _result(self, resp: aiohttp.ClientResponse, body: bytes, *, truncated: bool) -> RunResult:
        # Redacted before it is cut, so that no cut leaves part of a secret behind.
        text = self._secrets.redact(_as_text(resp, body), cut_end=truncated)
        result = _decode(resp, body, text, truncated=truncated, cap=self._cap)
        status = resp.status
        if 200 <= status < 300:
            return RunResult(outcome=Outcome.SUCCESS, result=result)
        excerpt = " ".join(text.split())[:_EXCERPT_CHARS]
        error = f"{self._where}: HTTP {status} {resp.reason or ''}".rstrip()
        if excerpt:
            error = f"{error}: {excerpt}"
        retry_after = None
        if status in _RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"), self._clock.time())
        return RunResult(
            outcome=Outcome.ERROR,
            error=error,
            result=result,
            retryable=_retryable(status),
            retry_after=retry_after,
        )

    def _scrub(self, text: str) -> str:
        return text.replace(str(self._url), self._where.split(" ", 1)[1])


def _retryable(status: int) -> bool:
    if 300 <= status < 400:
        return False
    return not (400 <= status < 500 and status not in _RETRYABLE_4XX)


def _failed(error: str) -> RunResult:
    return RunResult(outcome=Outcome.ERROR, error=error, retryable=True)


def http_secrets(headers: Mapping[str, str], url: URL) -> Secrets:
    """The values an http task must never show (see the module docstring for which)."""
    values: list[str] = []
    for name, value in headers.items():
        if name.lower() not in _PLAIN_HEADERS:
            values.extend(_credentials(value.strip()))
    if url.password:
        values.append(url.password)
    values.extend(str(value) for value in url.query.values())
    return Secrets(values)


def _credentials(value: str) -> Iterable[str]:
    """A header value, and the parts of it a server might echo alone."""
    yield value
    scheme, _, credential = value.partition(" ")
    credential = credential.strip()
    if not credential:
        return
    yield credential
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credential, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return
        yield decoded
        yield decoded.partition(":")[2]


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the body, and whether there was more. Reads ``cap + 1`` bytes at
    most, so a huge body never sits in memory; the rest is left unread (the connection is
    closed rather than reused)."""
    buf = bytearray()
    while len(buf) <= cap:
        chunk = await resp.content.read(cap + 1 - len(buf))
        if not chunk:
            return bytes(buf), False
        buf += chunk
    return bytes(buf[:cap]), True


def _as_text(resp: aiohttp.ClientResponse, body: bytes) -> str:
    try:
        return body.decode(resp.charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name from the server
        return body.decode("utf-8", errors="replace")


def _decode(
    resp: aiohttp.ClientResponse, body: bytes, text: str, *, truncated: bool, cap: int
) -> Any:
    """Parsed JSON for a complete JSON body, else ``text`` (the body as text, redacted); a cut
    body is text with a marker. JSON nested too deep for a run record is a note."""
    if not body and not truncated:
        return None
    ctype = resp.content_type
    if not truncated and (ctype == "application/json" or ctype.endswith("+json")):
        if json_deeper(body):  # checked on the bytes: decoding it could exhaust the stack
            return TOO_DEEP
        try:
            return msgspec.json.decode(body)
        except msgspec.DecodeError:
            pass
    return f"{text}… [truncated at {cap} bytes]" if truncated else text


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date), from 0 to
    :data:`~.base.MAX_RETRY_AFTER`; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # A number of more digits than fit the pattern is longer than a day anyway.
        seconds = float(text) if _DELTA_SECONDS.fullmatch(text) else MAX_RETRY_AFTER
        return min(seconds, MAX_RETRY_AFTER)
    if len(text) > 64:  # an HTTP-date is 29 characters
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110: an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER)
