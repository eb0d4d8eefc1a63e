"""The one seam between the engine and whatever a task does, and what a run may bring back.

Whatever a task or a remote system returns is stored with the run (journal, snapshot, history)
and shown by the API, so every executor passes its :class:`RunResult` through
:func:`sane_result` before returning it. That one function applies the policy:

- **Bounded.** A result is kept as a plain JSON copy when it encodes, is at most
  :data:`MAX_RESULT_BYTES` of JSON and nests at most :data:`MAX_JSON_DEPTH` levels; a longer one
  becomes its cut text with a marker; a deeper one a short note; one that does not encode as
  JSON its ``repr``. An integer past 64 bits (which JSON allows but the journal's msgpack
  cannot hold) becomes its decimal text. Encoding the run record later can then never fail (a
  reply nested ~980 levels deep once stopped the daemon when the run's end was journalled).
  Texts lose lone surrogates (which cannot be encoded as UTF-8) and errors are cut to
  :data:`MAX_ERROR_CHARS`.
- **No secrets.** Each executor knows the secrets of its task (an http task's credential
  headers, a command's secret-looking variables) and hands them over as :class:`Secrets`;
  every occurrence in the error and the result is replaced by ``[redacted]`` before anything
  is stored or logged, so a webhook that echoes its request cannot leak them.
- **Sane waits.** A ``retry_after`` from a remote system is clamped to
  :data:`MAX_RETRY_AFTER` (one day): a ``Retry-After: 999999999999`` must not push a retry past
  what a date can represent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final, Protocol

import msgspec

from scheduler.checks import (
    MAX_JSON_DEPTH,
    is_big_int,
    json_deeper,
    nested_deeper,  # noqa: F401 (re-exported: tests import it from here)
)
from scheduler.model import RunResult
from scheduler.schedules import load_zone

#: Longest error text an executor reports; the run record keeps it, so it stays readable.
MAX_ERROR_CHARS = 2000
#: Largest result kept for a run, in bytes of JSON (or of text).
MAX_RESULT_BYTES = 65536
#: Longest wait a remote system may ask for before a retry (``Retry-After``), in seconds.
MAX_RETRY_AFTER = 86400.0
#: What a secret is replaced with.
REDACTED: Final = "[redacted]"
#: Shorter values are not treated as secrets: replacing every "1" or "json" would shred
#: results, and a credential is never that short.
MIN_SECRET_CHARS = 6
# A cut text may end (or start) with part of a secret: at least this much of it is removed.
_MIN_PARTIAL = 4
#: What a result nested too deep to keep is replaced by.
TOO_DEEP: Final = f"[result not kept: nested more than {MAX_JSON_DEPTH} levels deep]"


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_text(text: str) -> str:
    """``text`` without lone surrogates (a Python string may hold them; UTF-8 cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace").decode("utf-8")
    return text


class Secrets:
    """The secret values of one task, replaced by :data:`REDACTED` wherever they appear."""

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[str] = ()) -> None:
        # Longest first: a secret that contains another is replaced whole.
        kept = {value for value in values if len(value) >= MIN_SECRET_CHARS}
        self._values = tuple(sorted(kept, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._values)

    @property
    def values(self) -> tuple[str, ...]:
        """The secret values, longest first (for the log's redactor, say)."""
        return self._values

    def redact(self, text: str, *, cut_start: bool = False, cut_end: bool = False) -> str:
        """``text`` with every secret replaced. ``cut_start``/``cut_end``: the text was cut
        there, so a secret's tail at its start (or its head at its end) is removed too."""
        for secret in self._values:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if cut_end:
            text = self._trim(text, at_end=True)
        if cut_start:
            text = self._trim(text, at_end=False)
        return text

    def _trim(self, text: str, *, at_end: bool) -> str:
        for secret in self._values:
            for size in range(len(secret) - 1, _MIN_PARTIAL - 1, -1):
                if at_end and text.endswith(secret[:size]):
                    return text[:-size] + REDACTED
                if not at_end and text.startswith(secret[-size:]):
                    return REDACTED + text[size:]
        return text

    def redact_value(self, value: Any) -> Any:
        """A JSON value (bounded by :func:`bounded_result`) with every string redacted."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self.redact_value(item) for item in value]
        if isinstance(value, dict):
            return {self.redact_value(k): self.redact_value(v) for k, v in value.items()}
        return value


NO_SECRETS = Secrets()


def bounded_result(value: Any, max_bytes: int = MAX_RESULT_BYTES) -> Any:
    """``value`` as it may be stored (see the module docstring): a plain JSON copy, a cut text
    or a short note. Never raises."""
    if value is None:
        return None
    if isinstance(value, str):
        return _bounded_text(value, max_bytes)
    try:
        encoded = msgspec.json.encode(value)
    except RecursionError:
        return TOO_DEEP
    except Exception:  # noqa: BLE001 (not JSON: kept as its repr, as the task meant something)
        return _bounded_text(_safe_repr(value), max_bytes)
    if len(encoded) > max_bytes:
        return _cut(encoded, max_bytes)
    if json_deeper(encoded):
        return TOO_DEEP
    copy = msgspec.json.decode(encoded)
    try:
        msgspec.msgpack.encode(copy)  # what the journal writes
    except OverflowError:
        return _big_ints_as_text(copy)
    return copy


def _big_ints_as_text(value: Any) -> Any:
    """``value`` (nested at most MAX_JSON_DEPTH) with each integer past 64 bits as its text."""
    if is_big_int(value):
        return str(value) if abs(value) < 10**4000 else "a number too large to show"
    if isinstance(value, list):
        return [_big_ints_as_text(item) for item in value]
    if isinstance(value, dict):
        return {key: _big_ints_as_text(item) for key, item in value.items()}
    return value


def _bounded_text(text: str, max_bytes: int) -> str:
    text = safe_text(text)
    if len(text) * 4 <= max_bytes:  # UTF-8 takes at most 4 bytes a character
        return text
    data = text.encode("utf-8")
    return text if len(data) <= max_bytes else _cut(data, max_bytes)


def _cut(data: bytes, max_bytes: int) -> str:
    head = data[:max_bytes].decode("utf-8", errors="ignore")
    return f"{head}… [truncated at {max_bytes} bytes]"


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except RecursionError:
        return TOO_DEEP
    except Exception:  # noqa: BLE001 (a broken __repr__ must not fail the run)
        return f"<unrepresentable {type(value).__name__}>"


def sane_result(
    result: RunResult, secrets: Secrets = NO_SECRETS, *, max_bytes: int = MAX_RESULT_BYTES
) -> RunResult:
    """``result`` as it may be stored, shown and logged: bounded, without secrets, with a sane
    ``retry_after`` (the module docstring has the policy). Every executor returns through it."""
    error = result.error
    if error is not None:
        error = clip(secrets.redact(safe_text(error)), MAX_ERROR_CHARS)
    value = secrets.redact_value(bounded_result(result.result, max_bytes))
    return msgspec.structs.replace(
        result, error=error, result=value, retry_after=clamp_wait(result.retry_after)
    )


def clamp_wait(seconds: float | None) -> float | None:
    """A wait asked for by a remote system, within 0 .. :data:`MAX_RETRY_AFTER`; None when
    there is none or it is not a number."""
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class RunContext(msgspec.Struct, frozen=True, kw_only=True):
    """What an executor knows about the run it performs.

    ``body`` is the JSON document sent to webhooks and written to a command's stdin:
    ``{"jobId", "workflowId", "workflowName", "payload", "attempt", "scheduledTime"}``.
    ``report_progress`` lets a python task report ``(percent, message)``; ``report_pid`` lets the
    command executor record the process it started so recovery can stop it after a crash.
    """

    job_id: str
    fire_id: str
    workflow_id: str | None
    workflow_name: str
    task: str
    payload: Any
    attempt: int
    fire: float | None  # the scheduled instant of this run
    timezone: str  # the job's zone, for ``scheduled_time``
    report_progress: Callable[[float, str | None], None]
    report_pid: Callable[[int | None], None]

    @property
    def scheduled_time(self) -> str | None:
        """``fire`` as ISO 8601 in the job's zone; rendered only when an executor asks."""
        if self.fire is None:
            return None
        return datetime.fromtimestamp(self.fire, load_zone(self.timezone)).isoformat()

    @property
    def body(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "workflowId": self.workflow_id,
            "workflowName": self.workflow_name,
            "payload": self.payload,
            "attempt": self.attempt,
            "scheduledTime": self.scheduled_time,
        }


class Executor(Protocol):
    async def run(self, ctx: RunContext) -> RunResult:
        """Perform one attempt and report how it went.

        The engine wraps the call in the job's timeout and may cancel it: an executor cleans up
        what it started (stops a process group, releases a connection) and lets
        ``CancelledError`` propagate. Every other failure is returned as a ``RunResult``,
        passed through :func:`sane_result`.
        """
