"""Reaching PostgreSQL: the password, the connection string, the pool, the database clock, and
the one mapping of "the database cannot be reached" to :class:`~scheduler.errors.Unavailable`.

Password. ``$CREDENTIALS_DIRECTORY/db_password`` (systemd ``LoadCredential=``) wins, else the
variable named by ``[cluster] password_env``; neither: libpq's own ways (``~/.pgpass``, trust).
The URL itself never holds one (the config loader refuses it). The password is merged into the
connection string, which is therefore a secret: nothing here logs it or puts it in a message,
and every message built from a driver error has the password replaced (:func:`unavailable`).

Connections. Every connection is in autocommit mode and a transaction is always an explicit
``async with conn.transaction():`` block, so a connection handed back to the pool is never
left "idle in transaction" and a block's end is its commit (psycopg's advice). Each connection
runs with ``search_path`` set to the cluster's schema and ``synchronous_commit = on`` (a 2xx
means committed, whatever the server's default), and says ``application_name =
scheduler:<node_id>`` so that ``pg_stat_activity`` shows which node holds it.

Errors. A lost or refused connection, a server shutting down or out of connections, and a pool
that could not hand out a connection in time all become ``Unavailable`` ("the database is
unreachable: <first line of the reason>"), which the API answers with 503 and ``Retry-After``.
Anything else (a constraint, a serialization failure, a bug) is left as it is for the caller.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from scheduler.config.model import ClusterConfig, Config
from scheduler.errors import ConfigError, Unavailable

log = logging.getLogger(__name__)

Connection: TypeAlias = psycopg.AsyncConnection[TupleRow]


class Pool(AsyncConnectionPool[Connection]):
    """psycopg's pool whose :meth:`connection` blocks raise :class:`Unavailable` for an
    unreachable database: a pool that cannot hand out a connection in time, and a connection
    lost inside the block. So every caller handles one error, however it reached the
    database; other errors (a constraint, a bug) pass unchanged."""

    @contextlib.asynccontextmanager
    async def connection(
        self,
        timeout: float | None = None,  # noqa: ASYNC109 - psycopg's signature, overridden here
    ) -> AsyncIterator[Connection]:
        conninfo = self.conninfo if isinstance(self.conninfo, str) else ""  # ours: a string
        with db_errors(_password_in(conninfo)):
            async with super().connection(timeout) as conn:
                yield conn


_CHANNEL_BYTES = 63  # PostgreSQL's longest identifier
#: The systemd credential holding the database password.
CREDENTIAL_NAME = "db_password"
POOL_MIN = 1
POOL_MAX = 10
#: How long a caller waits for a pooled connection before it is told the database is
#: unreachable (a write then answers 503 instead of hanging).
POOL_TIMEOUT = 5.0
#: Connection parameters used unless the URL sets them: a bounded connect (libpq waits forever
#: by default) and TCP keepalives, so that a dead server or network is noticed on an idle
#: connection (the replica's LISTEN) within about half a minute.
CONNECT_DEFAULTS: Mapping[str, str] = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
#: SQLSTATE classes and codes that mean the database cannot serve us now: connection
#: exceptions (08), insufficient resources (53: disk full, too many connections) and a server
#: shutting down, restarting or starting (57P01-57P05).
_UNREACHABLE_CLASSES = ("08", "53")
_UNREACHABLE_CODES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05"})
_REASON_CHARS = 200
REDACTED = "[redacted]"


def _cluster(config: Config | ClusterConfig) -> ClusterConfig | None:
    return config.cluster if isinstance(config, Config) else config


def cluster_password(config: Config | ClusterConfig, environ: Mapping[str, str]) -> str | None:
    """The database password, or None (no ``[cluster]``, or none configured: libpq's own
    ways then apply). An unreadable credential file is a ConfigError naming it."""
    cluster = _cluster(config)
    if cluster is None:
        return None
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / CREDENTIAL_NAME
        try:
            password = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            password = ""
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError([f"{path}: cannot read the database password: {reason}"]) from None
        if password:
            return password
    if cluster.password_env:
        return environ.get(cluster.password_env, "").strip() or None
    return None


def connect_info(
    config: Config | ClusterConfig, environ: Mapping[str, str]
) -> tuple[str, str | None]:
    """``(conninfo, password)``: the libpq connection string for ``config`` with the password
    merged in (a secret: never log it), and the password alone, for the log redactor."""
    cluster = _cluster(config)
    if cluster is None:
        raise ConfigError(["the config has no [cluster] section"])
    password = cluster_password(cluster, environ)
    try:
        params: dict[str, Any] = conninfo_to_dict(cluster.url)
    except psycopg.ProgrammingError as exc:
        # libpq quotes the faulty part; the URL holds no password, so that is safe to show.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "not a libpq URL"
        raise ConfigError([f"cluster.url: {reason}"]) from None
    for key, value in CONNECT_DEFAULTS.items():
        params.setdefault(key, value)
    params["application_name"] = f"scheduler:{cluster.node_id}"
    if password is not None:
        params["password"] = password
    return make_conninfo("", **params), password


@functools.lru_cache(maxsize=8)  # read on every pooled checkout: parse each string once
def _password_in(conninfo: str) -> str | None:
    password = conninfo_to_dict(conninfo).get("password")
    return str(password) if password else None


def location(conn: Connection, schema: str) -> str:
    """``host:port/dbname schema S`` of a live connection, for messages (no user, no secret)."""
    info = conn.info
    return f"{info.host}:{info.port}/{info.dbname} schema {schema}"


async def configure(conn: Connection, schema: str) -> None:
    """The session settings every connection runs with (see the module docstring)."""
    await conn.execute(
        "SELECT set_config('search_path', %s, false),"
        " set_config('synchronous_commit', 'on', false)",
        [sql.Identifier(schema).as_string(conn)],
    )


def make_pool(
    cluster: ClusterConfig,
    conninfo: str,
    *,
    min_size: int = POOL_MIN,
    max_size: int = POOL_MAX,
    timeout: float = POOL_TIMEOUT,
    check: bool = True,
) -> Pool:
    """A pool of autocommit connections configured for ``cluster``, not yet open: call
    ``await pool.open()`` inside the owner's task group and ``await pool.close()`` when it
    ends (psycopg deprecates opening an async pool in its constructor).

    ``check``: test each connection with an empty query before handing it out, so that after
    a database restart the first request gets a fresh connection instead of an error; it costs
    one round trip per checkout.
    """
    schema = cluster.schema

    async def configure_new(conn: Connection) -> None:
        await configure(conn, schema)

    return Pool(
        conninfo,
        kwargs={"autocommit": True},
        min_size=min_size,
        max_size=max_size,
        open=False,
        configure=configure_new,
        check=AsyncConnectionPool.check_connection if check else None,
        name=f"scheduler:{cluster.node_id}",
        timeout=timeout,
    )


async def open_pool(
    cluster: ClusterConfig, conninfo: str, *, wait: float | None = None, **options: Any
) -> Pool:
    """:func:`make_pool`, opened. ``wait``: first wait up to that many seconds for the first
    connection, raising :class:`Unavailable` (the pool closed) when the database does not
    answer; None returns at once and connects in the background."""
    pool = make_pool(cluster, conninfo, **options)
    with db_errors(_password_in(conninfo)):
        await pool.open(wait=wait is not None, timeout=wait or 0.0)
    return pool


async def connect(cluster: ClusterConfig, conninfo: str) -> Connection:
    """One autocommit connection outside the pool, configured like the pool's (the replica's
    LISTEN, a CLI command). Raises :class:`Unavailable` when the database cannot be reached."""
    with db_errors(_password_in(conninfo)):
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        try:
            await configure(conn, cluster.schema)
        except BaseException:
            await conn.close()
            raise
    return conn


async def db_now(conn: Connection) -> float:
    """The database's clock, in epoch seconds: the one every "is it due" is compared with."""
    cur = await conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
    row = await cur.fetchone()
    assert row is not None
    return float(row[0])


def advisory_key(*parts: str) -> int:
    """A stable 64-bit advisory lock key for ``parts`` (``("migrate", schema)``,
    ``("node", schema, node_id)``): the same in every process and Python version, unlike
    ``hash()``."""
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# --- errors ----------------------------------------------------------------------------------


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot serve us now (see the module docstring)."""
    if isinstance(exc, PoolTimeout | PoolClosed | Unavailable):
        return True  # Unavailable: already mapped (a pooled connection's block)
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    state = exc.sqlstate
    if state is None:
        return True  # raised by libpq or psycopg itself: no connection, or it was lost
    return state.startswith(_UNREACHABLE_CLASSES) or state in _UNREACHABLE_CODES


def reason(exc: BaseException, password: str | None = None) -> str:
    """The first line of a driver error, short, with ``password`` (if any) redacted."""
    text = str(exc).strip().splitlines()[0].strip() if str(exc).strip() else type(exc).__name__
    if password:
        text = text.replace(password, REDACTED)
    if len(text) > _REASON_CHARS:
        text = text[: _REASON_CHARS - 3] + "..."
    return text


def unavailable(exc: BaseException, password: str | None = None) -> Unavailable:
    """The :class:`Unavailable` to raise for an unreachable database."""
    return Unavailable(f"the database is unreachable: {reason(exc, password)}")


@contextlib.contextmanager
def db_errors(password: str | None = None) -> Iterator[None]:
    """Within the block (it may hold awaits), an unreachable database raises
    :class:`Unavailable` instead of the driver's error; other errors pass unchanged."""
    try:
        yield
    except (psycopg.Error, PoolTimeout, PoolClosed) as exc:
        if is_unreachable(exc):
            raise unavailable(exc, password) from None
        raise


def channel(schema: str) -> str:
    """The schema's notification channel: ``<schema>_changes``, or, for a schema name too long
    for that to be an identifier, a shortened name with a hash (the same on every node)."""
    name = f"{schema}_changes"
    if len(name.encode()) <= _CHANNEL_BYTES:
        return name
    digest = hashlib.blake2b(schema.encode(), digest_size=8).hexdigest()
    return f"{schema[:38]}_{digest}_changes"
