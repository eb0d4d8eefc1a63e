"""``GET /api/maintenance``: the maintenance windows open now, each window's next opening, and
every opening in the coming hours (the dashboard shades them on its timeline).

Each window is ``{"name", "start", "end", "timezone", "tasks"}``: ``start`` and ``end`` are
ISO 8601 with the offset of the window's own zone (``end`` is when runs may start again),
``tasks`` null for a window that holds every task.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from scheduler.api.errors import json_response
from scheduler.api.inputs import query_int
from scheduler.api.keys import SCHEDULER
from scheduler.maintenance import Window
from scheduler.views import iso

routes = web.RouteTableDef()

#: Bounds of ``?hours=`` (how far ahead ``upcoming`` looks): an hour to a week.
MIN_HOURS: Final = 1
MAX_HOURS: Final = 168
DEFAULT_HOURS: Final = 24


@routes.get("/api/maintenance")
async def get_maintenance(request: web.Request) -> web.Response:
    """``current``: the windows open now; ``next``: each window's next opening after now;
    ``upcoming``: every opening that intersects the next ``hours`` hours, by start."""
    hours = query_int(request, "hours", DEFAULT_HOURS, minimum=MIN_HOURS, maximum=MAX_HOURS)
    sched = request.app[SCHEDULER]
    now = sched.clock.time()
    windows = sched.maintenance
    return json_response(
        {
            "current": [window_json(w) for w in windows.current(now)],
            "next": [window_json(w) for w in windows.next(now)],
            "upcoming": [window_json(w) for w in windows.between(now, now + hours * 3600.0)],
        }
    )


def window_json(window: Window) -> dict[str, Any]:
    """One window as the API shows it."""
    return {
        "name": window.name,
        "start": iso(window.start, window.timezone),
        "end": iso(window.end, window.timezone),
        "timezone": window.timezone,
        "tasks": list(window.tasks) or None,
    }
