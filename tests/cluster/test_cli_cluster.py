"""``scheduler cluster init|status|import`` and ``scheduler check --connect``, run as a user
runs them: the installed command in a subprocess, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.cluster.conftest import ClusterDb
from tests.cluster.pg import LOCKED_ROLE
from tests.cluster.samples import every_kind_of_job, runs_of, write_single_box_state
from tests.daemon_proc import free_port

pytestmark = pytest.mark.integration


class Done(NamedTuple):
    code: int
    out: str
    err: str


async def scheduler(
    *args: str, cwd: Path, env: dict[str, str] | None = None, within: float = 30.0
) -> Done:
    """``python -m scheduler ARGS`` to its end, with ``env`` added to the environment."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scheduler", *args, cwd=cwd, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=within)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


def config_file(tmp_path: Path, cluster: ClusterDb, **overrides: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(cluster.toml(**overrides))
    return path


def where(cluster: ClusterDb) -> str:
    return f"database 127.0.0.1:{cluster.server.port}/scheduler schema {cluster.schema}"


async def test_init_creates_the_schema_then_finds_it_done(
    cluster: ClusterDb, tmp_path: Path
) -> None:
    config = str(config_file(tmp_path, cluster))
    first = await scheduler("cluster", "init", "-c", config, cwd=tmp_path)
    assert first == Done(0, f"created: {where(cluster)} version 1\n", "")
    again = await scheduler("cluster", "init", "-c", config, cwd=tmp_path)
    assert again == Done(0, f"already at version 1: {where(cluster)}\n", "")


async def test_two_inits_at_once_create_the_schema_once(cluster: ClusterDb, tmp_path: Path) -> None:
    config = str(config_file(tmp_path, cluster))
    both = await asyncio.gather(
        *(scheduler("cluster", "init", "-c", config, cwd=tmp_path) for _ in range(2))
    )
    assert sorted(done.out for done in both) == [
        f"already at version 1: {where(cluster)}\n",
        f"created: {where(cluster)} version 1\n",
    ]
    assert [done.code for done in both] == [0, 0]


async def test_check_connect_reports_the_database_and_the_schema_version(
    cluster: ClusterDb, tmp_path: Path
) -> None:
    config = str(config_file(tmp_path, cluster))
    before = await scheduler("check", "-c", config, "--connect", cwd=tmp_path)
    assert before.code == 78
    assert before.out.splitlines() == [
        f"ok: {config}",
        f"database schema '{cluster.schema}' has no scheduler tables yet: create them with "
        "`scheduler cluster init -c CONFIG`",
    ]
    await cluster.migrate()
    after = await scheduler("check", "-c", config, "--connect", cwd=tmp_path)
    assert after == Done(0, f"ok: {config}\nok: {where(cluster)} version 1\n", "")
    plain = await scheduler("check", "-c", config, cwd=tmp_path)  # no --connect: no database
    assert plain == Done(0, f"ok: {config}\n", "")


async def test_a_wrong_password_is_never_printed_and_the_credential_file_wins(
    cluster: ClusterDb, tmp_path: Path
) -> None:
    locked = ClusterDb(server=cluster.server, schema=cluster.schema, user=LOCKED_ROLE)
    config = str(config_file(tmp_path, locked, password_env='"DB_PW"'))
    wrong = "wrong-password-0123"
    env = {"DB_PW": wrong}
    init = await scheduler("cluster", "init", "-c", config, cwd=tmp_path, env=env)
    check = await scheduler("check", "-c", config, "--connect", cwd=tmp_path, env=env)
    assert (init.code, check.code) == (69, 78)
    assert "the database is unreachable: " in init.err
    assert "password authentication failed" in check.out
    for done in (init, check):
        assert wrong not in done.out + done.err
        assert cluster.server.password not in done.out + done.err
    # The credential file wins over the variable: the same commands now log in.
    (tmp_path / "db_password").write_text(cluster.server.password)
    env["CREDENTIALS_DIRECTORY"] = str(tmp_path)
    init = await scheduler("cluster", "init", "-c", config, cwd=tmp_path, env=env)
    assert init == Done(0, f"created: {where(cluster)} version 1\n", "")
    check = await scheduler("check", "-c", config, "--connect", cwd=tmp_path, env=env)
    assert (check.code, check.out.splitlines()[-1]) == (0, f"ok: {where(cluster)} version 1")


async def test_a_role_without_rights_on_the_schema_gets_the_reason_not_a_traceback(
    cluster: ClusterDb, tmp_path: Path
) -> None:
    await cluster.migrate()  # as postgres: the locked role may not read these tables
    (tmp_path / "db_password").write_text(cluster.server.password)
    locked = ClusterDb(server=cluster.server, schema=cluster.schema, user=LOCKED_ROLE)
    config = str(config_file(tmp_path, locked))
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    status = await scheduler("cluster", "status", "-c", config, cwd=tmp_path, env=env)
    assert status.code == 1
    assert status.err.startswith("scheduler cluster status: the database refused: permission")
    assert "Traceback" not in status.err


async def test_an_unreachable_database_exits_69_and_says_so(
    cluster: ClusterDb, tmp_path: Path
) -> None:
    url = f'"postgresql://postgres@127.0.0.1:{free_port()}/scheduler"'
    config = str(config_file(tmp_path, cluster, url=url))
    started = time.monotonic()
    done = await scheduler("cluster", "init", "-c", config, cwd=tmp_path)
    assert done.code == 69
    assert done.err.startswith("scheduler cluster init: the database is unreachable: ")
    assert "Connection refused" in done.err
    assert time.monotonic() - started < 15
    check = await scheduler("check", "-c", config, "--connect", cwd=tmp_path)
    assert check.code == 78
    assert "the database is unreachable" in check.out


async def test_a_config_without_cluster_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[scheduler]\n")
    done = await scheduler("cluster", "status", "-c", str(config), cwd=tmp_path)
    assert done == Done(78, "", f"{config}: has no [cluster] section (cluster mode is off)\n")


async def test_status_lists_nodes_runs_and_jobs(cluster: ClusterDb, tmp_path: Path) -> None:
    config = str(config_file(tmp_path, cluster))
    refused = await scheduler("cluster", "status", "-c", config, cwd=tmp_path)
    assert refused.code == 78
    assert "scheduler cluster init -c CONFIG" in refused.err
    await cluster.migrate()
    empty = await scheduler("cluster", "status", "-c", config, cwd=tmp_path)
    assert empty.code == 0, empty
    assert "(no node has registered)" in empty.out
    await fill_status_tables(cluster)
    table = await scheduler("cluster", "status", "-c", config, cwd=tmp_path)
    assert table.code == 0, table
    lines = table.out.splitlines()
    assert all(len(line) <= 80 for line in lines), table.out
    assert lines[0] == f"database    127.0.0.1:{cluster.server.port}/scheduler schema" + (
        f" {cluster.schema} version 1"
    )
    assert lines[1] == "cluster     PAUSED; 1 of 2 nodes alive"
    assert lines[2] == "in flight   3 runs"
    assert lines[3] == "housekeeper alpha"
    assert lines[4:6] == [
        "jobs        1 total",
        "            1 pending, 0 running, 0 completed, 0 failed, 0 cancelled, 0 paused",
    ]
    assert "WARNING     live nodes run different configs" not in table.out
    header = lines.index(next(line for line in lines if line.startswith("NODE")))
    alpha, beta = lines[header + 1 :]
    assert alpha.split() == ["alpha", "host-a", "101", "2", "0", alpha.split()[5], "yes",
                             "+0.250s", "12ms", "2+1"]  # fmt: skip
    assert beta.split()[0] == "beta"
    assert beta.split()[6] == "no"


async def test_status_json_is_one_document_for_scripts(cluster: ClusterDb, tmp_path: Path) -> None:
    config = str(config_file(tmp_path, cluster))
    await cluster.migrate()
    await fill_status_tables(cluster)
    done = await scheduler("cluster", "status", "-c", config, "--json", cwd=tmp_path)
    assert done.code == 0, done
    doc = json.loads(done.out)
    assert doc["database"] == f"127.0.0.1:{cluster.server.port}/scheduler schema {cluster.schema}"
    assert (doc["version"], doc["schema"], doc["paused"]) == (1, cluster.schema, True)
    assert (doc["aliveNodes"], doc["inflight"], doc["configMismatch"]) == (1, 3, False)
    assert doc["housekeeper"]["node"] == "alpha"
    assert doc["housekeeper"]["active"] is True
    assert doc["jobs"]["pending"] == 1
    assert doc["jobs"]["total"] == 1
    alpha, beta = doc["nodes"]
    assert alpha["nodeId"] == "alpha"
    assert (alpha["alive"], alpha["inflight"], alpha["staleInflight"]) == (True, 2, 1)
    assert alpha["clockSkew"] == 0.25
    assert alpha["replicaLag"] == 0.012
    lease_end = datetime.fromisoformat(alpha["leaseUntil"]) - datetime.fromisoformat(
        alpha["heartbeatAt"]
    )
    assert lease_end.total_seconds() == pytest.approx(cluster.lease)
    assert 0 <= alpha["heartbeatAge"] < 5
    assert (beta["nodeId"], beta["alive"], beta["inflight"]) == ("beta", False, 0)
    assert beta["heartbeatAge"] > 60


async def fill_status_tables(cluster: ClusterDb) -> None:
    """Two nodes (alpha alive, beta silent for 2 min), alpha's runs (two of this epoch, one
    of an older one), a pending job, the cluster paused, alpha holding the housekeeper lease."""
    conn = await cluster.connect()
    now = "extract(epoch FROM clock_timestamp())::float8"
    try:
        await conn.execute(
            "INSERT INTO nodes (node_id, epoch, slot, heartbeat_at, started_at, host, pid,"
            f" config_hash, version, clock_skew, replica_lag) VALUES"
            f" ('alpha', 2, 0, {now} - 1, {now} - 100, 'host-a', 101, 'h1', '0.1.0', 0.25, 0.012),"
            f" ('beta', 5, 1, {now} - 120, {now} - 500, 'host-b', 202, 'h2', '0.1.0', 0, 0)"
        )
        for job_id, epoch in ((1, 2), (2, 2), (3, 1)):
            await conn.execute(
                "INSERT INTO inflight (job_id, fire, attempt, node_id, epoch, task, started,"
                f" lease_until, manual) VALUES (%s, 0, 1, 'alpha', %s, 't', 0, {now} + 10, false)",
                [job_id, epoch],
            )
        await conn.execute(
            "INSERT INTO jobs (id, version, status, priority, task, source, record)"
            " VALUES (1, 1, 'pending', 2, 't', 'api', '\\x00')"
        )
        await conn.execute("UPDATE meta SET value = 'true' WHERE key = 'paused'")
        await conn.execute(
            "UPDATE meta SET value = jsonb_build_object('node', 'alpha', 'until', "
            f"{now} + 30) WHERE key = 'housekeeper'"
        )
    finally:
        await conn.close()


async def test_import_moves_a_single_box_into_the_schema_once(
    cluster: ClusterDb, tmp_path: Path
) -> None:
    config = str(config_file(tmp_path, cluster))
    jobs = every_kind_of_job()
    runs = {job.id: runs_of(job, 2) for job in jobs}
    await write_single_box_state(tmp_path / "state", jobs, runs, paused=True)
    args = ("cluster", "import", "-c", config, "--state", str(tmp_path / "state"))
    refused = await scheduler(*args, cwd=tmp_path)
    assert refused.code == 78  # no tables yet
    assert "scheduler cluster init" in refused.err
    await cluster.migrate()
    done = await scheduler(*args, cwd=tmp_path)
    assert done == Done(
        0,
        f"imported {len(jobs)} jobs and {2 * len(jobs)} runs into {where(cluster)}"
        " (paused; 1 were running (onCrash applies))\n",
        "",
    )
    again = await scheduler(*args, cwd=tmp_path)
    assert again.code == 1
    assert again.err == (
        f"scheduler cluster import: the cluster's schema already holds {len(jobs)} jobs: import"
        " only into an empty one (a fresh cluster.schema, after scheduler cluster init)\n"
    )
    status = await scheduler("cluster", "status", "-c", config, "--json", cwd=tmp_path)
    assert json.loads(status.out)["jobs"]["total"] == len(jobs)


WITHOUT_DRIVER = """
import sys
sys.modules["psycopg"] = None  # as if the cluster extra were not installed
from scheduler.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


async def test_without_the_driver_the_commands_say_how_to_install_it(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[cluster]\nurl = "postgresql://u@127.0.0.1/db"\nnode_id = "n"\n')
    for args, stream, line in (
        (("cluster", "init", "-c", str(config)), 2, "scheduler cluster: cluster mode needs the"),
        (("check", "-c", str(config), "--connect"), 1, f"{config}: --connect needs the"),
        (("run", "-c", str(config)), 2, "cluster: cluster mode needs the"),
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WITHOUT_DRIVER, *args, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        text = (out if stream == 1 else err).decode()
        assert proc.returncode in (1, 78), (out, err)
        assert line in text, (out, err)
        assert "pip install 'scheduler[cluster]'" in text
