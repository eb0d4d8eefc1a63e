"""The journal: sequence numbers, group commit, fsync modes, full disks and fatal fsync errors."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from scheduler.errors import PersistenceError, StorageFull
from scheduler.model import PutJob, SetMeta
from scheduler.persistence.journal import FsyncMode, Journal
from scheduler.persistence.recovery import load_state
from tests import ROOT
from tests.fakes import job


async def open_journal(
    directory: Path,
    fsync: FsyncMode = FsyncMode.ALWAYS,
    *,
    start_seq: int = 0,
    on_fatal: Callable[[BaseException], None] | None = None,
    batch_interval: float = 0.01,
) -> Journal:
    return await Journal.open(
        directory,
        fsync=fsync,
        batch_interval=batch_interval,
        start_seq=start_seq,
        on_fatal=on_fatal or (lambda exc: None),
    )


def segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("journal-*.log"))


class FsyncCounter:
    """Wraps os.fsync: counts calls, optionally blocks each one until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, gated: bool = False) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        real = os.fsync

        def fsync(fd: int) -> None:
            assert self.gate.wait(5)
            self.calls.append(fd)
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)


async def test_records_are_numbered_on_from_the_recovered_position(tmp_path: Path) -> None:
    j = await open_journal(tmp_path, start_seq=41)
    assert [j.append(SetMeta(paused=True)) for _ in range(3)] == [42, 43, 44]
    assert j.last_seq == 44
    await j.commit()
    await j.close()
    assert segments(tmp_path) == ["journal-00000000000000000042.log"]


async def test_state_files_are_private_in_a_private_directory(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "state"
    j = await open_journal(directory)
    j.append(SetMeta(paused=True))
    await j.close()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    [segment] = directory.iterdir()
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600


async def test_a_state_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_text("not a directory")
    with pytest.raises(PersistenceError, match="state directory is not a directory"):
        await open_journal(path)


async def test_100_concurrent_commits_share_a_few_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = await open_journal(tmp_path)
    counter = FsyncCounter(monkeypatch)

    async def create(i: int) -> int:
        seq = j.append(PutJob(job(i)))
        await j.commit()
        assert j.synced_seq >= seq
        return seq

    seqs = await asyncio.gather(*(create(i) for i in range(1, 101)))
    assert sorted(seqs) == list(range(1, 101))
    # The first commit's fsync covers record 1 only; everything appended while it ran shares
    # the second (the directory entry of the new segment is fsynced once, with the first).
    assert len(counter.calls) <= 3
    await j.close()


async def test_a_commit_waits_for_an_fsync_that_started_after_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = await open_journal(tmp_path)
    counter = FsyncCounter(monkeypatch, gated=True)
    j.append(SetMeta(paused=True))
    first = asyncio.ensure_future(j.commit())
    await asyncio.sleep(0)  # the first fsync pass is now in flight, covering record 1
    j.append(SetMeta(paused=False))
    second = asyncio.ensure_future(j.commit())
    await asyncio.sleep(0.01)
    assert not first.done()
    assert not second.done()
    counter.gate.set()
    await first
    await second
    assert j.synced_seq == 2
    assert len(counter.calls) >= 3  # segment + directory, then segment again for record 2
    await j.close()


async def test_a_cancelled_commit_does_not_strand_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = await open_journal(tmp_path)
    counter = FsyncCounter(monkeypatch, gated=True)
    j.append(SetMeta(paused=True))
    leader = asyncio.ensure_future(j.commit())
    follower = asyncio.ensure_future(j.commit())
    await asyncio.sleep(0)
    leader.cancel()
    counter.gate.set()
    await follower
    assert j.synced_seq == 1
    await j.close()


async def test_an_fsync_error_is_fatal_and_never_retried_as_if_it_worked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fatal: list[BaseException] = []
    j = await open_journal(tmp_path, on_fatal=fatal.append)

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    j.append(SetMeta(paused=True))
    with pytest.raises(PersistenceError, match="fsync failed"):
        await j.commit()
    assert len(fatal) == 1
    assert isinstance(fatal[0], OSError)
    monkeypatch.undo()  # even with a working disk again, nothing is acknowledged any more
    with pytest.raises(PersistenceError, match="stopped after an error"):
        await j.commit()
    with pytest.raises(PersistenceError, match="stopped after an error"):
        j.append(SetMeta(paused=False))
    assert j.synced_seq == 0
    await j.close()
    assert len(fatal) == 1


async def test_batch_mode_acknowledges_at_once_and_fsyncs_within_the_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = await open_journal(tmp_path, FsyncMode.BATCH, batch_interval=0.005)
    counter = FsyncCounter(monkeypatch)
    for _ in range(50):
        j.append(SetMeta(paused=True))
        await j.commit()
    assert j.synced_seq < 50
    for _ in range(100):
        if j.synced_seq == 50:
            break
        await asyncio.sleep(0.005)
    assert j.synced_seq == 50
    assert 1 <= len(counter.calls) <= 4
    await j.close()


async def test_an_fsync_error_in_batch_mode_is_fatal_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fatal = asyncio.Event()
    j = await open_journal(
        tmp_path, FsyncMode.BATCH, batch_interval=0.001, on_fatal=lambda exc: fatal.set()
    )

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    j.append(SetMeta(paused=True))
    await asyncio.wait_for(fatal.wait(), 2)
    with pytest.raises(PersistenceError):
        await j.commit()
    await j.close()


async def test_never_mode_does_not_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = await open_journal(tmp_path, FsyncMode.NEVER)
    counter = FsyncCounter(monkeypatch)
    j.append(SetMeta(paused=True))
    await j.commit()
    j.rotate()
    j.append(SetMeta(paused=False))
    await j.close()
    assert counter.calls == []
    assert load_state(tmp_path).last_seq == 2


@pytest.mark.parametrize(
    "failure",
    [OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EFBIG, "File too large"), 7],
    ids=["ENOSPC", "EFBIG", "short-write"],
)
async def test_a_full_disk_fails_the_append_and_leaves_no_partial_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: OSError | int
) -> None:
    j = await open_journal(tmp_path)
    j.append(PutJob(job(1)))
    segment = tmp_path / "journal-00000000000000000001.log"
    size = segment.stat().st_size
    real_write = os.write

    def full_write(fd: int, data: bytes) -> int:
        if isinstance(failure, int):
            return real_write(fd, data[:failure])  # a short write: part of the record landed
        raise failure

    monkeypatch.setattr(os, "write", full_write)  # undone before the next await
    with pytest.raises(StorageFull):
        j.append(PutJob(job(2)))
    monkeypatch.undo()
    assert segment.stat().st_size == size
    assert j.last_seq == 1
    assert j.append(PutJob(job(3))) == 2  # space is back: no restart needed
    await j.commit()
    await j.close()
    assert sorted(load_state(tmp_path).jobs) == [1, 3]


FULL_DISK_CHILD = """
import asyncio, json, os, resource, signal, sys
from pathlib import Path
from scheduler.errors import StorageFull
from scheduler.model import Job, PutJob
from scheduler.persistence.journal import FsyncMode, Journal

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as the daemon does: EFBIG instead of death

async def main():
    directory = Path(sys.argv[1])
    j = await Journal.open(directory, fsync=FsyncMode.ALWAYS, batch_interval=0.01,
                           start_seq=0, on_fatal=print)
    [segment] = directory.glob("journal-*.log")
    payload = "x" * 100
    j.append(PutJob(Job(id=1, task="t", timezone="UTC", payload=payload)))
    await j.commit()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (segment.stat().st_size + 3000, hard))
    ok, job_id = [1], 1
    while True:
        job_id += 1
        before = segment.stat().st_size
        try:
            j.append(PutJob(Job(id=job_id, task="t", timezone="UTC", payload=payload)))
        except StorageFull as exc:
            error = str(exc)
            break
        await j.commit()
        ok.append(job_id)
    after = segment.stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    job_id += 1
    j.append(PutJob(Job(id=job_id, task="t", timezone="UTC", payload=payload)))
    await j.commit()
    ok.append(job_id)
    await j.close()
    print(json.dumps({"ok": ok, "before": before, "after": after, "error": error}))

asyncio.run(main())
"""


@pytest.mark.integration
def test_a_file_size_limit_is_storage_full_and_writes_resume_once_it_is_lifted(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["after"] == report["before"]  # the partial record was truncated away
    assert "journal" in report["error"]
    assert len(report["ok"]) >= 4
    assert sorted(load_state(tmp_path).jobs) == report["ok"]


async def test_rotation_starts_a_segment_and_still_syncs_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = await open_journal(tmp_path)
    counter = FsyncCounter(monkeypatch)
    j.append(SetMeta(paused=True))
    j.rotate()
    j.rotate()  # nothing appended since: no empty segment is made
    j.append(SetMeta(paused=False))
    await j.commit()
    assert segments(tmp_path) == [
        "journal-00000000000000000001.log",
        "journal-00000000000000000002.log",
    ]
    assert len(set(counter.calls)) == 3  # both segments and the directory
    await j.close()
    assert load_state(tmp_path).meta == SetMeta(paused=False)


async def test_an_empty_segment_left_by_a_crash_is_reused(tmp_path: Path) -> None:
    j = await open_journal(tmp_path, start_seq=5)
    await j.close()
    j = await open_journal(tmp_path, start_seq=5)
    assert j.append(SetMeta(paused=True)) == 6
    await j.close()
    assert segments(tmp_path) == ["journal-00000000000000000006.log"]


async def test_a_segment_recovery_did_not_read_is_never_appended_to(tmp_path: Path) -> None:
    j = await open_journal(tmp_path, start_seq=5)
    j.append(SetMeta(paused=True))
    await j.close()
    with pytest.raises(PersistenceError, match="already holds"):
        await open_journal(tmp_path, start_seq=5)


async def test_close_flushes_and_later_appends_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = await open_journal(tmp_path, FsyncMode.BATCH, batch_interval=60)
    counter = FsyncCounter(monkeypatch)
    j.append(SetMeta(paused=True))
    await j.close()
    assert counter.calls
    with pytest.raises(PersistenceError, match="closed"):
        j.append(SetMeta(paused=False))


@pytest.mark.parametrize(
    "failure",
    [OSError(errno.ENOSPC, "No space left on device"), 7],
    ids=["ENOSPC", "short-write"],
)
async def test_a_full_disk_error_names_no_path_and_the_log_names_the_directory_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: OSError | int,
) -> None:
    """The StorageFull message is what an HTTP client gets in its 507: where the state lives
    is for the operator's log, which says it once per full-disk episode, not per request."""
    directory = tmp_path / "secret-place" / "state"
    j = await open_journal(directory)
    real_write = os.write

    def full_write(fd: int, data: bytes) -> int:
        if isinstance(failure, int):
            return real_write(fd, data[:failure])
        raise failure

    caplog.set_level("INFO", logger="scheduler.persistence.journal")
    monkeypatch.setattr(os, "write", full_write)
    errors = []
    for n in range(3):
        with pytest.raises(StorageFull) as refused:
            j.append(PutJob(job(n)))
        errors.append(refused.value)
    monkeypatch.undo()
    for error in errors:
        assert "secret-place" not in str(error)
        assert "secret-place" not in error.message
        assert "disk is full" in error.message
        assert "journal" in error.message
    full = [r for r in caplog.records if "disk is full" in r.getMessage()]
    assert len(full) == 1
    assert str(directory) in full[0].getMessage()
    assert full[0].levelname == "WARNING"
    j.append(PutJob(job(9)))
    again = [r for r in caplog.records if "writes work again" in r.getMessage()]
    assert len(again) == 1
    assert str(directory) in again[0].getMessage()
    await j.close()


async def test_a_507_answer_names_no_path_of_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end in process: the API's 507 for a full disk carries the generic message."""
    from tests.api.harness import journalled_api

    state_dir = tmp_path / "private-customer-dir"
    async with journalled_api(state_dir, FsyncMode.NEVER) as (sched, client):
        assert sched.persistence.journal is not None
        journal_fd = sched.persistence.journal._fd
        real_write = os.write

        def full_write(fd: int, data: bytes) -> int:
            if fd == journal_fd:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        try:
            monkeypatch.setattr(os, "write", full_write)
            resp = await client.post("/api/jobs", json={"task": "t", "schedule": {"delay": "1h"}})
            body = await resp.json()
        finally:
            monkeypatch.undo()
        assert resp.status == 507, body
        assert body["error"]["code"] == "storage_full"
        assert "private-customer-dir" not in json.dumps(body)
        assert str(tmp_path) not in json.dumps(body)


# --- group commit (unit level: the fault that made concurrent creates crawl) ---------------------


@pytest.mark.timeout(10)
async def test_a_commit_arriving_between_an_fsync_and_its_outcome_waits_instead_of_spinning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that starts after a worker's fsync finished but before the loop applied its
    outcome must wait for it; awaiting the worker's (already done) future would never yield,
    and the loop would spin in that commit forever."""
    journal = await Journal.open(tmp_path, fsync=FsyncMode.ALWAYS, start_seq=0, on_fatal=print)
    loop = asyncio.get_running_loop()
    passes: list[asyncio.Future[None]] = []

    def run_in_executor(executor: object, func: Callable[..., None], *args: object) -> object:
        func(*args)  # the fsync pass itself; its completion is reported when the test says
        passes.append(loop.create_future())
        return passes[-1]

    monkeypatch.setattr(loop, "run_in_executor", run_in_executor)
    journal.append(SetMeta(paused=True))
    first = asyncio.ensure_future(journal.commit())
    await asyncio.sleep(0)
    assert len(passes) == 1
    second = asyncio.ensure_future(journal.commit())  # runs before the outcome is applied
    passes[0].set_result(None)
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert journal.synced_seq == 1
    monkeypatch.undo()
    await journal.close()
