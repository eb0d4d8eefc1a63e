"""``GET /api/jobs/{id}/explain`` on a cluster node (real PostgreSQL, the real clock): the node
answers from what the database holds (a job paused with its reason, the cluster-wide pause, a
cancelled job), and says that it does not know whether the daemon was down."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from scheduler.config import Config
from scheduler.runtime.library import Scheduler
from tests.api.harness import app_for
from tests.cluster.conftest import (  # noqa: F401 - the cluster fixtures, for this module too
    ClusterDb,
    cluster,
    pg,
    pg_session,
)

pytestmark = pytest.mark.integration


async def call(client: TestClient[Any, Any], method: str, path: str, **body: Any) -> Any:
    async with client.request(method, path, json=body) as resp:
        assert resp.status in (200, 201), await resp.text()
        return await resp.json()


async def test_a_cluster_node_explains_a_job_from_the_database(
    cluster: ClusterDb,  # noqa: F811 - the fixture imported above
) -> None:
    await cluster.migrate()
    sched = Scheduler(Config(cluster=cluster.config(node_id="n", lease=2.0)), environ={})

    async def work(_payload: Any) -> None:
        return None

    sched.register_task("work", work)
    await sched.start()
    client: TestClient[Any, Any] = TestClient(TestServer(app_for(sched), host="127.0.0.1"))
    await client.start_server()
    try:
        job = await call(client, "POST", "/api/jobs", task="work", schedule={"every": "1h"})
        path = f"/api/jobs/{job['id']}"
        await call(client, "POST", f"{path}/pause", reason="db upgrade", by="dba")
        body = await call(client, "GET", f"{path}/explain")
        assert body["status"] == "paused"
        assert [r["code"] for r in body["reasons"]] == ["paused"]
        assert body["reasons"][0]["details"] == {"by": "dba", "reason": "db upgrade", "until": None}
        assert body["summary"] == (
            "Job 'work' will not run until it is resumed because it was paused by dba "
            "(reason: 'db upgrade')."
        )
        await call(client, "POST", f"{path}/resume")
        await call(client, "POST", "/api/scheduler/pause")
        body = await call(client, "GET", f"{path}/explain")
        assert [r["code"] for r in body["reasons"]] == ["scheduler_paused"]
        await call(client, "POST", "/api/scheduler/resume")
        await call(client, "POST", f"{path}/cancel")
        body = await call(client, "GET", f"{path}/explain")
        assert [r["code"] for r in body["reasons"]] == ["no_next_run"]
        assert body["reasons"][0]["details"]["status"] == "cancelled"
    finally:
        await client.close()
        await sched.stop(grace=0)
