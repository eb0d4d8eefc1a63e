"""Logging set-up: journald, terminal and JSON lines, with secrets redacted.

Policy:

- One line per event in every format, so ``journalctl -g``, ``grep`` and log shippers see a
  whole event: newlines inside a message or a traceback are written as the two characters
  ``\\n``.
- Under systemd (``$JOURNAL_STREAM`` names the device and inode of our stderr) each line starts
  with the sd-daemon priority prefix (``<3>`` error, ``<4>`` warning, ``<6>`` info, ``<7>``
  debug) so that ``journalctl -p warning`` works, and carries no timestamp: journald adds one.
- Elsewhere a text line starts with the local time and its offset, to the millisecond
  (``2026-11-22 09:00:00.123+09:00 INFO scheduler.engine: message key=value``).
- ``json``: one object per line: ``ts``, ``level``, ``logger``, ``message``, then the record's
  extra fields and ``exc`` for a traceback.
- Fields passed with ``extra=`` follow the message as ``key=value`` in text lines (values quoted
  when they contain spaces; None left out), and are keys of their own in JSON lines. aiohttp's
  access log already writes its fields into the message, so its text lines do not repeat them.
- :class:`Redactor` replaces secret strings (the API token) in every record before any handler
  formats it, including arguments, extra fields and tracebacks, and in the forms a secret takes
  when quoted (``repr`` of str or bytes, JSON, percent-encoding).
- :class:`Throttled` bounds what a client can make the daemon log (malformed requests, refused
  or timed-out connections, ``accept()`` errors): one line per interval, with a count.
"""

from __future__ import annotations

import enum
import logging
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, TextIO

import msgspec

from scheduler.errors import InvalidInput
from scheduler.model import Outcome

REDACTED = "[redacted]"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

# Loggers whose messages already spell out their extra fields: text lines would repeat them.
_FIELDS_IN_MESSAGE = frozenset({"aiohttp.access"})

_json = msgspec.json.Encoder(enc_hook=str)


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def setup_logging(
    *,
    fmt: str = "text",
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Redactor:
    """Send all logging to ``stream`` (stderr) in ``fmt``; returns the installed redactor.

    Replaces a handler installed by an earlier call (a reload may change the format), so
    calling it twice never doubles lines. Pass the API token as a secret, or later to
    :meth:`Redactor.update` once the token is known.
    """
    try:
        log_format = LogFormat(fmt)
    except ValueError:
        raise InvalidInput(
            f"log_format: expected 'text' or 'json', got {fmt!r}", field="scheduler.log_format"
        ) from None
    out = sys.stderr if stream is None else stream
    journal = is_journal_stream(out, os.environ if environ is None else environ)
    formatter: logging.Formatter
    if log_format is LogFormat.JSON:
        formatter = JsonFormatter(journal=journal)
    else:
        formatter = JournalFormatter() if journal else TextFormatter()

    handler = _SchedulerHandler(out)
    handler.setFormatter(formatter)
    redactor = Redactor(secrets)
    handler.addFilter(redactor)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _SchedulerHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return redactor


class _SchedulerHandler(logging.StreamHandler[TextIO]):
    """Marks the handler :func:`setup_logging` installed, so a second call can replace it."""


def is_journal_stream(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether ``stream`` is connected to journald, as systemd documents it.

    ``$JOURNAL_STREAM`` is ``device:inode`` of the stream systemd connected; the variable alone
    is not enough, because a child process may inherit it with its output redirected elsewhere.
    """
    value = environ.get("JOURNAL_STREAM", "")
    device, sep, inode = value.partition(":")
    if not sep:
        return False
    try:
        info = os.fstat(stream.fileno())
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError):
        # No file descriptor (a StringIO), a closed stream, or a malformed variable.
        return False


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 2 crit, 3 err, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller passed with ``extra=``, in the order given."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRS and not key.startswith("_")
    }


def _one_line(text: str) -> str:
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def _logfmt_value(value: object) -> str:
    if isinstance(value, float):
        return repr(round(value, 6))
    text = value if isinstance(value, str) else str(value)
    if text and not any(c in text for c in ' "=\\\n\r\t'):
        return text
    return _json.encode(text).decode()


class _LineFormatter(logging.Formatter):
    """``message key=value ... | traceback`` on one line; subclasses add what goes before."""

    def body(self, record: logging.LogRecord) -> str:
        parts = [f"{record.name}: {record.getMessage()}"]
        if record.name not in _FIELDS_IN_MESSAGE:
            parts.extend(
                f"{key}={_logfmt_value(value)}"
                for key, value in extra_fields(record).items()
                if value is not None
            )
        line = " ".join(parts)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += " | " + record.exc_text
        if record.stack_info:
            line += " | " + self.formatStack(record.stack_info)
        return _one_line(line)


class TextFormatter(_LineFormatter):
    """Terminal and file lines: local time with offset, level, logger, message, fields."""

    def __init__(self, tz: tzinfo | None = None) -> None:
        super().__init__()
        self._tz = tz

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        local = moment.astimezone(self._tz) if self._tz else moment.astimezone()
        stamp = local.isoformat(sep=" ", timespec="milliseconds")
        return f"{stamp} {record.levelname} {self.body(record)}"


class JournalFormatter(_LineFormatter):
    """journald lines: the ``<N>`` priority prefix and no timestamp (journald adds it)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{syslog_priority(record.levelno)}>{self.body(record)}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; with ``journal`` the line also gets the ``<N>`` prefix."""

    def __init__(self, *, journal: bool = False) -> None:
        super().__init__()
        self._journal = journal

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        doc: dict[str, Any] = {
            "ts": moment.isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            doc.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        line = _json.encode(doc).decode()
        return f"<{syslog_priority(record.levelno)}>{line}" if self._journal else line


class Redactor(logging.Filter):
    """Replaces every secret with ``[redacted]`` in a record before it is formatted.

    Installed on the handler, so it sees records from every logger (a filter on a logger would
    miss records propagated from its children). It rewrites the record in place: the message
    (with its arguments merged), string extra fields, the traceback text and the stack. Empty
    strings are ignored: they would match everywhere.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        """Replace the set of secrets (a reload may change the token). Each is also looked
        for as it appears when quoted: escaped by ``repr`` of a str or of bytes (how a header
        or a body shows in an error), as a JSON string, and percent-encoded (in a URL)."""
        spelled = {form for s in secrets if s for form in _spellings(s)}
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = tuple(sorted(spelled, key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in extra_fields(record).items():
            if value is not None and not isinstance(value, bool | int | float):
                text = value if isinstance(value, str) else str(value)
                redacted = self.redact(text)
                if redacted != text:
                    setattr(record, key, redacted)
        return True


def _spellings(secret: str) -> set[str]:
    forms = {
        secret,
        repr(secret)[1:-1],
        repr(secret.encode("utf-8", "surrogateescape"))[2:-1],
        _json.encode(secret).decode()[1:-1],
        urllib.parse.quote(secret, safe=""),
    }
    return {form for form in forms if form}


_RUN_LEVELS: dict[str, int] = {
    Outcome.SUCCESS: logging.INFO,
    Outcome.CANCELLED: logging.INFO,
    Outcome.SKIPPED_OVERLAP: logging.INFO,
    Outcome.MISSED: logging.WARNING,
    Outcome.INTERRUPTED: logging.WARNING,
    Outcome.ERROR: logging.ERROR,
    Outcome.TIMEOUT: logging.ERROR,
}


def log_run(
    logger: logging.Logger,
    *,
    job_id: str,
    workflow: str,
    outcome: Outcome | str,
    duration: float | None,
    lateness: float | None,
    error: str | None = None,
    level: int | None = None,
    **fields: object,
) -> None:
    """Log one line for a finished (or missed, or skipped) run.

    ``duration`` and ``lateness`` are seconds; ``fields`` adds more (``attempt``, ``task``).
    The level follows the outcome unless given: info for a success, a cancel or a skipped
    overlap, warning for a missed or interrupted run, error for an error or a timeout.
    """
    outcome = str(outcome)
    if level is None:
        level = _RUN_LEVELS.get(outcome, logging.WARNING)
    extra: dict[str, object] = {
        "job_id": job_id,
        "workflow": workflow,
        "outcome": outcome,
        "duration": duration,
        "lateness": lateness,
        "error": error,
        **fields,
    }
    logger.log(level, "run %s", outcome, extra=extra)


class Throttled:
    """One kind of log line written at most once per ``every`` seconds.

    For what a client can cause at will (malformed requests, refused or timed-out
    connections, accept errors while out of file descriptors): a line per occurrence would let
    anyone fill the disk (1,100 hostile requests once logged 88 MB). The first occurrence is
    logged at once; later ones within ``every`` seconds are only counted, and the next line
    written says how many were left out.
    """

    def __init__(
        self,
        logger: logging.Logger,
        level: int = logging.WARNING,
        *,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.level = level
        self.every = every
        self.clock = clock
        self.total = 0
        self._left_out = 0
        self._next = float("-inf")

    def __call__(self, message: str, *args: object) -> bool:
        """Log ``message % args`` unless one was logged less than ``every`` seconds ago;
        returns whether it was written. Never with a traceback."""
        self.total += 1
        now = self.clock()
        if now < self._next:
            self._left_out += 1
            return False
        self._next = now + self.every
        if self._left_out:
            message += " (and %d more like it in the last %gs, not logged)"
            args = (*args, self._left_out, self.every)
            self._left_out = 0
        self.logger.log(self.level, message, *args)
        return True
