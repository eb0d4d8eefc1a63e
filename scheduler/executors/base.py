"""The one seam between the engine and whatever a task does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import msgspec

from scheduler.model import RunResult
from scheduler.schedules import load_zone

#: Longest error text an executor reports; the run record keeps it, so it stays readable.
MAX_ERROR_CHARS = 2000


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        ``CancelledError`` propagate. Every other failure is returned as a ``RunResult``.
        """
