"""Durability through the real daemon: kill -9 during bursts of creates, damaged state, and jobs
that were running when the process died. The shared harness is in harness.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.daemon_proc import DaemonProcess, Daemons, run_cli
from tests.persistence.harness import (
    CLIENTS,
    NOOP_TASK,
    Burst,
    all_jobs,
    by_marker,
    create_jobs,
    files_of,
    job_status,
)
from tests.polling import until

pytestmark = pytest.mark.integration

ROUNDS = 20
SEED = 20260404


@dataclass
class Verdict:
    """What a restart showed: acknowledged creates missing, and jobs nobody sent."""

    lost: set[str]
    phantom: set[str]
    acked: int  # acknowledged creates so far, over all rounds
    cut: int = 0  # creates of this round sent but never answered: the kill landed mid-burst


async def verify(daemon: DaemonProcess, bursts: list[Burst], *, everything: bool) -> Verdict:
    """Compare the restarted daemon with what the bursts sent and it acknowledged: the last
    burst's jobs one by one, the earlier ones by count (or one by one with ``everything``)."""
    acked = {m: job_id for burst in bursts for m, job_id in burst.acked.items()}
    sent = set().union(*(burst.sent for burst in bursts))
    if everything:
        found = by_marker(await all_jobs(daemon))
    else:
        found = by_marker(await all_jobs(daemon, f"&workflowId={bursts[-1].label}"))
        acked = bursts[-1].acked
    lost = {m for m, job_id in acked.items() if found.get(m) != job_id}
    phantom = set(found) - sent
    _, card, _ = await daemon.request("GET", "/api/scheduler")
    counted = sum(len(burst.found) for burst in bursts[:-1]) + len(found)
    if card["totalJobs"] != counted and not everything:
        return await verify(daemon, bursts, everything=True)  # find out which
    bursts[-1].found = found.keys() & bursts[-1].sent
    return Verdict(lost=lost, phantom=phantom, acked=sum(len(b.acked) for b in bursts))


async def kill_rounds(
    daemon: DaemonProcess, *, rounds: int, seed: int, stop_at_first_loss: bool = False
) -> list[Verdict]:
    """Each round: a burst of creates, kill -9 after a seeded random delay, restart, verify
    against everything sent and acknowledged so far. Returns one verdict per round."""
    rng = random.Random(seed)
    bursts: list[Burst] = []
    verdicts: list[Verdict] = []
    await daemon.start()
    for n in range(rounds):
        burst = Burst(daemon.url, f"r{n}")
        bursts.append(burst)
        stop = asyncio.Event()
        clients = asyncio.create_task(burst.run(stop))
        await asyncio.sleep(rng.uniform(0.02, 0.25))
        await daemon.kill()
        stop.set()
        await clients
        assert not burst.refused, burst.refused
        await daemon.start()
        verdict = await verify(daemon, bursts, everything=n == rounds - 1)
        verdict.cut = len(burst.sent) - len(burst.acked)
        verdicts.append(verdict)
        if stop_at_first_loss and verdicts[-1].lost:
            break
    return verdicts


#: A test-only variant of the daemon: ``sitecustomize`` runs before ``scheduler run`` and
#: makes it acknowledge before writing (records reach the journal 200 ms after the answer).
ACK_BEFORE_WRITE = """
import asyncio
from scheduler.persistence.journal import Journal

_append = Journal.append

def _append_later(self, change):
    asyncio.get_running_loop().call_later(0.2, _append, self, change)
    return 0

async def _commit_nothing(self):
    return None

Journal.append = _append_later
Journal.commit = _commit_nothing
"""


# --- kill -9 during bursts ----------------------------------------------------------------------


@pytest.mark.timeout(120)  # 21 daemon starts: about 10 s on an idle machine
async def test_every_acknowledged_create_survives_kill_9_during_bursts_of_16_clients(
    tmp_path: Path, daemons: Daemons
) -> None:
    daemon = DaemonProcess(tmp_path, NOOP_TASK, fsync="always")
    daemons.append(daemon)
    verdicts = await kill_rounds(daemon, rounds=ROUNDS, seed=SEED)
    assert [v.lost for v in verdicts] == [set()] * ROUNDS
    assert [v.phantom for v in verdicts] == [set()] * ROUNDS
    # Not vacuous: every kill cut creates in flight, and many were acknowledged before it.
    assert all(v.cut > 0 for v in verdicts)
    assert verdicts[-1].acked > ROUNDS * CLIENTS


async def test_the_kill_harness_catches_a_daemon_that_acknowledges_before_writing(
    tmp_path: Path, daemons: Daemons
) -> None:
    patch = tmp_path / "patch"
    patch.mkdir()
    (patch / "sitecustomize.py").write_text(ACK_BEFORE_WRITE)
    daemon = DaemonProcess(tmp_path, NOOP_TASK, env={"PYTHONPATH": str(patch)}, fsync="never")
    daemons.append(daemon)
    verdicts = await kill_rounds(daemon, rounds=ROUNDS, seed=SEED, stop_at_first_loss=True)
    assert verdicts[-1].lost, "the harness did not notice lost acknowledged creates"


# --- damage ---------------------------------------------------------------------------------------


async def with_jobs(
    tmp_path: Path, daemons: Daemons, count: int
) -> tuple[DaemonProcess, dict[str, str]]:
    """A started daemon (fsync "always") holding ``count`` acknowledged jobs."""
    daemon = DaemonProcess(tmp_path, NOOP_TASK, fsync="always")
    daemons.append(daemon)
    await daemon.start()
    return daemon, await create_jobs(daemon, count)


async def assert_refused(daemon: DaemonProcess, tmp_path: Path, *expected: str) -> None:
    """``check --state`` and ``run`` both exit 65 naming the damage, and touch no file."""
    before = files_of(daemon.state)
    for args in (
        ["check", "-c", str(daemon.config), "--state", str(daemon.state)],
        ["run", "-c", str(daemon.config)],
    ):
        code, out, _ = await run_cli(*args, cwd=tmp_path)
        assert code == 65, out
        for text in expected:
            assert text in out, (args[0], out)
    assert files_of(daemon.state) == before


async def test_a_bit_flip_mid_journal_stops_check_and_run_with_65_naming_file_and_offset(
    tmp_path: Path, daemons: Daemons
) -> None:
    daemon, _ = await with_jobs(tmp_path, daemons, 5)
    await daemon.kill()
    [segment] = daemon.state.glob("journal-*.log")
    data = bytearray(segment.read_bytes())
    data[12] ^= 0x10  # inside the first record's payload; four valid records follow it
    segment.write_bytes(bytes(data))
    await assert_refused(daemon, tmp_path, f"{segment}: byte 0: checksum mismatch")


async def test_a_damaged_snapshot_without_an_older_generation_stops_check_and_run(
    tmp_path: Path, daemons: Daemons
) -> None:
    daemon, _ = await with_jobs(tmp_path, daemons, 5)
    assert await daemon.stop() == 0  # the final snapshot is the only generation
    [snapshot] = daemon.state.glob("snapshot-*.snap")
    data = bytearray(snapshot.read_bytes())
    data[-3] ^= 0x01
    snapshot.write_bytes(bytes(data))
    await assert_refused(daemon, tmp_path, f"{snapshot}: byte ", "no valid older snapshot")


async def test_check_passes_a_healthy_state_directory(tmp_path: Path, daemons: Daemons) -> None:
    daemon, _ = await with_jobs(tmp_path, daemons, 3)
    await daemon.kill()
    before = files_of(daemon.state)
    code, out, _ = await run_cli(
        "check", "-c", str(daemon.config), "--state", str(daemon.state), cwd=tmp_path
    )
    assert code == 0, out
    assert out.splitlines()[-1] == f"ok: state {daemon.state}"
    assert files_of(daemon.state) == before


async def test_a_torn_last_record_is_cut_with_a_broken_copy_and_the_daemon_starts(
    tmp_path: Path, daemons: Daemons
) -> None:
    daemon, acked = await with_jobs(tmp_path, daemons, 4)
    await daemon.kill()
    [segment] = daemon.state.glob("journal-*.log")
    whole = segment.read_bytes()
    segment.write_bytes(whole[:-7])  # as if the power failed while the last record was written

    await daemon.start()
    found = by_marker(await all_jobs(daemon))
    assert found == {m: acked[m] for m in ("j0", "j1", "j2")}
    broken = segment.with_name(segment.name + ".broken")
    assert broken.read_bytes() == whole[:-7]
    assert "torn" in daemon.output()


# --- jobs running at a crash ---------------------------------------------------------------------


class HangingHook:
    """A webhook receiver that hangs on its first request (until released) and answers 200 after."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((await request.json(), dict(request.headers)))
        if len(self.requests) == 1:
            await self.release.wait()
        return web.json_response({"ok": True})


@pytest.fixture
async def hook(aiohttp_server: AiohttpServer) -> AsyncIterator[tuple[HangingHook, str]]:
    receiver = HangingHook()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield receiver, str(server.make_url("/hook"))
    receiver.release.set()


async def runs_of(daemon: DaemonProcess, job_id: str) -> list[dict[str, Any]]:
    status, body, _ = await daemon.request("GET", f"/api/jobs/{job_id}/runs")
    assert status == 200, body
    return list(reversed(body["items"]))  # oldest first


def hook_daemon(tmp_path: Path, url: str) -> DaemonProcess:
    return DaemonProcess(
        tmp_path, f'\n[tasks.hook]\nkind = "http"\nurl = "{url}"\n', fsync="always"
    )


async def test_a_webhook_in_flight_at_a_crash_is_rerun_once_with_the_same_idempotency_key(
    tmp_path: Path, daemons: Daemons, hook: tuple[HangingHook, str]
) -> None:
    receiver, url = hook
    daemon = hook_daemon(tmp_path, url)
    daemons.append(daemon)
    await daemon.start()
    _, job, _ = await daemon.request("POST", "/api/jobs", json={"task": "hook"})
    await until(lambda: receiver.requests, "the first request")
    await daemon.kill()

    await daemon.start()
    done = await until(lambda: _finished(daemon, job["id"]), "the rerun to finish")
    assert done["status"] == "completed"
    assert len(receiver.requests) == 2
    (first, first_headers), (second, second_headers) = receiver.requests
    assert first_headers["Idempotency-Key"] == second_headers["Idempotency-Key"]
    assert first["attempt"] == second["attempt"] == 1
    outcomes = [(run["outcome"], run["fireId"]) for run in await runs_of(daemon, job["id"])]
    key = first_headers["Idempotency-Key"]
    assert outcomes == [("interrupted", key), ("success", key)]


async def test_under_on_crash_abandon_a_run_in_flight_is_recorded_interrupted_and_not_rerun(
    tmp_path: Path, daemons: Daemons, hook: tuple[HangingHook, str]
) -> None:
    receiver, url = hook
    daemon = hook_daemon(tmp_path, url)
    daemons.append(daemon)
    await daemon.start()
    _, job, _ = await daemon.request(
        "POST", "/api/jobs", json={"task": "hook", "onCrash": "abandon"}
    )
    await until(lambda: receiver.requests, "the first request")
    await daemon.kill()

    await daemon.start()
    after = await job_status(daemon, job["id"])
    assert after["status"] == "failed"
    assert "interrupted" in after["error"]
    assert [run["outcome"] for run in await runs_of(daemon, job["id"])] == ["interrupted"]
    await asyncio.sleep(0.3)  # a rerun would have been sent at once
    assert len(receiver.requests) == 1


async def _finished(daemon: DaemonProcess, job_id: str) -> dict[str, Any] | None:
    job = await job_status(daemon, job_id)
    return job if job["status"] in ("completed", "failed", "cancelled") else None


def children(parent: int, command: str) -> list[int]:
    """Live (not zombie) processes of ``parent`` whose command name is ``command``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
            if comm == command and int(ppid) == parent and state not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in ("Z", "X")


def fire_id_of(pid: int) -> str:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    [value] = [v for v in environ if v.startswith(b"SCHEDULER_FIRE_ID=")]
    return value.split(b"=", 1)[1].decode()


@pytest.fixture
def sleepers() -> Iterator[list[int]]:
    """Pids of the test's own ``sleep`` commands; any left running at the end is killed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def slow_daemon(tmp_path: Path) -> DaemonProcess:
    daemon = DaemonProcess(
        tmp_path, '\n[tasks.slow]\nkind = "command"\nargv = ["sleep", "30"]\n', fsync="always"
    )
    daemon.configure("scheduler", 'shutdown_grace = "100ms"')
    return daemon


async def running_sleeper(daemon: DaemonProcess, sleepers: list[int]) -> int:
    assert daemon.proc is not None
    parent = daemon.proc.pid
    [pid] = await until(lambda: children(parent, "sleep"), "the command to start")
    assert isinstance(pid, int)
    sleepers.append(pid)
    # The pid is journalled right after the spawn; one request round trip covers that.
    await daemon.request("GET", "/healthz")
    return pid


async def test_a_command_left_running_by_a_crash_is_stopped_before_its_job_runs_again(
    tmp_path: Path, daemons: Daemons, sleepers: list[int]
) -> None:
    daemon = slow_daemon(tmp_path)
    daemons.append(daemon)
    await daemon.start()
    _, job, _ = await daemon.request("POST", "/api/jobs", json={"task": "slow"})
    old = await running_sleeper(daemon, sleepers)
    fire = fire_id_of(old)
    await daemon.kill()
    assert alive(old)  # kill -9 leaves the command's process group running

    await daemon.start()
    new = await running_sleeper(daemon, sleepers)
    assert not alive(old)
    assert fire_id_of(new) == fire
    assert (await job_status(daemon, job["id"]))["status"] == "running"
    assert [run["outcome"] for run in await runs_of(daemon, job["id"])] == ["interrupted"]


async def test_a_job_interrupted_by_three_crashes_in_a_row_is_quarantined(
    tmp_path: Path, daemons: Daemons, sleepers: list[int]
) -> None:
    daemon = slow_daemon(tmp_path)
    daemons.append(daemon)
    await daemon.start()
    _, job, _ = await daemon.request("POST", "/api/jobs", json={"task": "slow"})
    for _ in range(3):
        await running_sleeper(daemon, sleepers)
        await daemon.kill()
        await daemon.start()
    after = await job_status(daemon, job["id"])
    assert after["status"] == "failed"
    assert "quarantined" in after["error"]
    assert [run["outcome"] for run in await runs_of(daemon, job["id"])] == ["interrupted"] * 3
    assert not any(alive(pid) for pid in sleepers)
