"""One error hierarchy for the whole package.

Every error the package raises on purpose derives from :class:`SchedulerError`. The HTTP layer
maps these types to status codes in one middleware; the CLI maps them to exit codes. Messages
name the offending field or id so that a user can act on them without reading code.
"""

from __future__ import annotations


class SchedulerError(Exception):
    """Root of all errors raised on purpose by the scheduler."""

    code = "scheduler_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(SchedulerError, ValueError):
    """Bad input from a user: the message names the field and what was expected."""

    code = "invalid"


class InvalidSchedule(InvalidInput):
    """A schedule that does not compile (bad cron, unknown zone, impossible date)."""

    code = "invalid_schedule"


class UnknownTask(InvalidInput):
    """A job names a task that is neither in config nor registered in code."""

    code = "unknown_task"


class JobNotFound(SchedulerError, LookupError):
    """No job has this id."""

    code = "not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}", field="id")
        self.job_id = job_id


class DuplicateJob(SchedulerError):
    """A live job already holds this unique key."""

    code = "duplicate"

    def __init__(self, key: str, existing_id: str) -> None:
        super().__init__(
            f"a live job already has unique key {key!r}: {existing_id}", field="uniqueKey"
        )
        self.key = key
        self.existing_id = existing_id


class InvalidState(SchedulerError):
    """The job is not in a state that allows this action (retry a pending job, say)."""

    code = "invalid_state"


class NotReady(SchedulerError):
    """The daemon is starting or stopping and does not take changes now."""

    code = "unavailable"


class ConfigError(SchedulerError):
    """config.toml is invalid. ``problems`` holds one line per problem."""

    code = "config"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class PersistenceError(SchedulerError):
    """State on disk cannot be read or written."""

    code = "persistence"


class StorageFull(PersistenceError):
    """The disk is full (or a file size limit was hit): the change was not made durable."""

    code = "storage_full"


class CorruptState(PersistenceError):
    """State on disk is damaged somewhere other than an incomplete last record."""

    code = "corrupt_state"


class ExecutorError(SchedulerError):
    """A task's executor could not run (bad task definition, missing callable)."""

    code = "executor"


class PermanentError(SchedulerError):
    """Raised by a python task to fail the run without retrying it."""

    code = "permanent"
