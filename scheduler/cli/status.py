"""``scheduler status [--url URL] [--wait [--timeout S]]``: a readable table from a running
daemon's status card.

It reads ``GET /api/scheduler`` (open without a token) with the standard library, because a
one-shot command needs no event loop. Exit 0 with the table; exit 1 with one clear line on
stderr when nothing answers, or the answer is not the status document.

``--wait`` first polls ``GET /healthz`` (also open) until the daemon has loaded its state and
runs, for at most ``--timeout`` seconds in all: a script that starts the daemon in the
background runs this next instead of guessing how long a start takes. ``/healthz`` rather than
the card, because the card answers while the daemon is still recovering (with
``isRunning: false``), and a "ready" that comes before recovery is finished is not ready.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

from scheduler.cli.tables import width
from scheduler.clock import SystemClock
from scheduler.i18n import N_, _

TIMEOUT = 5.0
WAIT_TIMEOUT = 30.0  # default bound of --wait: a start with a large state takes seconds
POLL_EVERY = 0.1
#: The per-status counts of the card, with their labels (job statuses, not the daemon's state).
_COUNTS = (
    ("pending", N_("pending")),
    ("running", N_("running")),
    ("completed", N_("completed")),
    ("failed", N_("failed")),
    ("cancelled", N_("cancelled")),
    ("paused", N_("paused")),
)
#: The daemon's states (``state`` of the card) and the job types, as the operator reads them.
_STATES = {
    "starting": N_("starting"),
    "running": N_("running"),
    "paused": N_("paused"),
    "stopping": N_("stopping"),
    "stopped": N_("stopped"),
}
_TYPES = {
    "immediate": N_("immediate"),
    "delayed": N_("delayed"),
    "scheduled": N_("scheduled"),
    "recurring": N_("recurring"),
}


def status_command(
    url: str,
    *,
    wait: float | None = None,
    now: float | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print the table (0), or one line on stderr (1). ``wait``: first wait up to that many
    seconds for the daemon to be ready (``monotonic``/``sleep`` are injected for tests)."""
    out = out or sys.stdout
    err = err or sys.stderr
    base = url.rstrip("/")
    try:
        if wait is not None:
            wait_ready(base, wait, monotonic=monotonic, sleep=sleep)
        doc = fetch(base + "/api/scheduler")
    except StatusError as exc:
        print(f"scheduler status: {exc}", file=err)
        return 1
    now = SystemClock().time() if now is None else now
    out.write(render(doc, url, now))
    return 0


class StatusError(Exception):
    """The daemon did not answer with its status document."""


def wait_ready(
    base: str,
    timeout: float,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once ``base/healthz`` answers 200; StatusError after ``timeout`` seconds, naming
    the last thing that answered (or did not)."""
    endpoint = base + "/healthz"
    _check_scheme(endpoint)
    deadline = monotonic() + timeout
    while True:
        left = deadline - monotonic()
        last = _probe(endpoint, max(0.1, min(TIMEOUT, left)))
        if last is None:
            return
        left = deadline - monotonic()
        if left <= 0:
            raise StatusError(
                _("no scheduler was ready at {endpoint} within {timeout} s (last: {last})").format(
                    endpoint=endpoint, timeout=f"{timeout:g}", last=last
                )
            )
        sleep(min(POLL_EVERY, left))


def _probe(endpoint: str, timeout: float) -> str | None:
    """None when ``endpoint`` answers 200, else what happened instead, for the message."""
    try:
        with urllib.request.urlopen(endpoint, timeout=timeout) as resp:  # noqa: S310 - scheme checked by the caller
            resp.read()
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.reason}"  # 503 while the daemon recovers or stops
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))
    return None


def _check_scheme(endpoint: str) -> None:
    if not endpoint.startswith(("http://", "https://")):
        message = _("{endpoint}: the URL must start with http:// or https://")
        raise StatusError(message.format(endpoint=endpoint))


def fetch(endpoint: str) -> dict[str, Any]:
    _check_scheme(endpoint)
    request = urllib.request.Request(endpoint, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:  # noqa: S310 - scheme checked above
            body = resp.read()
    except urllib.error.HTTPError as exc:
        message = _("{endpoint} answered {code} {reason}")
        raise StatusError(
            message.format(endpoint=endpoint, code=exc.code, reason=exc.reason)
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        message = _("no scheduler answers at {endpoint} ({reason})")
        raise StatusError(message.format(endpoint=endpoint, reason=reason)) from None
    try:
        doc = json.loads(body)
    except ValueError:
        raise StatusError(
            _("{endpoint} did not answer with JSON").format(endpoint=endpoint)
        ) from None
    if not isinstance(doc, dict) or "isRunning" not in doc:
        message = _("{endpoint} did not answer with a scheduler status document")
        raise StatusError(message.format(endpoint=endpoint))
    return doc


def render(doc: dict[str, Any], url: str, now: float) -> str:
    state = doc.get("state") or ("running" if doc.get("isRunning") else "stopped")
    shown = _(_STATES[state]) if state in _STATES else str(state)
    rows = [
        (_("Scheduler"), _("{state} at {url}").format(state=shown, url=url)),
        (_("Jobs"), _("{count} total").format(count=doc.get("totalJobs", 0))),
    ]
    rows += [
        (f"  {_(label)}", str(doc[f"{key}Jobs"])) for key, label in _COUNTS if f"{key}Jobs" in doc
    ]
    rows += _next_rows(doc.get("nextJob"), now)
    # Hangul labels take two terminal cells a character: pad by cells, not by characters.
    cells = max(width(label) for label, _value in rows)
    return "".join(f"{label}{' ' * (cells - width(label))}  {value}\n" for label, value in rows)


def _next_rows(nxt: Any, now: float) -> list[tuple[str, str]]:
    if not isinstance(nxt, dict):
        return [(_("Next job"), _("none scheduled"))]
    when = str(nxt.get("scheduledTime"))
    try:
        moment = datetime.fromisoformat(when)
        ahead = relative(moment.timestamp() - now)
        when = f"{moment.isoformat(sep=' ', timespec='seconds')} ({ahead})"
    except ValueError:
        pass
    kind = nxt.get("type")
    return [
        (
            _("Next job"),
            f"{nxt.get('workflowName')} ({_(_TYPES[kind]) if kind in _TYPES else kind})",
        ),
        (f"  {_('at')}", when),
        (f"  {_('id')}", str(nxt.get("id"))),
    ]


def relative(seconds: float) -> str:
    """``in 2 h 13 min``, ``in 45 s``, ``5 min ago``, ``now`` (Korean: ``2시간 13분 후``...)."""
    ahead = seconds >= 0
    left = round(abs(seconds))
    if left == 0:
        return _("now")
    parts = []
    units = ((_("{n} d"), 86400), (_("{n} h"), 3600), (_("{n} min"), 60), (_("{n} s"), 1))
    for unit, size in units:
        if left >= size:
            parts.append(unit.format(n=left // size))
            left %= size
        if len(parts) == 2:
            break
    text = " ".join(parts)
    return (_("in {time}") if ahead else _("{time} ago")).format(time=text)
