"""The machinery of ``bench/cluster.py``: a PostgreSQL of its own, library nodes, real daemons,
wrk, py-spy, and CPU accounting from ``/proc``. The figures are ``bench/cluster.py``'s.

- :func:`pg_server`: ``tests/cluster/pg.py``'s :class:`PgServer` (initdb into /tmp, run as the
  ``postgres`` user when root, a free loopback port), with ``fsync`` as asked.
- :class:`Db`: one schema on it: migrate (``scheduler cluster init``), read with SQL.
- :class:`Node`: a library node in a process of its own (this file run as a program:
  :func:`node_main`), driven over its stdin and stdout.
- :class:`Daemon`: ``python -m scheduler run`` with a ``[cluster]`` section or a single box.
- :func:`wrk`, :class:`Spy` and :class:`Profile`, :func:`cpu_seconds`.

Every wait is bounded; every process started here is stopped by its owner (``finally``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from scheduler.cluster import db, schema
from scheduler.cluster.claims import Claim, Claimer
from scheduler.cluster.rows import Writes
from scheduler.config import Config, SchedulerConfig
from scheduler.config.model import ClusterConfig
from scheduler.runtime.library import Scheduler

if TYPE_CHECKING:
    from tests.cluster.pg import PgServer

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
SPY = Path("/tmp/spyenv/bin/py-spy")
HAVE_SPY = SPY.exists()
#: Inclusive shares (%) above this are the entry points (main, the loop): not listed.
ROOT_SHARE = 75.0
#: Bounds on the waits (seconds).
DAEMON_START_WITHIN = 60.0
STOP_WITHIN = 30.0
REPLY_WITHIN = 120.0  # a library node's answer to a command
#: Creates a library node makes at once when it fills the job set (its pool has 10
#: connections).
CREATE_CONCURRENCY = 16
NODE_SCRIPT = str(Path(__file__).resolve())
#: Python tasks of the daemons (on their PYTHONPATH): ``hold`` keeps a run in flight.
TASKS_MODULE = """
import asyncio

async def hold(payload):
    await asyncio.sleep(float(payload or 20))
"""


def pg_server(*, fsync: bool) -> PgServer:
    """A throwaway PostgreSQL (the tests' :class:`PgServer`), listening on 127.0.0.1."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.cluster.pg import PgServer, missing_reason

    reason = missing_reason()
    if reason is not None:
        raise SystemExit(reason)
    return PgServer(fsync=fsync)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Db:
    """One schema of the bench's server, and a connection of the bench's own to read it."""

    url: str
    schema: str
    _conn: db.Connection | None = None

    def cluster(self, node_id: str, lease: float) -> ClusterConfig:
        return ClusterConfig(
            url=self.url, password_env=None, node_id=node_id, lease=lease, schema=self.schema
        )

    def toml(self, node_id: str, lease: float) -> str:
        return (
            f'[cluster]\nurl = "{self.url}"\nschema = "{self.schema}"\n'
            f'node_id = "{node_id}"\nlease = "{lease:g}s"\npassword_env = ""\n'
        )

    async def migrate(self) -> None:
        conn = await self.connection()
        await schema.migrate(conn, self.schema)

    async def connection(self) -> db.Connection:
        if self._conn is None:
            config = self.cluster("bench", 10.0)
            conninfo, _ = db.connect_info(config, {})
            self._conn = await db.connect(config, conninfo)
        return self._conn

    async def rows(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        conn = await self.connection()
        cur = await conn.execute(query, params)
        return await cur.fetchall() if cur.description else []

    async def value(self, query: str, params: list[Any] | None = None) -> Any:
        found = await self.rows(query, params)
        return found[0][0] if found else None

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


# --- daemons -----------------------------------------------------------------------------------


def daemon_config(
    home: Path,
    port: int,
    *,
    cluster: str = "",
    fsync: str = "never",
    max_concurrency: int = 10,
    hold: bool = True,
) -> str:
    """A daemon's config.toml: tasks ``noop`` (a command, for jobs that never come due here)
    and, with ``hold``, the python task ``hold`` (needs :data:`TASKS_MODULE` on the path)."""
    hold_task = '[tasks.hold]\nkind = "python"\ncallable = "benchtasks:hold"\n' if hold else ""
    return f"""
[server]
host = "127.0.0.1"
port = {port}

[scheduler]
timezone = "UTC"
max_concurrency = {max_concurrency}
shutdown_grace = "1s"

[persistence]
dir = "{home / "var"}"
fsync = "{fsync}"

[tasks.noop]
kind = "command"
argv = ["true"]

{hold_task}
{cluster}
"""


class Daemon:
    """``python -m scheduler run`` in ``home`` (its config written by the caller)."""

    def __init__(self, home: Path, config: str, port: int) -> None:
        self.home = home
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        home.mkdir(parents=True, exist_ok=True)
        (home / "benchtasks.py").write_text(TASKS_MODULE)
        self.config = home / "config.toml"
        self.config.write_text(config)
        self.log = home / "daemon.log"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        env |= {"SCHEDULER_API_TOKEN": TOKEN, "PYTHONPATH": str(self.home)}
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "scheduler", "run", "-c", str(self.config),
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.home,
            )  # fmt: skip
        deadline = time.monotonic() + DAEMON_START_WITHIN
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"daemon exited:\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"daemon not ready in {DAEMON_START_WITHIN:g} s:\n{self.tail()}")

    def kill(self) -> float:
        """SIGKILL; the instant (time.time()) it was sent."""
        assert self.proc is not None
        at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        return at

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_WITHIN)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def wait(self) -> None:
        if self.proc is not None:
            await asyncio.wait_for(self.proc.wait(), STOP_WITHIN)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


# --- wrk ---------------------------------------------------------------------------------------

POST_LUA = f"""
wrk.method = "POST"
wrk.body = '{{"task": "noop", "schedule": {{"delay": "30d"}}, "payload": {{"n": 1}}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {TOKEN}"
"""


@dataclass(frozen=True, slots=True)
class Load:
    """What one wrk run reported."""

    rate: float  # requests/s
    requests: int
    failed: int  # non-2xx answers and socket errors
    p50: float  # ms
    p99: float  # ms


async def wrk(url: str, seconds: float, *, connections: int, script: Path | None = None) -> Load:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    proc = await asyncio.create_subprocess_exec(
        *argv, url, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), seconds + 30)
    text = out.decode()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {err.decode()}{text}")
    return Load(
        rate=_number(r"Requests/sec:\s+([\d.]+)", text),
        requests=int(_number(r"(\d+) requests in", text)),
        failed=int(_number(r"Non-2xx or 3xx responses: (\d+)", text, 0))
        + sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text)),
        p50=_latency(text, "50%"),
        p99=_latency(text, "99%"),
    )


def _number(pattern: str, text: str, default: float | None = None) -> float:
    match = re.search(pattern, text)
    if match is None:
        if default is None:
            raise RuntimeError(f"wrk output without {pattern!r}:\n{text}")
        return default
    return float(match.group(1))


def _latency(text: str, which: str) -> float:
    match = re.search(rf"{which}\s+([\d.]+)(us|ms|s)", text)
    if match is None:
        raise RuntimeError(f"wrk output without the {which} latency:\n{text}")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


# --- py-spy ------------------------------------------------------------------------------------


@dataclass
class Spy:
    """py-spy sampling some processes (nonblocking: it does not pause them), until stopped."""

    out: Path
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    async def start(self, pids: list[int], name: str) -> None:
        if not HAVE_SPY:
            return
        for pid in pids:
            path = self.out / f"{name}-{pid}.txt"
            self.files.append(path)
            argv = [
                "record", "--pid", str(pid), "--format", "raw", "-o", str(path),
                "--nonblocking", "--nolineno", "--rate", "200",
            ]  # fmt: skip
            self.procs.append(
                await asyncio.create_subprocess_exec(
                    str(SPY), *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )

    async def stop(self) -> Profile:
        for proc in self.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self.procs.clear()
        return Profile.read(self.files)


@dataclass
class Profile:
    """Samples by function (``func (package/module.py)``): where they were (self) and under
    which they were (inclusive). py-spy leaves idle threads out, but a thread that waits for
    a CPU (runnable, on a busy machine) counts as busy: the shares are of "running or ready
    to run", not of CPU seconds (see :func:`cpu_seconds` for those)."""

    total: int = 0
    own: Counter[str] = field(default_factory=Counter)
    under: Counter[str] = field(default_factory=Counter)

    @classmethod
    def read(cls, files: list[Path]) -> Profile:
        out = cls()
        for path in files:
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                stack, _, count = line.rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                samples = int(count)
                frames = stack.split(";")
                out.total += samples
                out.own[frames[-1]] += samples
                for frame in set(frames):
                    out.under[frame] += samples
        return out

    def lines(self, title: str, *, top: int = 10) -> list[str]:
        if not self.total:
            return [f"{title}: no samples (py-spy missing or not permitted)"]
        pct = 100.0 / self.total
        out = [f"{title} ({self.total:,} samples on CPU)", "  self time:"]
        out += [f"    {n * pct:5.1f}%  {name}" for name, n in self.own.most_common(top)]
        ours = [
            (name, n)
            for name, n in self.under.most_common()
            if "scheduler/" in name and n * pct < ROOT_SHARE
        ]
        out.append("  inclusive (scheduler frames):")
        out += [f"    {n * pct:5.1f}%  {name}" for name, n in ours[:top]]
        return out


# --- CPU accounting ----------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int], *, children_of: int | None = None) -> float:
    """User plus system CPU seconds of ``pids`` (and, with ``children_of``, of that process's
    live children plus the reaped ones it accounts for)."""
    total = 0.0
    wanted = set(pids)
    if children_of is not None:
        wanted.add(children_of)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            fields = _stat(stat)
            if fields is not None and int(fields[1]) == children_of:
                wanted.add(int(stat.parent.name))
    for pid in wanted:
        fields = _stat(Path(f"/proc/{pid}/stat"))
        if fields is None:
            continue
        ticks = int(fields[11]) + int(fields[12])
        if pid == children_of:
            ticks += int(fields[13]) + int(fields[14])
        total += ticks / _TICK
    return total


def _stat(path: Path) -> list[str] | None:
    """The fields of a ``/proc/PID/stat`` after the command name (state is [0], ppid [1])."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


# --- library nodes: the child process (``bench/cluster_pg.py --url ...``) ----------------------


class CappedClaimer(Claimer):
    """The node's claimer with its batch capped at ``cap`` runs per transaction: the bench's
    knob (the code has none; its batch is the node's free slots)."""

    def __init__(self, base: Claimer, cap: int) -> None:
        super().__init__(
            node_id=base.node_id,
            tasks=base.tasks,
            triggers=base.triggers,
            history=base.history,
            schema=base.schema,
            rng=base.rng,
        )
        self.cap = cap

    async def claim(
        self, conn: db.Connection, *, epoch: int, lease: float, free: int, skip: set[int]
    ) -> tuple[Claim, Writes]:
        capped = min(free, self.cap)
        return await super().claim(conn, epoch=epoch, lease=lease, free=capped, skip=skip)


def say(line: str) -> None:
    print(line, flush=True)


async def node_main(args: argparse.Namespace) -> None:
    """A library node answering the bench's commands on stdin, one line each: ``pause``,
    ``resume``, ``create COUNT START SPREAD`` (see :func:`create`), ``stop`` (prints its
    figures as JSON)."""
    db = Db(args.url, args.schema)
    config = Config(
        scheduler=SchedulerConfig(timezone="UTC", max_concurrency=args.max_concurrency),
        cluster=db.cluster(args.node_id, args.lease),
    )
    sched = Scheduler(config, environ={})
    seen: list[float] = []

    async def noop(_payload: Any, ctx: Any) -> None:
        seen.append(time.time() - int(str(ctx.fire_id).rsplit(":", 1)[1]) / 1000)

    sched.register_task("noop", noop)
    await sched.start()
    parts = sched.cluster
    assert parts is not None
    if args.claim_batch > 0:
        parts.engine.claimer = CappedClaimer(parts.engine.claimer, args.claim_batch)
    say("ready")
    try:
        while True:
            words = (await asyncio.to_thread(sys.stdin.readline)).split()
            if not words or words[0] == "stop":
                break
            if words[0] in ("pause", "resume"):
                await parts.service.set_paused(words[0] == "pause")
            elif words[0] == "create":
                await create(sched, int(words[1]), float(words[2]), float(words[3]))
            say("ok")
    finally:
        engine = parts.engine
        figures = {
            "claims": engine.claims,
            "claim_seconds": engine.claim_seconds,
            "fenced": engine.fenced,
            "lateness": seen,
        }
        await sched.stop(grace=1.0)
        say(json.dumps(figures))


async def create(sched: Scheduler, count: int, start: float, spread: float) -> None:
    """``count`` jobs of ``noop``: due now (``start`` 0), or due at ``start`` (epoch seconds)
    plus ``spread * i / count``, whenever each is created."""
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def one(i: int) -> None:
        due = start + spread * i / count - time.time() if start else 0.0
        schedule = {"delay": f"{max(1, round(due * 1000))}ms"} if start else None
        async with gate:
            await sched.create_task("noop", None, schedule=schedule)

    await asyncio.gather(*(one(i) for i in range(count)))


# --- the bench's side of a node ----------------------------------------------------------------


class Node:
    """A node process, driven over its stdin and stdout."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.log = log

    @classmethod
    async def start(
        cls, db: Db, name: str, tmp: Path, *, concurrency: int = 64, claim_batch: int = 0
    ) -> Node:
        log = tmp / f"{db.schema}-{name}.log"
        argv = [
            NODE_SCRIPT, "--url", db.url, "--schema", db.schema,
            "--node-id", name, "--max-concurrency", str(concurrency),
            "--claim-batch", str(claim_batch),
        ]  # fmt: skip
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *argv,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
            )  # fmt: skip
        node = cls(name, proc, log)
        try:
            await node.reply()
        except BaseException:
            await node.kill()
            raise
        return node

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def reply(self) -> str:
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), REPLY_WITHIN)
        except TimeoutError:
            raise RuntimeError(f"node {self.name}: no answer:\n{self.tail()}") from None
        if not line:
            raise RuntimeError(f"node {self.name} exited:\n{self.tail()}")
        return line.decode().strip()

    async def ask(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.reply()

    async def stop(self) -> dict[str, Any]:
        """Stop it cleanly; its figures."""
        try:
            figures: dict[str, Any] = json.loads(await self.ask("stop"))
            await asyncio.wait_for(self.proc.wait(), STOP_WITHIN)
        except (RuntimeError, TimeoutError, ValueError, ConnectionError) as exc:
            print(f"  !! node {self.name} did not stop cleanly: {exc}")
            await self.kill()
            return {}
        return figures

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


async def start_all(starts: list[Awaitable[Any]], started: list[Any]) -> None:
    """Start several processes at once; those that started go into ``started`` (so the
    caller's ``finally`` stops them) even when another failed."""
    results = await asyncio.gather(*starts, return_exceptions=True)
    started.extend(r for r in results if not isinstance(r, BaseException))
    for r in results:
        if isinstance(r, BaseException):
            raise r


def node_cli() -> None:
    parser = argparse.ArgumentParser(description="one library node, driven over stdin")
    parser.add_argument("--url", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--max-concurrency", type=int, default=64)
    parser.add_argument("--claim-batch", type=int, default=0, help="cap per claim; 0: none")
    parser.add_argument("--lease", type=float, default=10.0)
    asyncio.run(node_main(parser.parse_args()))


if __name__ == "__main__":
    node_cli()
