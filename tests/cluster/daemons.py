"""Real cluster nodes for the fault and guarantee tests: daemons sharing one schema, a receiver
their webhooks post to, and the database read directly to see what they recorded.

- :class:`Receiver`: an aiohttp server in the test process on a free loopback port. Every
  request is a :class:`Hit` (its ``Idempotency-Key``, the fire id, and when it arrived); ``/hook``
  answers at once, ``/held`` only once :meth:`Receiver.release` is called, which keeps a run in
  flight for as long as a test needs.
- :class:`Nodes`: daemons (``tests/daemon_proc.py``) on one :class:`~tests.cluster.conftest.
  ClusterDb` schema, each with its own ``node_id`` and port, the tasks ``hook``, ``held``,
  ``once`` (webhooks to the receiver's paths of those names) and ``sleeper`` and ``napper``
  (commands that record their pid and sleep, long and short), started together, killed
  (SIGKILL), paused (SIGSTOP) and resumed. :meth:`Nodes.close` resumes every paused node so
  that the ``daemons`` fixture can stop it.
- :func:`rows`, :func:`runs`, :func:`inflight`: the tables, read over a connection of the test's
  own, so a check never depends on a node's replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from scheduler.cluster.codec import decode_run
from scheduler.engine.outcomes import QUARANTINE_AFTER
from scheduler.errors import Unavailable
from scheduler.ids import encode
from scheduler.model import Run, fire_id
from tests.cluster.conftest import ClusterDb
from tests.daemon_proc import DaemonProcess, Daemons, free_port

#: How long a held request waits at most (a test that forgets to release must still end).
HOLD_LIMIT = 60.0
#: The command task's script: record the fire id and pid, then sleep (``exec``: the pid is the
#: sleep's own, so a test can see whether the node stopped it).
SLEEPER = 'echo "$SCHEDULER_FIRE_ID $$" >> "$1"; exec sleep "$2"'
#: Seconds the ``sleeper`` task sleeps (longer than any test) and the ``napper`` task sleeps.
SLEEPER_LONG = 30.0
NAPPER = 3.0


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the receiver got."""

    key: str  # Idempotency-Key: the fire id
    path: str
    at: float  # time.time() on arrival


@dataclass
class Receiver:
    """The webhooks' destination (see the module docstring)."""

    port: int = field(default_factory=free_port)
    hits: list[Hit] = field(default_factory=list)
    _open: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._open.set()
        app = web.Application()
        app.router.add_post("/{name}", self._hit)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        self._open.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def hold(self) -> None:
        """From now on, ``/held`` requests wait for :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def _hit(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        key = request.headers.get("Idempotency-Key", "")
        first_of_job = not self.of_job(key.partition(":")[0])
        self.hits.append(Hit(key, name, time.time()))
        await request.read()
        if name == "held" or (name == "once" and first_of_job):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._open.wait(), HOLD_LIMIT)
        return web.json_response({"ok": True})

    def keys(self, path: str | None = None) -> Counter[str]:
        """Requests per fire id (of ``path`` only, when given)."""
        return Counter(hit.key for hit in self.hits if path is None or hit.path == path)

    def of_job(self, job_id: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.key.startswith(job_id + ":")]


class Nodes:
    """The cluster's daemons (see the module docstring)."""

    def __init__(
        self,
        daemons: Daemons,
        cluster: ClusterDb,
        root: Path,
        receiver: Receiver,
        *,
        lease: float = 2.0,
        scheduler: str = "",
        extra: str = "",
    ) -> None:
        self.daemons = daemons
        self.cluster = cluster
        self.root = root
        self.receiver = receiver
        self.lease = lease
        self.scheduler = scheduler
        self.extra = extra
        self.pids_file = root / "sleeper.pids"
        self.by_name: dict[str, DaemonProcess] = {}
        self.paused: set[str] = set()

    def add(self, name: str, *, extra: str = "") -> DaemonProcess:
        """A node named ``name`` (not started)."""
        home = self.root / name
        home.mkdir()
        section = self.cluster.toml(node_id=f'"{name}"', lease=f'"{self.lease:g}s"')
        config = f"{self._tasks()}\n{self.extra}\n{extra}\n{section}"
        daemon = DaemonProcess(home, config, scheduler=self.scheduler)
        self.by_name[name] = self.daemons.add(daemon)
        return daemon

    def _tasks(self) -> str:
        return f"""
[tasks.hook]
kind = "http"
url = "{self.receiver.url}/hook"

[tasks.held]
kind = "http"
url = "{self.receiver.url}/held"

[tasks.once]
kind = "http"
url = "{self.receiver.url}/once"

[tasks.sleeper]
kind = "command"
argv = ["/bin/sh", "-c", '{SLEEPER}', "sleeper", "{self.pids_file}", "{SLEEPER_LONG:g}"]
kill_grace = "1s"

[tasks.napper]
kind = "command"
argv = ["/bin/sh", "-c", '{SLEEPER}', "napper", "{self.pids_file}", "{NAPPER:g}"]
"""

    async def start(self, *names: str) -> list[DaemonProcess]:
        """Start the nodes ``names`` (added first when new) at the same time."""
        found = [self.by_name.get(name) or self.add(name) for name in names]
        await asyncio.gather(*(daemon.start() for daemon in found))
        return found

    def __getitem__(self, name: str) -> DaemonProcess:
        return self.by_name[name]

    def name_of(self, daemon: DaemonProcess) -> str:
        return next(name for name, d in self.by_name.items() if d is daemon)

    async def kill(self, name: str) -> float:
        """SIGKILL the node; the instant (time.time()) it was sent."""
        daemon = self.by_name[name]
        assert daemon.proc is not None
        at = time.time()
        daemon.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(daemon.proc.wait, 10)
        return at

    def pause(self, name: str) -> float:
        """SIGSTOP the node (it keeps its sockets, its lease stops being renewed)."""
        proc = self.by_name[name].proc
        assert proc is not None
        self.paused.add(name)
        at = time.time()
        proc.send_signal(signal.SIGSTOP)
        return at

    def resume(self, name: str) -> None:
        proc = self.by_name[name].proc
        self.paused.discard(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Resume every paused node (a stopped process cannot stop on SIGTERM) and stop the
        sleeper commands a killed node left behind."""
        for name in list(self.paused):
            self.resume(name)
        for _, pid in sleeper_pids(self.pids_file):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    async def create(self, name: str, body: dict[str, Any]) -> str:
        """Create a job on node ``name``; its id."""
        code, job, _ = await self.by_name[name].request("POST", "/api/jobs", json=body)
        assert code == 201, (code, job)
        return str(job["id"])


def sleeper_pids(path: Path) -> list[tuple[str, int]]:
    """``(fire id, pid)`` of each command started, in the order they started."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        key, _, pid = line.partition(" ")
        out.append((key, int(pid)))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not reaped by its killed parent) counts as stopped.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return False


# --- the database, read directly ---------------------------------------------------------------


async def rows(cluster: ClusterDb, query: str, params: Iterable[Any] | None = None) -> list[Any]:
    """The rows of ``query`` on the cluster's schema (a connection of the test's own)."""
    conn = await cluster.connect()
    try:
        cur = await conn.execute(query, list(params) if params is not None else None)
        return await cur.fetchall() if cur.description else []
    finally:
        await conn.close()


async def runs(cluster: ClusterDb) -> list[Run]:
    """Every run record in the ``runs`` table, per job in the order written."""
    found = await rows(cluster, "SELECT record FROM runs ORDER BY job_id, seq")
    return [decode_run(record) for (record,) in found]


async def inflight(cluster: ClusterDb) -> list[tuple[str, str, int]]:
    """``(fire id, node_id, epoch)`` of each run in flight."""
    found = await rows(cluster, "SELECT job_id, fire, node_id, epoch FROM inflight")
    return [(fire_id(encode(job), fire), node, epoch) for job, fire, node, epoch in found]


async def db_up(cluster: ClusterDb) -> bool:
    try:
        await rows(cluster, "SELECT 1")
    except Unavailable:
        return False
    return True


def key(run: Run) -> str:
    """A run record's fire id."""
    return fire_id(encode(run.job_id), run.fire)


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as resp:
        return resp.status, await resp.json(content_type=None)


# --- accounting for fires ----------------------------------------------------------------------

#: Outcomes that end a fire (an ``interrupted`` run is followed by its rerun, per onCrash).
FAILURES = frozenset({"error", "timeout"})


@dataclass
class Ledger:
    """Per fire id: its records in the ``runs`` table and its executions at the receiver."""

    records: dict[str, list[Run]] = field(default_factory=dict)
    executions: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, recorded: Iterable[Run], receiver: Receiver, *, period: float = 1.0) -> Ledger:
        ledger = cls(executions=receiver.keys())
        for run in recorded:
            # A ``missed`` record stands for ``count`` occurrences from its fire on.
            for n in range(run.count if run.outcome.value == "missed" else 1):
                fire = fire_id(encode(run.job_id), run.fire + n * period)
                ledger.records.setdefault(fire, []).append(run)
        return ledger

    def finals(self, fire: str) -> list[str]:
        """The outcomes that ended ``fire``: not ``interrupted``, not a failed attempt that a
        later attempt of the same fire retried."""
        runs_of = self.records.get(fire, [])
        last = max((r.attempt for r in runs_of), default=0)
        return [
            r.outcome.value
            for r in runs_of
            if r.outcome.value != "interrupted"
            and not (r.outcome.value in FAILURES and r.attempt < last)
        ]

    def interrupted(self, fire: str) -> int:
        return sum(1 for r in self.records.get(fire, []) if r.outcome.value == "interrupted")

    def problems(self, fires: Iterable[str]) -> list[str]:
        """Each fire of ``fires`` without exactly one final outcome, or executed more often than
        once plus once per ``interrupted`` record (or never, though it succeeded). A fire whose
        runs were interrupted :data:`QUARANTINE_AFTER` times in a row (kills that kept landing
        on its nodes) ends its job, quarantined, as designed: that fire and the job's later ones
        (``fires`` lists each job's in order) need no outcome."""
        out = []
        quarantined: set[str] = set()
        for fire in fires:
            job = fire.partition(":")[0]
            finals = self.finals(fire)
            runs_of = self.executions[fire]
            allowed = 1 + self.interrupted(fire)
            if job in quarantined and not self.records.get(fire):
                continue
            if not finals and self.interrupted(fire) >= QUARANTINE_AFTER:
                quarantined.add(job)
                if runs_of > allowed:
                    out.append(f"{fire}: executed {runs_of} times {self._story(fire)}")
                continue
            if len(finals) != 1:
                out.append(f"{fire}: {len(finals)} final outcomes {self._story(fire)}")
            elif runs_of > allowed:
                out.append(f"{fire}: executed {runs_of} times {self._story(fire)}")
            elif finals == ["success"] and runs_of == 0:
                out.append(f"{fire}: recorded a success but never reached the receiver")
        return out

    def _story(self, fire: str) -> str:
        return str([(r.outcome.value, r.attempt) for r in self.records.get(fire, [])])


def grid(job_id: str, first: float, start: float, end: float, period: float = 1.0) -> list[str]:
    """The fire ids of a job whose occurrences are ``first + k * period``, within
    ``[start, end]``."""
    k = max(0, int((start - first) // period))
    out = []
    while first + k * period <= end:
        fire = first + k * period
        if fire >= start:
            out.append(fire_id(job_id, fire))
        k += 1
    return out
