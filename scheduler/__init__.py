"""scheduler: a job-scheduler daemon and embeddable asyncio library.

``Scheduler`` and friends load on first use, so importing a low layer (``scheduler.model``)
does not pull in the engine, aiohttp and the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scheduler.errors import PermanentError, SchedulerError

if TYPE_CHECKING:
    from scheduler.runtime.library import Scheduler, TaskRef, TaskStatus

__all__ = ["PermanentError", "Scheduler", "SchedulerError", "TaskRef", "TaskStatus"]


def __getattr__(name: str) -> Any:
    if name in ("Scheduler", "TaskRef", "TaskStatus"):
        from scheduler.runtime import library

        return getattr(library, name)
    raise AttributeError(name)
