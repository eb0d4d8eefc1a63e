"""Job operations shared by the HTTP API and the library API.

Each operation validates first (a bad request changes nothing), then changes the jobs, waits
until the change is durable, and only then returns: a caller that gets an answer can rely on
the change surviving a crash. :mod:`.base` holds the reads and the pure transitions every kind
of scheduler shares; :mod:`.local` the single box's writes.
"""

from scheduler.service.base import BaseService, EngineView, WorkflowNotFound, definition
from scheduler.service.local import JobService

__all__ = ["BaseService", "EngineView", "JobService", "WorkflowNotFound", "definition"]
