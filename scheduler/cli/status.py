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

from scheduler.clock import SystemClock

TIMEOUT = 5.0
WAIT_TIMEOUT = 30.0  # default bound of --wait: a start with a large state takes seconds
POLL_EVERY = 0.1
_COUNTS = ("pending", "running", "completed", "failed", "cancelled", "paused")


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
                f"no scheduler was ready at {endpoint} within {timeout:g} s (last: {last})"
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
        raise StatusError(f"{endpoint}: the URL must start with http:// or https://")


def fetch(endpoint: str) -> dict[str, Any]:
    _check_scheme(endpoint)
    request = urllib.request.Request(endpoint, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:  # noqa: S310 - scheme checked above
            body = resp.read()
    except urllib.error.HTTPError as exc:
        raise StatusError(f"{endpoint} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StatusError(f"no scheduler answers at {endpoint} ({reason})") from None
    try:
        doc = json.loads(body)
    except ValueError:
        raise StatusError(f"{endpoint} did not answer with JSON") from None
    if not isinstance(doc, dict) or "isRunning" not in doc:
        raise StatusError(f"{endpoint} did not answer with a scheduler status document")
    return doc


def render(doc: dict[str, Any], url: str, now: float) -> str:
    state = doc.get("state") or ("running" if doc.get("isRunning") else "stopped")
    rows = [("Scheduler", f"{state} at {url}"), ("Jobs", f"{doc.get('totalJobs', 0)} total")]
    rows += [(f"  {name}", str(doc[f"{name}Jobs"])) for name in _COUNTS if f"{name}Jobs" in doc]
    rows += _next_rows(doc.get("nextJob"), now)
    width = max(len(label) for label, _ in rows)
    return "".join(f"{label.ljust(width)}  {value}\n" for label, value in rows)


def _next_rows(nxt: Any, now: float) -> list[tuple[str, str]]:
    if not isinstance(nxt, dict):
        return [("Next job", "none scheduled")]
    when = str(nxt.get("scheduledTime"))
    try:
        moment = datetime.fromisoformat(when)
        ahead = relative(moment.timestamp() - now)
        when = f"{moment.isoformat(sep=' ', timespec='seconds')} ({ahead})"
    except ValueError:
        pass
    return [
        ("Next job", f"{nxt.get('workflowName')} ({nxt.get('type')})"),
        ("  at", when),
        ("  id", str(nxt.get("id"))),
    ]


def relative(seconds: float) -> str:
    """``in 2 h 13 min``, ``in 45 s``, ``5 min ago``, ``now``."""
    ahead = seconds >= 0
    left = round(abs(seconds))
    if left == 0:
        return "now"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size} {unit}")
            left %= size
        if len(parts) == 2:
            break
    text = " ".join(parts)
    return f"in {text}" if ahead else f"{text} ago"
