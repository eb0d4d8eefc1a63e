"""The cluster's schema: created by migrations, idempotently, serialized between concurrent
inits, and checked by version with a message that says what to run."""

from __future__ import annotations

import asyncio

import pytest
from psycopg import errors as pg_errors

from scheduler.cluster import schema
from scheduler.cluster.schema import (
    SCHEMA_VERSION,
    Migrated,
    apply_migrations,
    check_version,
    migrate,
    stored_version,
)
from scheduler.errors import ConfigError
from tests.cluster.conftest import ClusterDb

pytestmark = pytest.mark.integration

TABLES = {
    "meta",
    "nodes",
    "jobs",
    "inflight",
    "buffered",
    "manual",
    "runs",
    "events",
    "task_limits",
}


async def tables_of(cluster: ClusterDb) -> set[str]:
    conn = await cluster.connect()
    try:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            [cluster.schema],
        )
        return {str(name) for (name,) in await cur.fetchall()}
    finally:
        await conn.close()


async def test_init_creates_every_table_and_the_meta_rows(cluster: ClusterDb) -> None:
    assert await cluster.migrate() == SCHEMA_VERSION == 1
    assert await tables_of(cluster) == TABLES
    conn = await cluster.connect()
    try:
        cur = await conn.execute("SELECT key, value FROM meta ORDER BY key")
        assert await cur.fetchall() == [
            ("housekeeper", {"node": None, "until": 0}),
            ("paused", False),
            ("schema_version", 1),
        ]
        cur = await conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s", [cluster.schema]
        )
        indexes = {str(name) for (name,) in await cur.fetchall()}
    finally:
        await conn.close()
    wanted = {"jobs_due", "jobs_unique_key", "jobs_workflow", "jobs_static", "inflight_node",
              "inflight_lease", "manual_job"}  # fmt: skip
    assert wanted <= indexes


async def test_init_twice_is_a_no_op(cluster: ClusterDb) -> None:
    conn = await cluster.connect()
    try:
        assert await apply_migrations(conn, cluster.schema) == Migrated(0, 1)
        await conn.execute("UPDATE meta SET value = 'true' WHERE key = 'paused'")
        assert await apply_migrations(conn, cluster.schema) == Migrated(1, 1)
        cur = await conn.execute("SELECT value FROM meta WHERE key = 'paused'")
        assert await cur.fetchone() == (True,)  # the second init changed nothing
    finally:
        await conn.close()


async def test_two_inits_at_once_one_creates_and_the_other_finds_it_done(
    cluster: ClusterDb,
) -> None:
    first, second = await cluster.connect(), await cluster.connect()
    try:
        results = await asyncio.gather(
            apply_migrations(first, cluster.schema), apply_migrations(second, cluster.schema)
        )
    finally:
        await first.close()
        await second.close()
    assert sorted(results) == [Migrated(0, 1), Migrated(1, 1)]


async def test_a_missing_schema_says_to_run_init(cluster: ClusterDb) -> None:
    conn = await cluster.connect()
    try:
        assert await stored_version(conn, cluster.schema) == 0
        with pytest.raises(ConfigError) as caught:
            await check_version(conn, cluster.schema)
    finally:
        await conn.close()
    assert caught.value.problems == [
        f"database schema '{cluster.schema}' has no scheduler tables yet: create them with "
        "`scheduler cluster init -c CONFIG`"
    ]


async def test_a_newer_schema_is_refused_by_check_and_by_init(cluster: ClusterDb) -> None:
    await cluster.migrate()
    conn = await cluster.connect()
    try:
        await conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        with pytest.raises(ConfigError, match="newer than this scheduler knows"):
            await check_version(conn, cluster.schema)
        with pytest.raises(ConfigError) as caught:
            await migrate(conn, cluster.schema)
    finally:
        await conn.close()
    assert caught.value.problems == [
        f"database schema '{cluster.schema}' is at version 2, newer than this scheduler knows"
        " (1): run the newer scheduler on every node"
    ]


async def test_an_older_schema_is_refused_until_init_migrates_it(
    cluster: ClusterDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cluster.migrate()
    v2 = ("CREATE TABLE added_in_v2 (x integer)",)
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, v2))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    conn = await cluster.connect()
    try:
        with pytest.raises(ConfigError) as caught:
            await check_version(conn, cluster.schema)
        assert caught.value.problems == [
            f"database schema '{cluster.schema}' is at version 1, this scheduler needs version 2:"
            " migrate it with `scheduler cluster init -c CONFIG`"
        ]
        assert await apply_migrations(conn, cluster.schema) == Migrated(1, 2)
        assert await check_version(conn, cluster.schema) == 2
    finally:
        await conn.close()
    assert "added_in_v2" in await tables_of(cluster)


async def test_a_failed_migration_leaves_nothing_behind(
    cluster: ClusterDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = (*schema.V1[:3], "CREATE TABLE oops (")  # a syntax error after a few tables
    monkeypatch.setattr(schema, "MIGRATIONS", (broken,))
    conn = await cluster.connect()
    try:
        with pytest.raises(pg_errors.SyntaxError):
            await migrate(conn, cluster.schema)
        assert await stored_version(conn, cluster.schema) == 0
    finally:
        await conn.close()
    assert await tables_of(cluster) == set()


async def test_a_schema_holding_other_tables_of_those_names_is_refused(cluster: ClusterDb) -> None:
    conn = await cluster.connect()
    try:
        await conn.execute(f"CREATE SCHEMA {cluster.schema}")
        await conn.execute(f"CREATE TABLE {cluster.schema}.jobs (id integer)")
        with pytest.raises(ConfigError) as caught:
            await migrate(conn, cluster.schema)
    finally:
        await conn.close()
    assert caught.value.problems == [
        f"database schema '{cluster.schema}' already holds tables that are not the scheduler's"
        ' (relation "jobs" already exists); choose another cluster.schema'
    ]
    assert await tables_of(cluster) == {"jobs"}  # nothing was added next to it
