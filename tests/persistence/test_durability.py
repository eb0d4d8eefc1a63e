"""Durability through the real daemon: kill -9 during bursts of creates, damaged state, and jobs
that were running when the process died.

The harness here (``Burst``, ``all_jobs``, ``configure``, ``reap``, ``until``...) is shared with
test_crash_points.py, test_full_disk.py and test_state_machine.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from scheduler.model import SetMeta
from scheduler.persistence.journal import FsyncMode, Journal
from tests.daemon_proc import DaemonProcess

pytestmark = pytest.mark.integration

CLIENTS = 16
ROUNDS = 20
SEED = 20260404
#: Jobs that never come due during a test: what is stored for them does not change by itself.
LATER = {"delay": "1d"}
NOOP_TASK = """
[tasks.noop]
kind = "command"
argv = ["true"]
"""


# --- the harness -------------------------------------------------------------------------------


def configure(daemon: DaemonProcess, section: str, *lines: str) -> None:
    """Add ``lines`` to a section DaemonProcess already wrote (TOML cannot reopen a table)."""
    text = daemon.config.read_text()
    header = f"[{section}]\n"
    assert header in text, section
    daemon.config.write_text(text.replace(header, header + "".join(f"{x}\n" for x in lines), 1))


def reap(started: list[DaemonProcess]) -> None:
    """Kill whatever daemon a test left running: none is ever left behind."""
    for daemon in started:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Daemons a test starts (see ``reap``)."""
    started: list[DaemonProcess] = []
    yield started
    reap(started)


@dataclass
class Burst:
    """``CLIENTS`` clients creating jobs as fast as the daemon answers, until it dies or stops.

    Every create carries a unique marker (payload and ``uniqueKey``) and the burst's label as
    its ``workflowId``, so one listing finds a burst's jobs. ``sent`` holds the marker of every
    create put on the wire (answered or not), ``acked`` the id answered with 201 by marker.
    Any other answer is recorded in ``refused``: a crash may only cut connections.
    """

    url: str
    label: str
    sent: set[str] = field(default_factory=set)
    acked: dict[str, str] = field(default_factory=dict)
    refused: list[tuple[int, Any]] = field(default_factory=list)
    found: set[str] = field(default_factory=set)  # markers present after the restart

    async def run(self, stop: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(limit=CLIENTS)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            await asyncio.gather(*(self._client(http, n, stop) for n in range(CLIENTS)))

    async def _client(self, http: aiohttp.ClientSession, client: int, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            marker = f"{self.label}-{client}-{n}"
            n += 1
            self.sent.add(marker)
            body = {"task": "noop", "schedule": LATER, "payload": {"m": marker},
                    "workflowId": self.label, "uniqueKey": marker}  # fmt: skip
            try:
                async with http.post(self.url + "/api/jobs", json=body) as resp:
                    answer = await resp.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError):
                return  # the daemon died: this create may or may not have been written
            if resp.status != 201:
                self.refused.append((resp.status, answer))
                return
            self.acked[marker] = answer["id"]


async def all_jobs(daemon: DaemonProcess, query: str = "") -> dict[str, dict[str, Any]]:
    """Every job the daemon holds (matching ``query``), by id, read page by page."""
    jobs: dict[str, dict[str, Any]] = {}
    page = 1
    while True:
        status, body, _ = await daemon.request("GET", f"/api/jobs?limit=500&page={page}{query}")
        assert status == 200, body
        jobs.update((job["id"], job) for job in body["items"])
        if page * 500 >= body["total"]:
            assert len(jobs) == body["total"]
            return jobs
        page += 1


def by_marker(jobs: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {job["payload"]["m"]: job_id for job_id, job in jobs.items()}


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
    tmp_path: Path, daemons: list[DaemonProcess]
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
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    patch = tmp_path / "patch"
    patch.mkdir()
    (patch / "sitecustomize.py").write_text(ACK_BEFORE_WRITE)
    daemon = DaemonProcess(tmp_path, NOOP_TASK, env={"PYTHONPATH": str(patch)}, fsync="never")
    daemons.append(daemon)
    verdicts = await kill_rounds(daemon, rounds=ROUNDS, seed=SEED, stop_at_first_loss=True)
    assert verdicts[-1].lost, "the harness did not notice lost acknowledged creates"


# --- damage ---------------------------------------------------------------------------------------


async def run_cli(*args: str, cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scheduler", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def files_of(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file's bytes, mtime and mode: proof that a refused start touched nothing."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
        for p in sorted(directory.iterdir())
    }


async def create_jobs(daemon: DaemonProcess, n: int, label: str = "j") -> dict[str, str]:
    acked = {}
    for i in range(n):
        status, job, _ = await daemon.request(
            "POST",
            "/api/jobs",
            json={"task": "noop", "schedule": LATER, "payload": {"m": f"{label}{i}"}},
        )
        assert status == 201, job
        acked[f"{label}{i}"] = job["id"]
    return acked


async def with_jobs(
    tmp_path: Path, daemons: list[DaemonProcess], count: int
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
        code, out = await run_cli(*args, cwd=tmp_path)
        assert code == 65, out
        for text in expected:
            assert text in out, (args[0], out)
    assert files_of(daemon.state) == before


async def test_a_bit_flip_mid_journal_stops_check_and_run_with_65_naming_file_and_offset(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    daemon, _ = await with_jobs(tmp_path, daemons, 5)
    await daemon.kill()
    [segment] = daemon.state.glob("journal-*.log")
    data = bytearray(segment.read_bytes())
    data[12] ^= 0x10  # inside the first record's payload; four valid records follow it
    segment.write_bytes(bytes(data))
    await assert_refused(daemon, tmp_path, f"{segment}: byte 0: checksum mismatch")


async def test_a_damaged_snapshot_without_an_older_generation_stops_check_and_run(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    daemon, _ = await with_jobs(tmp_path, daemons, 5)
    assert await daemon.stop() == 0  # the final snapshot is the only generation
    [snapshot] = daemon.state.glob("snapshot-*.snap")
    data = bytearray(snapshot.read_bytes())
    data[-3] ^= 0x01
    snapshot.write_bytes(bytes(data))
    await assert_refused(daemon, tmp_path, f"{snapshot}: byte ", "no valid older snapshot")


async def test_check_passes_a_healthy_state_directory(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    daemon, _ = await with_jobs(tmp_path, daemons, 3)
    await daemon.kill()
    before = files_of(daemon.state)
    code, out = await run_cli(
        "check", "-c", str(daemon.config), "--state", str(daemon.state), cwd=tmp_path
    )
    assert code == 0, out
    assert out.splitlines()[-1] == f"ok: state {daemon.state}"
    assert files_of(daemon.state) == before


async def test_a_torn_last_record_is_cut_with_a_broken_copy_and_the_daemon_starts(
    tmp_path: Path, daemons: list[DaemonProcess]
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


async def until(check: Callable[[], Any], what: str, within: float = 10.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def job_status(daemon: DaemonProcess, job_id: str) -> dict[str, Any]:
    status, job, _ = await daemon.request("GET", f"/api/jobs/{job_id}")
    assert status == 200, job
    return dict(job)


async def runs_of(daemon: DaemonProcess, job_id: str) -> list[dict[str, Any]]:
    status, body, _ = await daemon.request("GET", f"/api/jobs/{job_id}/runs")
    assert status == 200, body
    return list(reversed(body["items"]))  # oldest first


def hook_daemon(tmp_path: Path, url: str) -> DaemonProcess:
    return DaemonProcess(
        tmp_path, f'\n[tasks.hook]\nkind = "http"\nurl = "{url}"\n', fsync="always"
    )


async def test_a_webhook_in_flight_at_a_crash_is_rerun_once_with_the_same_idempotency_key(
    tmp_path: Path, daemons: list[DaemonProcess], hook: tuple[HangingHook, str]
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
    tmp_path: Path, daemons: list[DaemonProcess], hook: tuple[HangingHook, str]
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
    configure(daemon, "scheduler", 'shutdown_grace = "100ms"')
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
    tmp_path: Path, daemons: list[DaemonProcess], sleepers: list[int]
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
    tmp_path: Path, daemons: list[DaemonProcess], sleepers: list[int]
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
