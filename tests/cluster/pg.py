"""A real PostgreSQL for the cluster tests: a throwaway server in a temp dir, on a free port.

:class:`PgServer` runs ``initdb`` and ``postgres`` from Debian's ``/usr/lib/postgresql/*/bin``
(the newest version installed). As root, both run as the ``postgres`` user (PostgreSQL refuses
to run as root) in a directory chowned to it. The server listens on 127.0.0.1 only, with its
Unix socket in its own directory, ``fsync`` off unless asked (tests that do not test durability
need not pay for it), ``synchronous_commit`` on as in production.

Authentication: every role connects without a password (``trust``) except :data:`LOCKED_ROLE`,
which needs :attr:`PgServer.password` over TCP (``scram-sha-256``): the tests of password
sourcing use it, everything else connects as ``postgres`` to the database ``scheduler``.

Every step is bounded in time; :meth:`PgServer.close` (also registered with ``atexit``) stops
the server and removes its files. ``stop``/``start``/``restart`` (and their ``a``-prefixed
async twins, run in a thread so the event loop keeps serving the code under test) are for the
fault tests. The fixtures are in ``tests/cluster/conftest.py``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.daemon_proc import free_port

BIN_GLOB = "/usr/lib/postgresql/*/bin"
DATABASE = "scheduler"
SUPERUSER = "postgres"
#: The one role that must give a password (over TCP).
LOCKED_ROLE = "locked"
INITDB_WITHIN = 60.0
START_WITHIN = 30.0
STOP_WITHIN = 20.0
_HBA = f"""\
local all all trust
host all {LOCKED_ROLE} 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
"""


def find_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None when none is installed."""
    found = [
        path
        for path in Path("/").glob(BIN_GLOB.lstrip("/"))
        if (path / "initdb").exists() and (path / "postgres").exists()
    ]
    return max(found, key=lambda path: int(path.parent.name), default=None)


def missing_reason() -> str | None:
    """Why these tests cannot run here, or None when they can."""
    if find_bin() is None:
        return (
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "apt-get install postgresql (make test installs it when run as root)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return "running as root, but there is no 'postgres' user to run PostgreSQL as"
    return None


class PgServer:
    """One PostgreSQL server of the tests (see the module docstring)."""

    def __init__(self, *, fsync: bool = False) -> None:
        bin_dir = find_bin()
        assert bin_dir is not None, missing_reason()
        self.bin = bin_dir
        self.fsync = fsync
        self.as_postgres = os.geteuid() == 0
        # /tmp, not pytest's tmp_path: every directory above the data must be traversable by
        # the postgres user, and the socket path must stay short.
        self.root = Path(tempfile.mkdtemp(prefix="scheduler-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.close)
        if self.as_postgres:
            account = pwd.getpwnam(SUPERUSER)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self._initdb()
        self.start()
        self._create_database()

    # --- addresses -----------------------------------------------------------------------------

    def url(self, *, user: str = SUPERUSER, database: str = DATABASE) -> str:
        """A libpq URL without a password (as ``[cluster] url`` must be)."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def connect(self, *, database: str = DATABASE) -> psycopg.Connection[Any]:
        """A superuser connection in autocommit mode, for the tests' own SQL."""
        return psycopg.connect(self.url(database=database), autocommit=True, connect_timeout=5)

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser; its rows (none for a command)."""
        with self.connect() as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    # --- life cycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, within: float = START_WITHIN) -> None:
        """Start the server and return once it accepts connections."""
        assert not self.running, "already running"
        options = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "fsync": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
            "synchronous_commit": "on",
            "max_connections": "200",
            "shared_buffers": "32MB",
        }
        argv = [str(self.bin / "postgres"), "-D", str(self.data)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, **self._child_options()
            )
        self._wait_ready(within)

    def stop(self, *, immediate: bool = False, within: float = STOP_WITHIN) -> None:
        """Stop the server: a fast shutdown (SIGINT: sessions are cut, a checkpoint is written)
        or, with ``immediate``, SIGQUIT (no checkpoint: the next start recovers from WAL, as
        after a crash). Killed if it does not stop ``within`` seconds."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
        try:
            proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=within)

    def restart(self, *, immediate: bool = False) -> None:
        self.stop(immediate=immediate)
        self.start()

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self, *, immediate: bool = False) -> None:
        await asyncio.to_thread(self.stop, immediate=immediate)

    async def arestart(self, *, immediate: bool = False) -> None:
        await asyncio.to_thread(self.restart, immediate=immediate)

    def close(self) -> None:
        """Stop the server (immediately) and remove its files. Safe to call twice."""
        self.stop(immediate=True)
        shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self.close)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # --- set-up --------------------------------------------------------------------------------

    def _child_options(self) -> dict[str, Any]:
        """Popen's arguments that run a child as the postgres user when we are root."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        if not self.as_postgres:
            return {"env": env, "cwd": self.root}
        return {
            "env": env,
            "cwd": self.root,
            "user": SUPERUSER,
            "group": pwd.getpwnam(SUPERUSER).pw_gid,
            "extra_groups": [],
        }

    def _initdb(self) -> None:
        argv = [
            str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust",
            "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions",
        ]  # fmt: skip
        done = subprocess.run(
            argv, capture_output=True, timeout=INITDB_WITHIN, check=False, **self._child_options()
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{output}")
        (self.data / "pg_hba.conf").write_text(_HBA)

    def _wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"postgres exited:\n{self.output()[-4000:]}")
            try:
                with psycopg.connect(self.url(database="postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = exc
            time.sleep(0.05)
        self.stop(immediate=True)
        raise TimeoutError(f"postgres did not accept connections in {within:g} s ({last})")

    def _create_database(self) -> None:
        with psycopg.connect(
            self.url(database="postgres"), autocommit=True, connect_timeout=5
        ) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
            role = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")  # DDL takes no parameters
            conn.execute(role.format(sql.Identifier(LOCKED_ROLE), sql.Literal(self.password)))
            conn.execute(f"GRANT CONNECT, CREATE ON DATABASE {DATABASE} TO {LOCKED_ROLE}")


@contextlib.contextmanager
def server(*, fsync: bool = False) -> Iterator[PgServer]:
    """A :class:`PgServer` for the length of a ``with`` block."""
    pg = PgServer(fsync=fsync)
    try:
        yield pg
    finally:
        pg.close()
