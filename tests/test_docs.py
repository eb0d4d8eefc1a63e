"""``docs/`` is the product's reference, so it must not drift from the code.

Each test reads a document and compares it with what the code really serves or accepts: the
routes, query parameters and documents of the HTTP API (from the OpenAPI document and from live
answers), every key of every config structure, every metric, the DST vectors and every
``scheduler next`` example (run through the CLI), and the library examples (run as scripts).
Links in the README, the changelog and the docs point only at files in the repository, and
their anchors exist.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import msgspec
import pytest

from scheduler.api.openapi import document
from scheduler.cli.main import main as cli_main
from scheduler.config import (
    AlertsConfig,
    Config,
    PersistenceConfig,
    SchedulerConfig,
    ServerConfig,
    StaticJob,
    TaskConfig,
)
from scheduler.events import EVENT_TYPES
from scheduler.model import Policy, RetryPolicy
from scheduler.schedules import SCHEDULE_KEYS
from tests.api.harness import Api, running_api
from tests.docs_text import (
    CONFIG_DOC,
    DOCS,
    ROOT,
    fenced_blocks,
    fields,
    first_column,
    section,
    sections,
    text,
    ticked,
)

API = DOCS / "api.md"
_METHODS = ("get", "head", "post", "put", "patch", "delete")


def operations() -> Iterator[tuple[str, str, dict[str, Any], list[dict[str, Any]]]]:
    """``(path, method, operation, parameters)`` of every operation in the OpenAPI document."""
    for path, item in document()["paths"].items():
        for method in _METHODS:
            if method in item:
                op = item[method]
                yield path, method, op, [*item.get("parameters", []), *op.get("parameters", [])]


# --- the HTTP API ------------------------------------------------------------------------


def test_every_route_of_the_openapi_document_has_a_section_in_api_md() -> None:
    headings = " ".join(sections(API, "### "))
    missing = [
        f"{method.upper()} {path}"
        for path, method, _, _ in operations()
        if f"`{method.upper()} {path}`" not in headings and method != "head"
    ]
    assert missing == [], f"routes without a section in docs/api.md: {missing}"


def test_every_section_of_api_md_names_a_real_route() -> None:
    served = {f"{method.upper()} {path}" for path, method, _, _ in operations()}
    for title in sections(API, "### "):
        for route in re.findall(r"`((?:GET|HEAD|POST|PUT|PATCH|DELETE) /[^`]*)`", title):
            assert route in served, f"docs/api.md documents {route!r}, which is not served"


def test_every_query_parameter_is_documented_under_its_route() -> None:
    for path, method, _, params in operations():
        names = [p["name"] for p in params if p["in"] in ("query", "header")]
        if not names or method == "head":
            continue
        body = section(API, "### ", f"`{method.upper()} {path}`")
        for name in names:
            assert f"`{name}`" in body, f"{method.upper()} {path}: parameter {name!r} undocumented"


def test_every_event_type_is_documented() -> None:
    body = section(API, "### ", "`GET /api/events`")
    for event in (*EVENT_TYPES, "stream-overflow"):
        assert f"`{event}`" in body, event


async def live_documents() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The status card, a job and one of its runs, as a running API answers them."""
    async with running_api() as api:
        request = asyncio.create_task(
            api.call("POST", "/api/jobs?wait=true", json={"task": "work", "payload": {}})
        )
        while not request.done():
            await api.clock.advance(0)
        status, created = request.result()
        assert status == 201, created
        run = created.pop("run")
        card = await card_of(api)
        return card, created, run


async def card_of(api: Api) -> dict[str, Any]:
    status, card = await api.call("GET", "/api/scheduler")
    assert status == 200, card
    return dict(card)


def schema_keys(name: str) -> set[str]:
    return set(document()["components"]["schemas"][name]["properties"])


async def test_every_key_of_the_status_card_is_documented_and_the_example_has_them_all() -> None:
    card, _, _ = await live_documents()
    body = section(API, "### ", "`GET /api/scheduler`")
    status = document()["components"]["schemas"]["Status"]["properties"]
    next_job = set(status["nextJob"]["anyOf"][0]["properties"])
    keys = card.keys() | status.keys() | card["jobsByType"].keys() | next_job
    assert keys - ticked(body) == set()
    example = json.loads(re.findall(r"```json\n(.*?)```", body, re.S)[0])
    assert set(example) == set(card), "the example card must show exactly the served keys"
    assert set(example["jobsByType"]) == set(card["jobsByType"])


async def test_every_key_of_the_job_and_run_documents_is_documented() -> None:
    _, job, run = await live_documents()
    job_doc = section(API, "## ", "The job document")
    run_doc = section(API, "## ", "The run document")
    assert (job.keys() | schema_keys("Job")) - ticked(job_doc) == set()
    assert (run.keys() | schema_keys("Run")) - ticked(run_doc) == set()


def test_every_key_of_a_jobs_input_is_documented() -> None:
    body = section(API, "## ", "A job's input")
    assert schema_keys("JobInput") - ticked(body) == set()


# --- configuration -----------------------------------------------------------------------

SECTIONS: dict[str, type[msgspec.Struct]] = {
    "`[server]`": ServerConfig,
    "`[scheduler]`": SchedulerConfig,
    "`[persistence]`": PersistenceConfig,
    "`[tasks.NAME]`": TaskConfig,
    "`[alerts]`": AlertsConfig,
}


def test_every_config_key_is_documented_in_its_section_and_nothing_else() -> None:
    for heading, kind in SECTIONS.items():
        body = section(CONFIG_DOC, "## ", heading)
        assert fields(kind) - first_column(body) == set(), heading
        assert first_column(body) - fields(kind) == set(), f"{heading}: keys the loader refuses"
    retry = section(CONFIG_DOC, "## ", "`[retry]`")
    assert first_column(retry) == fields(RetryPolicy) | {"timeout"}


def test_every_section_and_static_job_key_is_documented() -> None:
    headings = " ".join(sections(CONFIG_DOC, "## "))
    for name in fields(Config) - {"default_timeout", "path"}:
        shown = {"tasks": "[tasks.NAME]", "jobs": "[[jobs]]", "maintenance": "[[maintenance]]"}
        shown_name = shown.get(name, f"[{name}]")
        assert f"`{shown_name}`" in headings, name
    jobs = first_column(section(CONFIG_DOC, "## ", "`[[jobs]]`"))
    keys = (fields(StaticJob) - {"schedule", "policy"}) | fields(Policy) | {"max_retries"}
    keys |= set(SCHEDULE_KEYS)
    assert keys - jobs == set()


# --- metrics -------------------------------------------------------------------------------


async def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    async with running_api() as api, api.client.get("/metrics") as resp:
        assert resp.status == 200
        exposition = await resp.text()
    types = re.findall(r"^# TYPE (scheduler_\w+) ", exposition, re.M)
    served = {name for name in types if not name.endswith("_created")}  # a counter's start time
    body = section(DOCS / "operations.md", "## ", "Metrics")
    documented = {re.sub(r"\{.*", "", key) for key in first_column(body)}
    documented = {key for key in documented if key.startswith("scheduler_")}
    assert served - documented == set(), "metrics missing from docs/operations.md"
    assert documented - served == set(), "docs/operations.md lists metrics that do not exist"


# --- schedules -----------------------------------------------------------------------------

_VECTOR = re.compile(r"^\| `(\{.*\})` \| ([\w/]+) \| ([\dT:-]+) \| (.*) \|$")


def next_json(spec: str, zone: str, after: str, n: int) -> list[str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli_main(["next", spec, "--tz", zone, "--after", after, "-n", str(n), "--json"])
    assert code == 0
    return list(json.loads(out.getvalue()))


def vectors() -> list[tuple[str, str, str, list[str]]]:
    found = []
    for line in text(DOCS / "schedules.md").splitlines():
        match = _VECTOR.match(line)
        if match:
            spec, zone, after, runs = match.groups()
            found.append((spec, zone, after, re.findall(r"`([^`]+)`", runs)))
    return found


def test_the_schedules_page_has_its_dst_vectors() -> None:
    assert len(vectors()) >= 20
    assert any('"dst"' in spec for spec, *_ in vectors())


@pytest.mark.parametrize(("spec", "zone", "after", "runs"), vectors())
def test_each_dst_vector_of_the_schedules_page_is_what_the_scheduler_does(
    spec: str, zone: str, after: str, runs: list[str]
) -> None:
    assert next_json(spec, zone, after, len(runs)) == runs


def next_examples() -> list[tuple[str, list[str], list[str]]]:
    """``$ scheduler next ...`` lines of plain fenced blocks: the arguments after the program,
    and the lines the block shows printed."""
    found = []
    for path in (ROOT / "README.md", *sorted(DOCS.glob("*.md"))):
        for language, lines in fenced_blocks(path):
            if not language and lines and re.match(r"\$ (\S*/)?scheduler next ", lines[0]):
                found.append((path.name, shlex.split(lines[0])[2:], lines[1:]))
    return found


def test_the_docs_show_scheduler_next_examples() -> None:
    assert {name for name, _, _ in next_examples()} >= {"README.md", "schedules.md"}


@pytest.mark.parametrize(("name", "argv", "printed"), next_examples())
def test_each_scheduler_next_example_prints_what_it_shows(
    name: str, argv: list[str], printed: list[str]
) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli_main(argv) == 0, name
    assert out.getvalue().splitlines() == printed, name


# --- the library ---------------------------------------------------------------------------


def library_examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", text(DOCS / "library.md"), re.S)
    return [block for block in blocks if "asyncio.run(" in block]


def test_the_library_page_has_runnable_examples() -> None:
    assert len(library_examples()) == 2


@pytest.mark.integration
@pytest.mark.parametrize("index", range(2))
def test_each_library_example_runs_as_written(tmp_path: Path, index: int) -> None:
    script = tmp_path / "example.py"
    script.write_text(library_examples()[index])
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "var").exists()  # neither example leaves state behind


# --- operations ----------------------------------------------------------------------------


def test_the_install_commands_are_those_the_readme_tests() -> None:
    readme = text(ROOT / "README.md").split("## Run as a service\n", 1)[1]
    install = next(b for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if "pip install" in b)
    assert f"```sh\n{install}```" in text(DOCS / "operations.md")


# --- links ---------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    plain = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", plain).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in text(path).splitlines():
        fenced = fenced != line.startswith("```")
        match = None if fenced else re.match(r"#{1,6} (.*)", line)
        if match:
            base = slug(match[1])
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(path: Path) -> list[str]:
    body = re.sub(r"```.*?```", "", text(path), flags=re.S)
    return re.findall(r"\]\(([^)\s]+)\)", body)


DOCUMENTS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_links_point_at_files_in_the_repository_and_their_anchors_exist(path: Path) -> None:
    for target in links(path):
        if re.match(r"https?://", target):
            assert path.name == "CHANGELOG.md", f"{path.name}: external link {target}"
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.is_relative_to(ROOT), f"{path.name}: {target} leaves the repository"
        assert linked.exists(), f"{path.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(linked), f"{path.name}: no heading for #{anchor}"


def test_the_docs_index_lists_every_document() -> None:
    index = text(DOCS / "README.md")
    for path in DOCS.glob("*.md"):
        if path.name != "README.md":
            assert f"({path.name})" in index, path.name
