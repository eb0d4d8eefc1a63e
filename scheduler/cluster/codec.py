"""Jobs and runs as rows: the record bytes and the columns the database indexes.

The ``record`` column holds a :class:`~scheduler.model.Job` (``runs.record`` a
:class:`~scheduler.model.Run`) encoded exactly as the single box's journal encodes it inside a
record: msgpack of the struct, written whole on every change. So a reader needs nothing but
the record, a replica applies "highest ``version`` wins", and ``scheduler cluster import``
moves a single box's state without converting anything.

The other columns of ``jobs`` are derived from the record by :func:`job_columns` and exist
only for the database to find rows (due jobs, unique keys, static names, retention); they are
written in the same statement as the record, so they never disagree with it.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from scheduler.model import Job, Run
from scheduler.store import wake_time

# msgspec holds the GIL for a whole encode or decode call, so one instance serves every thread.
_ENCODER: Final = msgspec.msgpack.Encoder()
_JOB: Final = msgspec.msgpack.Decoder(Job)
_RUN: Final = msgspec.msgpack.Decoder(Run)

#: The columns :func:`job_columns` gives, in table order (``id``, ``version`` and ``record``
#: are the writer's).
JOB_COLUMNS: Final = (
    "status",
    "priority",
    "wake",
    "held",
    "task",
    "workflow_id",
    "unique_key",
    "name",
    "source",
    "completed",
)


def encode_job(job: Job) -> bytes:
    return _ENCODER.encode(job)


def decode_job(data: bytes | bytearray | memoryview) -> Job:
    """Raises ``msgspec.DecodeError`` for bytes that are not a job's record."""
    return _JOB.decode(data)


def encode_run(run: Run) -> bytes:
    return _ENCODER.encode(run)


def decode_run(data: bytes | bytearray | memoryview) -> Run:
    """Raises ``msgspec.DecodeError`` for bytes that are not a run's record."""
    return _RUN.decode(data)


def job_columns(job: Job, *, held: bool = False) -> dict[str, Any]:
    """The indexed columns of ``job``'s row, keyed as :data:`JOB_COLUMNS`. ``wake`` is when the
    engine must look at the job again (:func:`scheduler.store.wake_time`); ``held`` is set by
    the engine while overlap or coalescing keeps the job back until its runs end."""
    return {
        "status": job.status.value,
        "priority": job.priority.rank,
        "wake": wake_time(job),
        "held": held,
        "task": job.task,
        "workflow_id": job.workflow_id,
        "unique_key": job.unique_key,
        "name": job.name,
        "source": job.source.value,
        "completed": job.completed,
    }
