"""``scheduler cluster init|status|import`` and the database half of ``scheduler check --connect``.

Each command reads the config (``-c``), connects once as a node would (the same password
sources, ``search_path`` and session settings; see :mod:`.db`) and prints one answer.

Exit status (sysexits(3) where one fits): 0 done; 1 refused (the schema is not empty, a node
or a single box is running, the database denies the role something); 65 the state directory is
damaged; 69 the database cannot be reached; 78 the config or the schema's version is wrong (the
message says what to run). Errors go to stderr, one line each, never with the password in them.

``status`` reads the tables only (nodes, their heartbeats against the database's clock, when
their leases end, their clock skew and replica lag as of their last heartbeat, runs in flight,
job counts, the pause flag, the housekeeper). ``--json`` prints the same as one JSON document.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import unicodedata
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import psycopg

from scheduler.clock import to_datetime
from scheduler.cluster import db
from scheduler.cluster.importer import import_state, locked_state
from scheduler.cluster.schema import apply_migrations, check_version
from scheduler.config.load import load_config
from scheduler.config.model import ClusterConfig, Config
from scheduler.errors import ConfigError, CorruptState, InvalidState, PersistenceError, Unavailable
from scheduler.i18n import N_, _
from scheduler.model import JobStatus
from scheduler.persistence.recovery import RecoveredState

EX_REFUSED = 1
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_CONFIG = 78
WIDTH = 80


def cluster_command(
    action: str,
    config_path: str,
    *,
    as_json: bool = False,
    state: str | None = None,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    problem_text: Callable[[str], str] = str,
) -> int:
    """Run ``scheduler cluster ACTION`` (``init``, ``status`` or ``import``); the exit status.
    ``problem_text`` puts a config problem in the operator's language (the command line passes
    its own: this layer may not import it)."""
    out, err = out or sys.stdout, err or sys.stderr
    env = os.environ if environ is None else environ
    try:
        config = load_config(config_path)
        cluster = _cluster_of(config, config_path)
        if action == "init":
            asyncio.run(_init(cluster, env, out))
        elif action == "status":
            asyncio.run(_status(cluster, env, out, as_json=as_json))
        else:
            assert state is not None, "import needs --state"
            _import(config, cluster, Path(state), env, out)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem_text(problem), file=err)
        return EX_CONFIG
    except Unavailable as exc:
        print(f"scheduler cluster {action}: {exc.message}", file=err)
        return EX_UNAVAILABLE
    except CorruptState as exc:
        print(f"scheduler cluster {action}: {exc.message}", file=err)
        return EX_DATAERR
    except (InvalidState, PersistenceError) as exc:
        print(f"scheduler cluster {action}: {exc.message}", file=err)
        return EX_REFUSED
    return 0


def connect_check(
    config: Config,
    config_path: str,
    *,
    environ: Mapping[str, str],
    problem_text: Callable[[str], str] = str,
) -> int:
    """``scheduler check --connect``: reach the database and check the schema's version.
    Prints ``ok: database HOST:PORT/DB schema S version N`` (0), or the problem (78)."""
    try:
        cluster = _cluster_of(config, config_path)
        print(asyncio.run(_connect_check(cluster, environ)))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem_text(problem))
        return EX_CONFIG
    except (Unavailable, InvalidState) as exc:
        print(f"{config_path}: {exc.message}")
        return EX_CONFIG
    return 0


def _cluster_of(config: Config, config_path: str) -> ClusterConfig:
    if config.cluster is None:
        missing = _("{path}: has no [cluster] section (cluster mode is off)")
        raise ConfigError([missing.format(path=config_path)])
    return config.cluster


@contextlib.asynccontextmanager
async def _session(
    cluster: ClusterConfig, environ: Mapping[str, str]
) -> AsyncIterator[tuple[db.Connection, str]]:
    """One configured connection and ``database HOST:PORT/DB schema S`` for messages. An
    unreachable database, then or later in the block, raises Unavailable; any other refusal
    by the database (no privilege on the schema, say) InvalidState with its first line."""
    conninfo, password = db.connect_info(cluster, environ)
    conn = await db.connect(cluster, conninfo)
    try:
        with db.db_errors(password):
            yield conn, _("database {location}").format(location=db.location(conn, cluster.schema))
    except psycopg.Error as exc:
        refused = _("the database refused: {reason}").format(reason=db.reason(exc, password))
        raise InvalidState(refused) from None
    finally:
        await conn.close()


async def _connect_check(cluster: ClusterConfig, environ: Mapping[str, str]) -> str:
    async with _session(cluster, environ) as (conn, where):
        version = await check_version(conn, cluster.schema)
    return _("ok: {where} version {version}").format(where=where, version=version)


async def _init(cluster: ClusterConfig, environ: Mapping[str, str], out: TextIO) -> None:
    async with _session(cluster, environ) as (conn, where):
        before, after = await apply_migrations(conn, cluster.schema)
    if before == 0:
        said = _("created: {where} version {after}")
    elif before == after:
        said = _("already at version {after}: {where}")
    else:
        said = _("migrated: {where} from version {before} to version {after}")
    print(said.format(where=where, before=before, after=after), file=out)


def _import(
    config: Config, cluster: ClusterConfig, state: Path, environ: Mapping[str, str], out: TextIO
) -> None:
    async def write(loaded: RecoveredState) -> str:
        async with _session(cluster, environ) as (conn, where):
            await check_version(conn, cluster.schema)
            done = await import_state(conn, loaded, lease=cluster.lease)
        running = _("; {n} were running (onCrash applies)") if done.running else ""
        paused = _("paused") if done.paused else _("not paused")
        said = _("imported {jobs} jobs and {runs} runs into {where} ({paused}{running})")
        return said.format(
            jobs=done.jobs,
            runs=done.runs,
            where=where,
            paused=paused,
            running=running.format(n=done.running),
        )

    with locked_state(state, history=config.scheduler.history) as loaded:
        print(asyncio.run(write(loaded)), file=out)


# --- status -----------------------------------------------------------------------------------


async def _status(
    cluster: ClusterConfig, environ: Mapping[str, str], out: TextIO, *, as_json: bool
) -> None:
    async with _session(cluster, environ) as (conn, _where):
        version = await check_version(conn, cluster.schema)
        doc = await read_status(conn, cluster)
        location = db.location(conn, cluster.schema)
    doc = {"database": location, "version": version, **doc}
    out.write(json.dumps(doc, indent=2) + "\n" if as_json else render_status(doc))


async def read_status(conn: db.Connection, cluster: ClusterConfig) -> dict[str, Any]:
    """What the tables say about the cluster now (see the module docstring), as JSON values."""
    now = await db.db_now(conn)
    cur = await conn.execute("SELECT to_jsonb(n) FROM nodes n ORDER BY node_id")
    rows = [dict(row[0]) for row in await cur.fetchall()]
    cur = await conn.execute("SELECT node_id, epoch, count(*) FROM inflight GROUP BY 1, 2")
    inflight = {(str(node), int(epoch)): int(n) for node, epoch, n in await cur.fetchall()}
    cur = await conn.execute("SELECT status, count(*) FROM jobs GROUP BY status")
    counts = {str(status): int(n) for status, n in await cur.fetchall()}
    cur = await conn.execute("SELECT key, value FROM meta")
    meta = {str(key): value for key, value in await cur.fetchall()}
    nodes = [_node(row, now, cluster.lease, inflight) for row in rows]
    hashes = {node["configHash"] for node in nodes if node["alive"]}
    keeper = meta.get("housekeeper") or {}
    until = float(keeper.get("until") or 0)
    return {
        "schema": cluster.schema,
        "now": _iso(now),
        "paused": bool(meta.get("paused", False)),
        "housekeeper": {
            "node": keeper.get("node"),
            "until": _iso(until) if until else None,
            "active": keeper.get("node") is not None and until > now,
        },
        "nodes": nodes,
        "aliveNodes": sum(1 for node in nodes if node["alive"]),
        "configMismatch": len(hashes) > 1,
        "inflight": sum(inflight.values()),
        "jobs": {
            **{s.value: counts.get(s.value, 0) for s in JobStatus},
            "total": sum(counts.values()),
        },
    }


_NODE_KEYS = ("node_id", "host", "pid", "epoch", "slot", "heartbeat_at", "started_at")


def _node(
    row: dict[str, Any], now: float, lease: float, inflight: Mapping[tuple[str, int], int]
) -> dict[str, Any]:
    node, epoch = str(row["node_id"]), int(row["epoch"])
    age = now - float(row["heartbeat_at"])
    stale = sum(n for (who, when), n in inflight.items() if who == node and when != epoch)
    doc: dict[str, Any] = {
        "nodeId": node,
        "host": row["host"],
        "pid": row["pid"],
        "epoch": epoch,
        "slot": row["slot"],
        "startedAt": _iso(float(row["started_at"])),
        "heartbeatAt": _iso(float(row["heartbeat_at"])),
        "heartbeatAge": round(age, 3),
        "leaseUntil": _iso(float(row["heartbeat_at"]) + lease),
        "alive": age <= lease,
        "clockSkew": row.get("clock_skew", 0.0),
        "replicaLag": row.get("replica_lag", 0.0),
        "configHash": row.get("config_hash"),
        "version": row.get("version"),
        "inflight": inflight.get((node, epoch), 0),
        "staleInflight": stale,
    }
    # Whatever else a node reports in its row (replica lag, say) is shown as it is.
    known = {*_NODE_KEYS, "clock_skew", "config_hash", "version", "replica_lag"}
    doc.update({_camel(key): value for key, value in row.items() if key not in known})
    return doc


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _iso(instant: float) -> str:
    return to_datetime(instant).isoformat(timespec="milliseconds")


def render_status(doc: Mapping[str, Any]) -> str:
    """The status as an 80-column table: the cluster's lines, then one row per node. Widths
    count terminal cells: a Korean label takes two a character."""
    jobs = doc["jobs"]
    keeper = doc["housekeeper"]
    state = _("PAUSED") if doc["paused"] else _("running")
    alive = _("{state}; {alive} of {nodes} nodes alive")
    counts = ", ".join(
        _("{count} {status}").format(count=jobs[s.value], status=_(_STATUSES[s.value]))
        for s in JobStatus
    )
    rows = [
        (_("database"), _("{database} version {version}").format(**doc)),
        (_("cluster"), alive.format(state=state, alive=doc["aliveNodes"], nodes=len(doc["nodes"]))),
        (_("in flight"), _("{count} runs").format(count=doc["inflight"])),
        (_("housekeeper"), keeper["node"] if keeper["active"] else _("none (no lease held)")),
        (_("jobs"), _("{count} total").format(count=jobs["total"])),
        ("", counts),
    ]
    if doc["configMismatch"]:
        rows.append((_("WARNING"), _("live nodes run different configs (configHash in --json)")))
    cells = max(12, *(_cells(name) + 1 for name, _value in rows))
    lines = [_fit(_pad(name, cells) + value) for name, value in rows]
    lines += ["", _row(*(_(header) for header in _HEADER))]
    lines += [_row(*_node_cells(node)) for node in doc["nodes"]] or [_("(no node has registered)")]
    return "\n".join(lines) + "\n"


_HEADER = (
    N_("NODE"),
    N_("HOST"),
    N_("PID"),
    N_("EPOCH"),
    N_("SLOT"),
    N_("BEAT"),
    N_("ALIVE"),
    N_("SKEW"),
    N_("LAG"),
    N_("RUNS"),
)
_WIDTHS = (13, 12, 6, 5, 4, 8, 5, 7, 5, 4)  # 69 + 9 spaces between: 78 columns
#: The job statuses of the counts line (``scheduler status`` says them the same way).
_STATUSES = {
    "pending": N_("pending"),
    "running": N_("running"),
    "completed": N_("completed"),
    "failed": N_("failed"),
    "cancelled": N_("cancelled"),
    "paused": N_("paused"),
}


def _node_cells(node: Mapping[str, Any]) -> tuple[str, ...]:
    runs = str(node["inflight"]) + (f"+{node['staleInflight']}" if node["staleInflight"] else "")
    return (
        str(node["nodeId"]),
        str(node["host"]),
        str(node["pid"]),
        str(node["epoch"]),
        str(node["slot"]),
        _age(float(node["heartbeatAge"])),
        _("yes") if node["alive"] else _("no"),
        f"{float(node['clockSkew']):+.3f}s",
        f"{float(node['replicaLag']) * 1000:.0f}ms",
        runs,
    )


def _row(*cells: str) -> str:
    """One table row: the node and host names left-aligned, the numbers right-aligned."""
    parts = []
    for i, (cell, width) in enumerate(zip(cells, _WIDTHS, strict=True)):
        text = _fit(cell, width)
        parts.append(_pad(text, width) if i < 2 else " " * (width - _cells(text)) + text)
    return " ".join(parts).rstrip()


def _cells(text: str) -> int:
    """Terminal cells of ``text``: wide characters (Hangul, CJK) take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _cells(text))


def _fit(text: str, width: int = WIDTH) -> str:
    if _cells(text) <= width:
        return text
    while _cells(text) > width - 1:
        text = text[:-1]
    return text + "~"


def _age(seconds: float) -> str:
    if seconds < 0:
        return _("ahead")  # a clock ahead of the database's wrote it: see SKEW
    if seconds < 100:
        return f"{seconds:.1f}s"
    if seconds < 6000:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.0f}h"
