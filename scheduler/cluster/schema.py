"""The cluster's tables, as numbered migrations, and the check every node makes at start.

Policy. ``MIGRATIONS[n - 1]`` takes a schema from version ``n - 1`` to ``n``; version 0 is "no
scheduler tables". The stored version is the ``schema_version`` row of ``meta``. ``scheduler
cluster init`` (:func:`migrate`) applies every migration above the stored version in ONE
transaction, under a transaction-level advisory lock keyed by the schema's name, so two inits
racing each other are serialized: one migrates, the other then finds the work done. Running it
again is a no-op. A daemon never migrates: :func:`check_version` refuses a schema older or newer
than the one this code knows, saying which command to run, because nodes of two versions must
never write one job set.

The tables (version 1) are those of the build design: ``jobs`` (one row per job, its whole
record plus the indexed columns of :func:`scheduler.cluster.codec.job_columns`), ``inflight``
(one row per started fire, primary key ``(job_id, fire)``), ``runs``, ``events``, ``nodes``,
``meta``, ``buffered``, ``manual`` and ``task_limits``. Unqualified names: every connection's
``search_path`` is the cluster's schema, and a migration sets it for its own transaction.
"""

from __future__ import annotations

from typing import NamedTuple

from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.types.json import Jsonb

from scheduler.cluster.db import Connection, advisory_key
from scheduler.errors import ConfigError

#: Version 1: the tables of the build design (CLUSTER_DESIGN.md), one statement each.
V1 = (
    "CREATE TABLE meta (key text PRIMARY KEY, value jsonb NOT NULL)",
    """CREATE TABLE nodes (
        node_id text PRIMARY KEY,
        epoch bigint NOT NULL,
        slot smallint NOT NULL UNIQUE,
        heartbeat_at double precision NOT NULL,
        started_at double precision NOT NULL,
        host text NOT NULL,
        pid integer NOT NULL,
        config_hash text NOT NULL,
        version text NOT NULL,
        clock_skew double precision NOT NULL DEFAULT 0,
        replica_lag double precision NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE jobs (
        id bigint PRIMARY KEY,
        version bigint NOT NULL,
        status text NOT NULL,
        priority smallint NOT NULL,
        wake double precision,
        held boolean NOT NULL DEFAULT false,
        task text NOT NULL,
        workflow_id text,
        unique_key text,
        name text,
        source text NOT NULL,
        completed double precision,
        record bytea NOT NULL
    )""",
    "CREATE INDEX jobs_due ON jobs (priority, wake, id) WHERE wake IS NOT NULL AND NOT held",
    """CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
        WHERE unique_key IS NOT NULL AND status NOT IN ('completed', 'failed', 'cancelled')""",
    """CREATE UNIQUE INDEX jobs_workflow ON jobs (workflow_id)
        WHERE unique_key IS NULL AND workflow_id IS NOT NULL
          AND status NOT IN ('completed', 'failed', 'cancelled')""",
    "CREATE UNIQUE INDEX jobs_static ON jobs (name) WHERE name IS NOT NULL AND source <> 'api'",
    """CREATE TABLE inflight (
        job_id bigint NOT NULL,
        fire double precision NOT NULL,
        attempt integer NOT NULL,
        node_id text NOT NULL,
        epoch bigint NOT NULL,
        task text NOT NULL,
        started double precision NOT NULL,
        lease_until double precision NOT NULL,
        manual boolean NOT NULL,
        cancel_reason text,
        PRIMARY KEY (job_id, fire)
    )""",
    "CREATE INDEX inflight_node ON inflight (node_id, epoch)",
    "CREATE INDEX inflight_lease ON inflight (lease_until)",
    "CREATE TABLE buffered (job_id bigint PRIMARY KEY, fire double precision NOT NULL)",
    """CREATE TABLE manual (
        id bigserial PRIMARY KEY,
        job_id bigint NOT NULL,
        requested double precision NOT NULL,
        force boolean NOT NULL,
        node_id text NOT NULL
    )""",
    "CREATE INDEX manual_job ON manual (job_id)",
    """CREATE TABLE runs (
        job_id bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        seq bigserial,
        record bytea NOT NULL,
        PRIMARY KEY (job_id, seq)
    )""",
    """CREATE TABLE events (
        seq bigserial PRIMARY KEY,
        job_id bigint,
        type text NOT NULL,
        data jsonb NOT NULL,
        at double precision NOT NULL
    )""",
    """CREATE TABLE task_limits (
        task text PRIMARY KEY,
        starts double precision[] NOT NULL DEFAULT '{}'
    )""",
    """INSERT INTO meta (key, value) VALUES
        ('paused', 'false'),
        ('housekeeper', '{"node": null, "until": 0}')""",
)
MIGRATIONS: tuple[tuple[str, ...], ...] = (V1,)
#: The version this code reads and writes.
SCHEMA_VERSION = len(MIGRATIONS)
INIT_COMMAND = "scheduler cluster init -c CONFIG"


class Migrated(NamedTuple):
    """The stored version before and after a :func:`apply_migrations`."""

    before: int
    after: int


async def stored_version(conn: Connection, schema: str) -> int:
    """The schema's stored version; 0 when the schema or its ``meta`` table does not exist."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = 'meta')",
        [schema],
    )
    row = await cur.fetchone()
    if row is None or not row[0]:
        return 0
    query = sql.SQL("SELECT value FROM {}.meta WHERE key = 'schema_version'")
    cur = await conn.execute(query.format(sql.Identifier(schema)))
    found = await cur.fetchone()
    return int(found[0]) if found is not None else 0


async def apply_migrations(conn: Connection, schema: str) -> Migrated:
    """Create ``schema`` if needed and bring it to :data:`SCHEMA_VERSION` in one transaction
    (see the module docstring). ``conn`` is an autocommit connection (the pool's are).

    Raises ConfigError for a schema newer than this code, or one that already holds tables of
    the same names that are not the scheduler's.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_key("migrate", schema)])
        name = sql.Identifier(schema)
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
        await conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(name))
        before = await stored_version(conn, schema)
        if before > SCHEMA_VERSION:
            raise ConfigError([_newer(schema, before)])
        try:
            for version in range(before + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version - 1]:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    [Jsonb(version)],
                )
        except (pg_errors.DuplicateTable, pg_errors.DuplicateObject) as exc:
            raise ConfigError(
                [
                    f"database schema {schema!r} already holds tables that are not the "
                    f"scheduler's ({exc.diag.message_primary}); choose another cluster.schema"
                ]
            ) from None
    return Migrated(before, SCHEMA_VERSION)


async def migrate(conn: Connection, schema: str) -> int:
    """:func:`apply_migrations`; returns the version the schema is at now."""
    return (await apply_migrations(conn, schema)).after


async def check_version(conn: Connection, schema: str) -> int:
    """The schema's version when it is the one this code knows; else ConfigError saying
    what to run. A node calls this at start, before anything else touches the tables."""
    version = await stored_version(conn, schema)
    if version == 0:
        raise ConfigError(
            [
                f"database schema {schema!r} has no scheduler tables yet: create them with "
                f"`{INIT_COMMAND}`"
            ]
        )
    if version < SCHEMA_VERSION:
        raise ConfigError(
            [
                f"database schema {schema!r} is at version {version}, this scheduler needs "
                f"version {SCHEMA_VERSION}: migrate it with `{INIT_COMMAND}`"
            ]
        )
    if version > SCHEMA_VERSION:
        raise ConfigError([_newer(schema, version)])
    return version


def _newer(schema: str, version: int) -> str:
    return (
        f"database schema {schema!r} is at version {version}, newer than this scheduler knows "
        f"({SCHEMA_VERSION}): run the newer scheduler on every node"
    )
