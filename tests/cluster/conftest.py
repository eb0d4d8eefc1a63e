"""Fixtures of the cluster tests: a real PostgreSQL (``tests/cluster/pg.py``) and a fresh schema
per test.

- ``pg``: the session's :class:`~tests.cluster.pg.PgServer` (one per pytest process, so one per
  xdist worker), started again if an earlier test stopped it. A test using it must be marked
  ``integration`` (it starts processes); without PostgreSQL installed it is skipped, saying so.
- ``cluster``: a :class:`ClusterDb` naming a schema no other test uses (not created: run
  ``await cluster.migrate()`` or ``scheduler cluster init``).
- ``pg_factory``: more servers of the test's own (``pg_factory(fsync=True)`` for a durability
  test), each closed at the end of the test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from scheduler.cluster import db, schema
from scheduler.config.model import ClusterConfig
from tests.cluster.pg import SUPERUSER, PgServer, missing_reason

_schemas = itertools.count(1)


@dataclass
class ClusterDb:
    """A schema of its own on the session's server, and how a test reaches it."""

    server: PgServer
    schema: str
    user: str = SUPERUSER
    node_id: str = "node1"
    lease: float = 10.0

    @property
    def url(self) -> str:
        return self.server.url(user=self.user)

    def config(self, **overrides: Any) -> ClusterConfig:
        """The ``[cluster]`` section as a record (no password variable unless given)."""
        base = ClusterConfig(
            url=self.url,
            schema=self.schema,
            node_id=self.node_id,
            lease=self.lease,
            password_env=None,
        )
        return msgspec.structs.replace(base, **overrides)

    def toml(self, **overrides: str) -> str:
        """The ``[cluster]`` section as config.toml text (values are TOML literals, quoted)."""
        values = {
            "url": f'"{self.url}"',
            "schema": f'"{self.schema}"',
            "node_id": f'"{self.node_id}"',
            "lease": f'"{self.lease:g}s"',
            "password_env": '""',
            **overrides,
        }
        return "[cluster]\n" + "".join(f"{key} = {value}\n" for key, value in values.items())

    async def connect(self) -> db.Connection:
        """An autocommit connection with ``search_path`` at this schema (close it when done)."""
        conninfo, _ = db.connect_info(self.config(), {})
        return await db.connect(self.config(), conninfo)

    async def migrate(self) -> int:
        """Create this schema's tables (``scheduler cluster init``)."""
        conn = await self.connect()
        try:
            return await schema.migrate(conn, self.schema)
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def pg_session() -> Iterator[PgServer]:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    server = PgServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg(request: pytest.FixtureRequest, pg_session: PgServer) -> PgServer:
    if request.node.get_closest_marker("integration") is None:
        pytest.fail(f"{request.node.nodeid} uses PostgreSQL: mark it @pytest.mark.integration")
    if not pg_session.running:  # an earlier test stopped it and did not start it again
        pg_session.start()
    return pg_session


@pytest.fixture
def cluster(pg: PgServer) -> ClusterDb:
    return ClusterDb(server=pg, schema=f"test_{next(_schemas)}")


@pytest.fixture
def pg_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., PgServer]]:
    if request.node.get_closest_marker("integration") is None:
        pytest.fail(f"{request.node.nodeid} uses PostgreSQL: mark it @pytest.mark.integration")
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    servers: list[PgServer] = []

    def make(*, fsync: bool = False) -> PgServer:
        servers.append(PgServer(fsync=fsync))
        return servers[-1]

    yield make
    for server in servers:
        server.close()
