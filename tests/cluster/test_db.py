"""Reaching the database: session settings on every connection, the database clock, a password
given the way a node gets it, and an unreachable database as Unavailable without secrets."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from scheduler.cluster import db
from scheduler.errors import Unavailable
from tests.cluster.conftest import ClusterDb
from tests.cluster.pg import LOCKED_ROLE, PgServer
from tests.daemon_proc import free_port

#: The tests that need the server (the others check pure functions).
uses_pg = pytest.mark.integration


async def settings_of(conn: db.Connection) -> tuple[str, str, str]:
    cur = await conn.execute(
        "SELECT current_setting('search_path'), current_setting('synchronous_commit'),"
        " current_setting('application_name')"
    )
    row = await cur.fetchone()
    assert row is not None
    return str(row[0]), str(row[1]), str(row[2])


@uses_pg
async def test_every_pooled_connection_runs_in_the_schema_with_synchronous_commit(
    cluster: ClusterDb,
) -> None:
    await cluster.migrate()
    cluster.server.sql("ALTER DATABASE scheduler SET synchronous_commit = off")
    try:
        conninfo, _ = db.connect_info(cluster.config(), {})
        pool = await db.open_pool(cluster.config(), conninfo, wait=10.0, max_size=2)
        try:
            async with pool.connection() as conn:
                assert await settings_of(conn) == (
                    f'"{cluster.schema}"',
                    "on",
                    f"scheduler:{cluster.node_id}",
                )
                assert conn.autocommit
                await conn.execute("SELECT count(*) FROM jobs")  # unqualified: search_path
        finally:
            await pool.close()
    finally:
        cluster.server.sql("ALTER DATABASE scheduler RESET synchronous_commit")


@uses_pg
async def test_the_database_clock_is_read_in_epoch_seconds(cluster: ClusterDb) -> None:
    conn = await cluster.connect()
    try:
        before = time.time()
        now = await db.db_now(conn)
        after = time.time()
    finally:
        await conn.close()
    assert before - 1.0 <= now <= after + 1.0  # the same machine: the clocks agree closely


@uses_pg
async def test_a_password_from_the_credential_file_logs_in(
    cluster: ClusterDb, tmp_path: Path
) -> None:
    (tmp_path / "db_password").write_text(cluster.server.password + "\n")
    locked = ClusterDb(server=cluster.server, schema=cluster.schema, user=LOCKED_ROLE)
    conninfo, password = db.connect_info(
        locked.config(password_env="DB_PW"),
        {"CREDENTIALS_DIRECTORY": str(tmp_path), "DB_PW": "wrong"},
    )
    assert password == cluster.server.password
    conn = await db.connect(locked.config(), conninfo)
    try:
        cur = await conn.execute("SELECT current_user")
        assert await cur.fetchone() == (LOCKED_ROLE,)
    finally:
        await conn.close()


@uses_pg
async def test_a_wrong_password_is_unavailable_without_the_password(cluster: ClusterDb) -> None:
    locked = ClusterDb(server=cluster.server, schema=cluster.schema, user=LOCKED_ROLE)
    config = locked.config(password_env="DB_PW")
    conninfo, _ = db.connect_info(config, {"DB_PW": "not-the-password-xyz"})
    with pytest.raises(Unavailable) as caught:
        await db.connect(config, conninfo)
    message = caught.value.message
    assert message.startswith("the database is unreachable: ")
    assert "password authentication failed" in message
    assert "not-the-password-xyz" not in message
    assert "\n" not in message


@uses_pg
async def test_a_closed_port_is_unavailable_with_a_one_line_reason(cluster: ClusterDb) -> None:
    config = cluster.config(url=f"postgresql://postgres@127.0.0.1:{free_port()}/scheduler")
    conninfo, _ = db.connect_info(config, {})
    with pytest.raises(Unavailable) as caught:
        await db.connect(config, conninfo)
    assert caught.value.code == "unavailable"
    assert "Connection refused" in caught.value.message
    assert "\n" not in caught.value.message


@uses_pg
async def test_a_pool_that_cannot_connect_in_time_is_unavailable(cluster: ClusterDb) -> None:
    config = cluster.config(url=f"postgresql://postgres@127.0.0.1:{free_port()}/scheduler")
    conninfo, _ = db.connect_info(config, {})
    pool = await db.open_pool(config, conninfo, timeout=0.3)
    try:
        with pytest.raises(Unavailable, match="the database is unreachable"), db.db_errors():
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
    finally:
        await pool.close()
    with pytest.raises(Unavailable, match="the database is unreachable"):
        await db.open_pool(config, conninfo, wait=0.3)


def test_only_unreachable_errors_are_mapped() -> None:
    with pytest.raises(psycopg.errors.UniqueViolation), db.db_errors():
        raise psycopg.errors.UniqueViolation("duplicate key")
    with pytest.raises(Unavailable, match="terminating connection"), db.db_errors():
        raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    with pytest.raises(Unavailable, match=r"\[redacted\]"), db.db_errors("pw-123"):
        raise psycopg.OperationalError("could not connect with pw-123\nsecond line")
    assert db.is_unreachable(psycopg.errors.TooManyConnections("too many"))
    assert not db.is_unreachable(psycopg.errors.SerializationFailure("retry"))
    assert not db.is_unreachable(ValueError("not ours"))
    # What a pooled connection's block already mapped is unreachable too (the event feed
    # retried psycopg's errors only, and an outage stopped the node's engine).
    assert db.is_unreachable(Unavailable("the database is unreachable: server closed"))


@uses_pg
async def test_after_a_restart_the_pool_hands_out_working_connections(
    cluster: ClusterDb,
) -> None:
    server: PgServer = cluster.server
    conninfo, _ = db.connect_info(cluster.config(), {})
    pool = await db.open_pool(cluster.config(), conninfo, wait=10.0, max_size=2)
    try:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        await server.arestart()
        async with pool.connection() as conn:  # the checked-out one was dead: replaced
            cur = await conn.execute("SELECT current_setting('search_path')")
            assert await cur.fetchone() == (f'"{cluster.schema}"',)
    finally:
        await pool.close()


def test_advisory_keys_are_stable_signed_64_bit_numbers() -> None:
    key = db.advisory_key("migrate", "scheduler")
    assert key == db.advisory_key("migrate", "scheduler")
    assert key != db.advisory_key("migrate", "scheduler2")
    assert db.advisory_key("a", "bc") != db.advisory_key("ab", "c")
    assert -(2**63) <= key < 2**63
