"""What every node of a cluster promises its clients, with real daemons on a real PostgreSQL:
one node per ``node_id``, the same status card everywhere, read-your-writes on the writer and
the job on every other node at once, event streams that resume on another node, and static
``[[jobs]]`` installed once however many nodes start together (issue 13, "Interface").
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.cluster.conftest import ClusterDb
from tests.cluster.daemons import Nodes, Receiver, rows
from tests.daemon_proc import DaemonProcess, Daemons
from tests.polling import until

pytestmark = pytest.mark.integration

#: The status card's keys that depend on the node answering, not on the job set.
NODE_KEYS = ("cluster",)
#: The card's counts, as the tables give them.
CARD_COUNTS = {
    "pendingJobs": "pending",
    "runningJobs": "running",
    "completedJobs": "completed",
    "failedJobs": "failed",
    "cancelledJobs": "cancelled",
    "pausedJobs": "paused",
}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = Receiver()
    await made.start()
    yield made
    await made.close()


@pytest.fixture
async def nodes(
    daemons: Daemons, cluster: ClusterDb, tmp_path: Path, receiver: Receiver
) -> AsyncIterator[Nodes]:
    await cluster.migrate()
    made = Nodes(daemons, cluster, tmp_path, receiver, lease=2.0)
    yield made
    made.close()
    await daemons.stop_all()


# --- guarantee 6: one live process per node_id -----------------------------------------------


async def test_a_second_process_with_a_live_node_id_refuses_to_start_naming_it(
    nodes: Nodes,
) -> None:
    (first,) = await nodes.start("twin")
    (nodes.root / "second").mkdir()
    second = DaemonProcess(nodes.root / "second", "")
    second.config.write_text(first.config.read_text().replace(str(first.port), str(second.port)))
    with pytest.raises(RuntimeError, match="daemon exited") as refused:
        await nodes.daemons.start(second)
    assert second.proc is not None
    assert second.proc.returncode not in (0, None)
    assert "'twin' is in use by a live scheduler" in str(refused.value)
    code, _, _ = await first.request("GET", "/healthz")  # the first one is untouched
    assert code == 200


# --- the status card ------------------------------------------------------------------------


async def test_every_node_shows_the_same_counts_within_a_second_of_quiet(
    nodes: Nodes, receiver: Receiver, cluster: ClusterDb
) -> None:
    names = ["a", "b", "c"]
    await nodes.start(*names)
    later = {"task": "hook", "schedule": {"delay": "1h"}}
    for n in range(12):  # writes on every node, one after the other
        job = await nodes.create(names[n % 3], later if n % 4 else {"task": "hook"})
        if n % 5 == 1:
            await _ok(nodes[names[(n + 1) % 3]], "POST", f"/api/jobs/{job}/cancel")
        elif n % 5 == 2:
            await _ok(nodes[names[(n + 2) % 3]], "POST", f"/api/jobs/{job}/pause")
    await until(lambda: _quiet(cluster), "the runs to end", 10.0)
    quiet = time.monotonic()
    truth = await _counts(cluster)
    cards: dict[str, dict[str, Any]] = {}
    for name in names:
        card = await until(functools.partial(_card_matching, nodes[name], truth), name, 5.0)
        assert time.monotonic() - quiet <= 1.0, f"{name} took {time.monotonic() - quiet:.2f} s"
        cards[name] = card
    for name, card in cards.items():
        assert "error" not in card
        assert card["cluster"]["node"] == name
        assert card["cluster"]["replicaLagMs"] >= 0
        others = {key: value for key, value in card.items() if key not in NODE_KEYS}
        assert others == {k: v for k, v in cards["a"].items() if k not in NODE_KEYS}, name
    await until(lambda: _all_see(nodes, names, 3), "every node to count 3 live nodes", 5.0)


async def _ok(node: DaemonProcess, method: str, path: str, **kwargs: Any) -> Any:
    code, body, _ = await node.request(method, path, **kwargs)
    assert code in (200, 201, 202, 204), (method, path, code, body)
    return body


async def _quiet(cluster: ClusterDb) -> bool:
    busy = await rows(
        cluster,
        "SELECT (SELECT count(*) FROM inflight) + (SELECT count(*) FROM jobs"
        " WHERE wake <= extract(epoch FROM clock_timestamp()))",
    )
    return int(busy[0][0]) == 0


async def _counts(cluster: ClusterDb) -> dict[str, int]:
    found = dict(await rows(cluster, "SELECT status, count(*) FROM jobs GROUP BY status"))
    out = {key: int(found.get(status, 0)) for key, status in CARD_COUNTS.items()}
    out["totalJobs"] = sum(int(n) for n in found.values())
    return out


async def _card_matching(node: DaemonProcess, truth: dict[str, int]) -> dict[str, Any] | None:
    code, card, _ = await node.request("GET", "/api/scheduler")
    assert code == 200, card
    return card if {key: card[key] for key in truth} == truth else None


async def _all_see(nodes: Nodes, names: list[str], live: int) -> bool:
    for name in names:
        _, card, _ = await nodes[name].request("GET", "/api/scheduler")
        if card["cluster"]["nodes"] != live:
            return False
    return True


# --- one job set: read-your-writes, and every node at once -----------------------------------


async def test_a_job_written_on_one_node_is_changed_and_cancelled_on_the_others_at_once(
    nodes: Nodes,
) -> None:
    a, b, c = await nodes.start("a", "b", "c")
    for _ in range(10):
        job = await nodes.create("a", {"task": "hook", "schedule": {"delay": "1h"}})
        assert (await _ok(a, "GET", f"/api/jobs/{job}"))["status"] == "pending"  # the writer
        changed = await _ok(b, "PATCH", f"/api/jobs/{job}", json={"priority": "high"})
        assert changed["priority"] == "high"
        assert (await _ok(b, "GET", f"/api/jobs/{job}"))["priority"] == "high"  # b wrote it
        cancelled = await _ok(c, "POST", f"/api/jobs/{job}/cancel")
        assert cancelled["status"] == "cancelled"
        assert (await _ok(c, "GET", f"/api/jobs/{job}"))["status"] == "cancelled"

    async def a_sees_it() -> bool:
        code, found, _ = await a.request("GET", f"/api/jobs/{job}")
        return code == 200 and found["status"] == "cancelled" and found["priority"] == "high"

    await until(a_sees_it, "a to see b's and c's changes", 1.0)


async def test_a_job_created_on_one_node_is_readable_on_another_at_once(nodes: Nodes) -> None:
    """The issue: "a job created on one node is readable ... on any other at once". A client
    that creates on one node and reads on another (a load balancer between them) must not get
    a 404 for a job that was acknowledged."""
    a, b = await nodes.start("a", "b")
    missing = []
    for _ in range(20):
        job = await nodes.create("a", {"task": "hook", "schedule": {"delay": "1h"}})
        code, _, _ = await b.request("GET", f"/api/jobs/{job}")
        if code != 200:
            missing.append((job, code))
    assert not missing, f"{len(missing)} of 20 acknowledged jobs not readable on b at once"
    del a


# --- events ----------------------------------------------------------------------------------


async def test_an_event_stream_resumes_on_another_node_from_its_last_event_id(
    nodes: Nodes,
) -> None:
    a, _, c = await nodes.start("a", "b", "c")
    body = {"task": "hook", "schedule": {"delay": "1h"}}
    before: list[str] = []
    stream = asyncio.create_task(_events(a, lambda got: len(_created(got)) == 3, headers={}))
    await asyncio.sleep(0.3)  # the stream is open: it gets what is created from now on
    before = [await nodes.create("b", body) for _ in range(3)]
    seen = await stream
    assert _created(seen) == before
    last = seen[-1][0]
    after = [await nodes.create("b", body) for _ in range(3)]
    resumed = await _events(c, lambda got: len(_created(got)) == 3, headers={"Last-Event-ID": last})
    ids = [int(event_id) for event_id, _, _ in resumed]
    assert ids == sorted(set(ids))  # in order, none twice
    assert min(ids) > int(last)  # nothing before the resume point is sent again
    assert _created(resumed) == after  # and nothing after it is missing


Event = tuple[str, str, dict[str, Any]]  # (id, type, data)


async def _events(
    node: DaemonProcess, enough: Any, *, headers: dict[str, str], within: float = 5.0
) -> list[Event]:
    """The stream's events from the start (or ``Last-Event-ID``) until ``enough(events)``."""
    got: list[Event] = []
    event_id, kind = "", ""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within)) as http,
        http.get(node.url + "/api/events", headers=headers) as resp,
    ):
        assert resp.status == 200
        async for raw in resp.content:
            line = raw.decode().rstrip("\r\n")  # aiohttp-sse ends lines with CRLF
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and event_id:
                got.append((event_id, kind, json.loads(line[6:])))
                if enough(got):
                    return got
    raise AssertionError(f"the stream ended with {got}")


def _created(events: list[Event]) -> list[str]:
    return [data["jobId"] for _, kind, data in events if kind == "job-created"]


# --- static jobs -----------------------------------------------------------------------------

STATIC = """
[[jobs]]
name = "nightly"
task = "hook"
cron = "0 3 * * *"

[[jobs]]
name = "hourly"
task = "hook"
every = "1h"
"""


async def test_static_jobs_are_installed_once_when_three_nodes_start_together(
    nodes: Nodes, cluster: ClusterDb
) -> None:
    nodes.extra = STATIC
    await nodes.start("a", "b", "c")
    found = await rows(cluster, "SELECT name, count(*) FROM jobs GROUP BY name ORDER BY name")
    assert found == [("hourly", 1), ("nightly", 1)]
    for name in ("a", "b", "c"):
        node = nodes[name]
        wanted = {"totalJobs": 2, "pendingJobs": 2}
        card = await until(functools.partial(_card_matching, node, wanted), name, 2.0)
        assert card["totalJobs"] == 2
    # A node restarted with the same file changes nothing.
    versions = await rows(cluster, "SELECT name, id, version FROM jobs ORDER BY name")
    await nodes["b"].stop()
    await nodes["b"].start()
    assert await rows(cluster, "SELECT name, id, version FROM jobs ORDER BY name") == versions
