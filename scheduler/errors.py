"""One error hierarchy for the whole package.

Every error the package raises on purpose derives from :class:`SchedulerError`. The HTTP layer
maps these types to status codes in one middleware; the CLI maps them to exit codes. Messages
name the offending field or id so that a user can act on them without reading code.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time

#: Longest piece of a bad value quoted back in a message (the rest is cut with ``...``).
SHOWN_CHARS = 60


def describe(value: object) -> str:
    """How a bad value is shown after "got" in a message: short, in JSON/TOML terms.

    Whatever a client sends, the message stays short: a long string is cut and a container is
    named, never spelt out, so a hostile value cannot make an error large or slow to build.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= SHOWN_CHARS else value[: SHOWN_CHARS - 3] + "...")
    if isinstance(value, int) and abs(value) >= 10**SHOWN_CHARS:
        return "a number too large to show"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, datetime | date | time):
        return f"a date/time {value.isoformat()}"
    return type(value).__name__


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
        # The id is whatever a client put in the path: quoted cut short (a 5,000-character
        # id once made a 5,017-character message), kept whole for the caller.
        super().__init__(f"no job with id {describe(job_id)}", field="id")
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


class Unavailable(NotReady):
    """Something the scheduler needs cannot be reached now (cluster mode: the database), so
    the change was not made; the client may try again. A NotReady, so the API answers 503
    with ``Retry-After`` like any other moment the daemon cannot take a change."""

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
