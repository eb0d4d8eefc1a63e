"""``docs/cluster.md`` and the cluster parts of the other documents must not drift from the code.

Each test compares what a document names with what the code really has: the ``[cluster]`` keys
(the config structure, and the example blocks loaded by the real loader), the metric names (as
``/metrics`` exposes them, counters with ``_total``), the status card's ``cluster`` keys, and
every ``scheduler`` command line shown (parsed by the real command line). No database is
needed: the cluster's parts are read, not started.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

pytest.importorskip("psycopg", reason="cluster mode's driver: pip install '.[cluster]'")

from scheduler.cli.main import _parser
from scheduler.cluster.replica import Replica
from scheduler.cluster.runtime import ClusterParts
from scheduler.config import ClusterConfig, load_config
from scheduler.observability.metrics import SchedulerMetrics
from scheduler.store import Store
from tests.docs_text import (
    CONFIG_DOC,
    DOCS,
    ROOT,
    fenced_blocks,
    fields,
    first_column,
    section,
    text,
    ticked,
)

CLUSTER_DOC = DOCS / "cluster.md"
README = ROOT / "README.md"


def parts() -> ClusterParts:
    """A node's parts as the metrics and the status card read them, without a database."""

    async def never() -> Any:
        raise AssertionError("no connection is made")

    replica = Replica(Store(), schema="scheduler", node="box1", connect=never)
    node = SimpleNamespace(live_nodes=2, offset=0.0, lease_lost=0, housekeeper=True)
    engine = SimpleNamespace(claims=0, claim_seconds=0.0, fenced=0)
    stub = SimpleNamespace(node=node, engine=engine, replica=replica)
    return cast(ClusterParts, stub)


def exposed_cluster_metrics() -> set[str]:
    """The cluster metrics' names as ``GET /metrics`` of a node shows them."""
    node = parts()

    class Gauges:
        def metrics(self) -> list[tuple[str, str, str, float]]:
            return ClusterParts.metrics(node)

    body, _ = SchedulerMetrics(Store(), process=False, cluster=Gauges()).render()
    return set(re.findall(r"^# TYPE (scheduler_cluster_\w+) ", body.decode(), re.M))


def test_every_cluster_key_is_in_the_cluster_section_of_the_configuration_page() -> None:
    body = section(CONFIG_DOC, "## ", "`[cluster]`")
    assert first_column(body) == fields(ClusterConfig)


def test_every_cluster_metric_is_documented_and_every_documented_one_exists() -> None:
    served = exposed_cluster_metrics()
    assert len(served) == len(ClusterParts.metrics(parts()))
    table = first_column(section(CLUSTER_DOC, "## ", "Metrics to watch"))
    assert {name for name in table if name.startswith("scheduler_cluster_")} == served
    mentioned = set(re.findall(r"scheduler_cluster_\w+", text(CLUSTER_DOC)))
    assert mentioned - served == set(), "docs/cluster.md names metrics that do not exist"
    operations = section(DOCS / "operations.md", "## ", "Metrics")
    assert served - ticked(operations) == set(), "docs/operations.md misses cluster metrics"
    changelog = set(re.findall(r"scheduler_cluster_\w+", text(ROOT / "CHANGELOG.md")))
    assert changelog == served


def test_the_status_cards_cluster_keys_are_the_documented_ones() -> None:
    served = set(ClusterParts.status(parts()))
    body = section(CLUSTER_DOC, "## ", "The status card")
    assert first_column(body) == served
    example = re.findall(r"```json\n(.*?)```", body, re.S)[0]
    assert set(re.findall(r'"(\w+)":', example)) == {"cluster", *served}


def fenced(body: str) -> list[tuple[str, list[str]]]:
    """``(language, lines)`` of every fenced block of a Markdown text, in order."""
    return [
        (lang, block.splitlines()) for lang, block in re.findall(r"```(\w*)\n(.*?)```", body, re.S)
    ]


def bodies() -> list[tuple[str, str]]:
    """The texts that show cluster commands: the cluster page, the README's section, and the
    pages that point at them."""
    return [
        ("cluster.md", text(CLUSTER_DOC)),
        ("README.md", section(README, "## ", "Cluster mode")),
        ("configuration.md", section(CONFIG_DOC, "## ", "`[cluster]`")),
        ("operations.md", text(DOCS / "operations.md")),
    ]


def argv(line: str) -> list[str]:
    """A shown command's arguments after the program (past ``VAR=value`` and its path)."""
    words = shlex.split(line)
    while words and "=" in words[0]:
        words.pop(0)
    assert words, line
    assert words[0].rsplit("/", 1)[-1] == "scheduler", line
    return words[1:]


def command_lines() -> list[tuple[str, str]]:
    """``(document, line)`` for every ``scheduler cluster``/``scheduler check`` command shown:
    in shell blocks, and in code spans that show no choice of forms (``[...]``, ``|``) and
    elide nothing (``...``)."""
    found = []
    wanted = re.compile(r"(^|\s|/)scheduler (cluster|check) ")
    for name, body in bodies():
        for language, lines in fenced(body):
            for line in lines:
                command = line.split("  #", 1)[0].strip()
                if language == "sh" and wanted.search(command):
                    found.append((name, command))
        for span in re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", body, flags=re.S)):
            if re.match(r"scheduler (cluster|check) ", span) and not re.search(
                r"[\[|]|\.\.\.", span
            ):
                found.append((name, span))
    return found


def test_the_pages_show_every_cluster_command() -> None:
    shown = {tuple(argv(line)[:2]) for _, line in command_lines()}
    wanted = {
        ("cluster", "init"),
        ("cluster", "status"),
        ("cluster", "import"),
        ("check", "--connect"),
    }
    assert wanted <= shown


@pytest.mark.parametrize(("document", "line"), command_lines())
def test_each_cluster_command_shown_is_one_the_command_line_takes(document: str, line: str) -> None:
    args = _parser().parse_args(argv(line))
    assert args.command in ("cluster", "check"), (document, line)


@pytest.mark.parametrize("path", [CLUSTER_DOC, README], ids=lambda p: p.name)
def test_the_cluster_sections_shown_load(path: Path, tmp_path: Path) -> None:
    blocks = [lines for lang, lines in fenced_blocks(path) if lang == "toml"]
    shown = [lines for lines in blocks if lines and lines[0] == "[cluster]"]
    assert shown, f"{path.name}: no [cluster] example"
    for lines in shown:
        config = tmp_path / "config.toml"
        config.write_text("\n".join(lines) + "\n")
        loaded = load_config(config).cluster
        assert loaded is not None
        assert loaded.lease == 10.0
        assert loaded.schema == "scheduler"
