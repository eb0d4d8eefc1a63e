"""Sample jobs and runs of every kind, and a single box's state directory holding them, for the
cluster tests (import, codec) and for anyone who needs a varied job set in the tables."""

from __future__ import annotations

from pathlib import Path

from scheduler.model import (
    AddRun,
    Change,
    DeleteJob,
    DstFold,
    DstGap,
    DstPolicy,
    Frequency,
    Job,
    JobStatus,
    MisfirePolicy,
    OnCrash,
    Outcome,
    Overlap,
    Policy,
    Priority,
    Progress,
    PutJob,
    Repeat,
    RetryPolicy,
    Run,
    Schedule,
    SetMeta,
    Source,
)
from scheduler.persistence.codec import RecordCodec
from scheduler.persistence.files import segment_name
from scheduler.persistence.snapshot import SnapshotState, write_snapshot

BASE = 1_700_000_000.0
_MS = 1 << 22  # one millisecond of ids


def job_id(n: int) -> int:
    """A single box's id of the ``n``-th sample job (milliseconds after BASE, sequence 0)."""
    return (int(BASE * 1000) + n) * _MS


def every_kind_of_job() -> list[Job]:
    """One job per schedule type, status, source and priority, with every optional field."""
    retry = RetryPolicy(max=5, delay=1.5, max_delay=30.0, jitter=0.0)
    policy = Policy(
        retry=retry,
        timeout=90.0,
        misfire=MisfirePolicy(grace=600.0),
        overlap=Overlap.BUFFER_ONE,
        on_crash=OnCrash.ABANDON,
    )
    weekly = Repeat(freq=Frequency.WEEKLY, weekdays=("mon", "fri"), time="09:30", count=10)
    return [
        Job(id=job_id(1), task="hello", timezone="UTC", payload={"a": [1, 2.5, None, "x"]}),
        Job(id=job_id(2), task="hello", timezone="Asia/Seoul", schedule=Schedule(delay=900.0),
            scheduled=BASE + 900, priority=Priority.HIGH, unique_key="k-2"),
        Job(id=job_id(3), task="report", timezone="Europe/Berlin",
            schedule=Schedule(at="2026-03-29T02:30", dst=DstPolicy(gap=DstGap.SKIP)),
            scheduled=BASE + 86400, workflow_id="wf-3", workflow_name="Report"),
        Job(id=job_id(4), task="hello", timezone="UTC", schedule=Schedule(every=60.0),
            scheduled=BASE + 60, status=JobStatus.RUNNING, fire=BASE, attempt=1, runs=7,
            executed=BASE, pid=4242, pid_started=99, policy=policy,
            progress=Progress(percent=40.0, message="half")),
        Job(id=job_id(5), task="hello", timezone="America/New_York",
            schedule=Schedule(cron="0 9 * * 1-5", dst=DstPolicy(fold=DstFold.BOTH)),
            scheduled=BASE + 3600, name="weekday", source=Source.CONFIG, priority=Priority.LOW),
        Job(id=job_id(6), task="hello", timezone="UTC", schedule=Schedule(repeat=weekly),
            status=JobStatus.PAUSED, paused_until=BASE + 7200, pause_reason="maintenance",
            scheduled=BASE + 100, source=Source.LIBRARY, name="lib-weekly"),
        Job(id=job_id(7), task="hello", timezone="UTC",
            schedule=Schedule(rrule="FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=18;BYMINUTE=0"),
            status=JobStatus.PAUSED, scheduled=BASE + 500, priority=Priority.CRITICAL),
        Job(id=job_id(8), task="hello", timezone="UTC", status=JobStatus.COMPLETED,
            completed=BASE + 5, executed=BASE + 1, runs=1, result={"ok": True},
            unique_key="k-2", workflow_id="wf-3"),  # finished: its keys are free again
        Job(id=job_id(9), task="hello", timezone="UTC", status=JobStatus.FAILED,
            completed=BASE + 6, error="exit 2", attempt=4, interrupted=2),
        Job(id=job_id(10), task="hello", timezone="UTC", status=JobStatus.CANCELLED,
            completed=BASE + 7, schedule=Schedule(every=30.0, start="2026-01-01T00:00",
                                                  end="2026-12-31T00:00")),
    ]  # fmt: skip


def runs_of(job: Job, count: int) -> list[Run]:
    """``count`` runs of ``job``, oldest first, of varied outcomes."""
    outcomes = list(Outcome)
    return [
        Run(
            job_id=job.id,
            fire=BASE + n,
            attempt=1 + n % 3,
            outcome=outcomes[n % len(outcomes)],
            started=BASE + n + 0.01,
            ended=BASE + n + 0.5,
            lateness=0.01,
            error="boom" if n % 2 else None,
            result={"n": n},
            reason="why" if n % 3 == 0 else None,
            count=1 + n % 2,
        )
        for n in range(count)
    ]


async def write_single_box_state(
    directory: Path, jobs: list[Job], runs: dict[int, list[Run]], *, paused: bool = False
) -> None:
    """A single box's state: the first half of the jobs (and their runs) in a snapshot, the
    rest in the journal after it, plus a deleted job whose runs must not come along."""
    half = len(jobs) // 2
    snapped = {job.id: tuple(runs.get(job.id, ())) for job in jobs[:half]}
    await write_snapshot(
        directory,
        SnapshotState(
            jobs=jobs[:half], runs=snapped, meta=SetMeta(paused=False), last_seq=1, next_id=0
        ),
    )
    gone = Job(id=job_id(99), task="hello", timezone="UTC")
    changes: list[Change] = [PutJob(gone), AddRun(runs_of(gone, 1)[0]), DeleteJob(gone.id)]
    for job in jobs[half:]:
        changes.append(PutJob(job))
        changes.extend(AddRun(run) for run in runs.get(job.id, ()))
    changes.append(SetMeta(paused=paused))
    codec = RecordCodec()
    data = b"".join(codec.encode(2 + i, change) for i, change in enumerate(changes))
    (directory / segment_name(2)).write_bytes(data)
