"""The dashboard's files are served as they should be, and the homepage-widget snippets in the
README read only fields the status document has, with the types they expect."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_aiohttp import AiohttpClient

from scheduler.api import dashboard
from scheduler.config import Config
from scheduler.engine.queue import TaskRuntime
from scheduler.runtime.library import Scheduler
from tests import ROOT
from tests.api.harness import app_for
from tests.fakes import FakeClock, RecordingExecutor
from tests.homepage import CONTRACT, js_date, lookup, relative_date, render

README = ROOT / "README.md"
STATIC = Path(dashboard.__file__).parent / "static"


@pytest.fixture
async def sched() -> AsyncIterator[Scheduler]:
    clock = FakeClock(1_795_392_000.0)
    sched = Scheduler(Config(), clock=clock, persistence=False)
    sched.runtimes["work"] = TaskRuntime(RecordingExecutor(clock))
    await sched.start()
    yield sched
    await sched.stop(grace=0)


# --- the files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html"),
        ("/static/index.html", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/static/app.css", "text/css"),
    ],
)
async def test_the_files_are_served_with_their_content_types(
    sched: Scheduler, aiohttp_client: AiohttpClient, path: str, content_type: str
) -> None:
    client = await aiohttp_client(app_for(sched))
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == f"{content_type}; charset=utf-8"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-cache"
    name = "index.html" if path == "/" else path.rsplit("/", 1)[1]
    assert await resp.read() == (STATIC / name).read_bytes()


async def test_the_page_allows_only_its_own_scripts_styles_and_api(
    sched: Scheduler, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(app_for(sched))
    resp = await client.get("/")
    policy = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    head = await client.head("/")
    assert head.status == 200


async def test_an_unchanged_file_answers_304(
    sched: Scheduler, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(app_for(sched))
    first = await client.get("/static/app.js")
    again = await client.get("/static/app.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    assert await again.read() == b""


@pytest.mark.parametrize(
    "path", ["/static/nope.js", "/static/..%2Fdashboard.py", "/static/%2E%2E/keys.py"]
)
async def test_only_the_dashboard_files_exist_under_static(
    sched: Scheduler, aiohttp_client: AiohttpClient, path: str
) -> None:
    client = await aiohttp_client(app_for(sched))
    resp = await client.get(path)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_the_dashboard_loads_without_a_token_and_the_api_still_needs_one(
    sched: Scheduler, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(app_for(sched, token="s3cret"))
    for path in ("/", "/static/app.js", "/static/app.css", "/api/scheduler"):
        assert (await client.get(path)).status == 200, path
    assert (await client.get("/api/jobs")).status == 401


def test_the_page_loads_nothing_from_elsewhere() -> None:
    html = (STATIC / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "static/app.js" in refs
    assert "static/app.css" in refs
    for ref in refs:
        assert ref.startswith(("static/", "#", "data:")), ref
        if ref.startswith("static/"):
            assert ref.removeprefix("static/") in dashboard.ASSETS
    script = (STATIC / "app.js").read_text()
    assert "http://" not in script
    assert "https://" not in script


def test_the_script_never_inserts_api_values_as_html() -> None:
    script = (STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


# --- the homepage widget snippets --------------------------------------------------------


def widget_section() -> str:
    text = README.read_text()
    match = re.search(r"^## Homepage widget\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, "README.md has no '## Homepage widget' section"
    return match.group(1)


def fenced(section: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", section, re.S | re.M)


def homepage_widgets() -> list[dict[str, Any]]:
    for block in fenced(widget_section(), "yaml"):
        if "customapi" in block:
            [group] = yaml.safe_load(block)
            [services] = group.values()
            [service] = services
            [entry] = service.values()
            widgets: list[dict[str, Any]] = entry["widgets"]
            return widgets
    raise AssertionError("no gethomepage customapi snippet in the Homepage widget section")


def glance_widget() -> dict[str, Any]:
    for block in fenced(widget_section(), "yaml"):
        if "custom-api" in block:
            [widget] = yaml.safe_load(block)
            return dict(widget)
    raise AssertionError("no Glance custom-api snippet in the Homepage widget section")


def kuma_monitor() -> dict[str, Any]:
    for block in fenced(widget_section(), "json"):
        monitor = json.loads(block)
        if monitor.get("type") == "json-query":
            return dict(monitor)
    raise AssertionError("no Uptime Kuma json-query monitor in the Homepage widget section")


def homepage_reads() -> Iterator[tuple[str, dict[str, Any]]]:
    for widget in homepage_widgets():
        for mapping in widget["mappings"]:
            yield mapping["field"], mapping
            extra = mapping.get("additionalField")
            if extra:
                yield extra["field"], extra


_GLANCE_TYPES: dict[str, type | tuple[type, ...]] = {
    "Bool": bool,
    "Int": int,
    "Float": (int, float),
    "String": str,
}


def glance_reads() -> list[tuple[str, str]]:
    return re.findall(
        r'\.JSON\.(Bool|Int|Float|String|Exists) "([^"]+)"', glance_widget()["template"]
    )


async def status_documents(sched: Scheduler, aiohttp_client: AiohttpClient) -> list[dict[str, Any]]:
    """The document with nothing scheduled, then with a job due."""
    client = await aiohttp_client(app_for(sched))
    empty = await (await client.get("/api/scheduler")).json()
    await sched.create_task("work", None, schedule={"delay": "1h"}, workflow_name="nightly")
    busy = await (await client.get("/api/scheduler")).json()
    return [empty, busy]


def test_the_snippets_are_configured_as_documented() -> None:
    widgets = homepage_widgets()
    assert [w["type"] for w in widgets] == ["customapi", "customapi"]
    assert {w["refreshInterval"] for w in widgets} == {30000}
    assert {w["url"].rsplit("/", 2)[-2:] == ["api", "scheduler"] for w in widgets} == {True}
    block, listing = widgets
    assert "display" not in block
    assert [m["field"] for m in block["mappings"]] == [
        "isRunning",
        "pendingJobs",
        "runningJobs",
        "failedJobs",
    ]
    assert listing["display"] == "list"
    [next_job] = [m for m in listing["mappings"] if m["field"].startswith("nextJob.")]
    assert {"value": None, "to": "none"} in next_job["remap"]
    when = next_job["additionalField"]
    assert (when["field"], when["format"]) == ("nextJob.scheduledTime", "relativeDate")
    assert when.get("style", "long") in ("long", "short", "narrow")  # Intl.RelativeTimeFormat's
    assert when.get("numeric", "always") in ("always", "auto")
    glance = glance_widget()
    assert glance["type"] == "custom-api"
    assert glance["cache"] == "30s"
    assert glance["url"].endswith("/api/scheduler")
    kuma = kuma_monitor()
    assert (kuma["jsonPath"], kuma["jsonPathOperator"], kuma["expectedValue"]) == (
        "isRunning",
        "==",
        "true",
    )


async def test_the_status_document_has_every_contract_field_with_its_type(
    sched: Scheduler, aiohttp_client: AiohttpClient
) -> None:
    for doc in await status_documents(sched, aiohttp_client):
        assert "error" not in doc
        for path, types in CONTRACT.items():
            if path.startswith("nextJob.") and doc["nextJob"] is None:
                continue
            assert isinstance(lookup(doc, path), types), (path, doc)
            if types == (int,):
                assert not isinstance(lookup(doc, path), bool), path


async def test_every_field_the_snippets_read_is_in_the_contract_with_their_type(
    sched: Scheduler, aiohttp_client: AiohttpClient
) -> None:
    docs = await status_documents(sched, aiohttp_client)
    assert docs[0]["nextJob"] is None
    assert docs[1]["nextJob"] is not None
    for path, mapping in homepage_reads():
        assert path in CONTRACT, path
        remapped = {r["value"] for r in mapping.get("remap", []) if "value" in r}
        for doc in docs:
            value = lookup(doc, path)
            if value is None:
                assert None in remapped, f"{path} can be null: remap it"
            elif mapping.get("format") == "number":
                assert type(value) is int, path
            elif remapped - {None}:
                assert value in remapped, (path, value)  # every value has a label
    for kind, path in glance_reads():
        assert path in CONTRACT, path
        for doc in docs:
            if kind == "Exists" or (path.startswith("nextJob.") and doc["nextJob"] is None):
                continue
            assert isinstance(lookup(doc, path), _GLANCE_TYPES[kind]), (kind, path)
    kuma = kuma_monitor()
    for doc in docs:
        assert str(lookup(doc, kuma["jsonPath"])).lower() == kuma["expectedValue"]


async def test_gethomepage_shows_the_next_jobs_time_relative_and_none_without_one(
    sched: Scheduler, aiohttp_client: AiohttpClient
) -> None:
    empty, busy = await status_documents(sched, aiohttp_client)  # busy: a job due in 1 hour
    now = sched.clock.time()
    _, listing = homepage_widgets()
    [next_job] = [m for m in listing["mappings"] if m["field"] == "nextJob.workflowName"]
    when = next_job["additionalField"]
    assert js_date(busy["nextJob"]["scheduledTime"]) == (now + 3600) * 1000
    assert render(next_job, busy, now) == "nightly"
    assert render(when, busy, now) == "in 1 hour"
    assert render(next_job, empty, now) == "none"
    assert render(when, empty, now) == ""


@pytest.mark.parametrize(
    ("seconds", "numeric", "shown"),
    [
        (3600, "always", "in 1 hour"),
        (-90, "always", "2 minutes ago"),  # gethomepage floors: -1.5 minutes is -2
        (86400 + 60, "auto", "tomorrow"),
        (86400 + 60, "always", "in 1 day"),
        (0, "auto", "now"),
        (30 * 86400, "always", "in 1 month"),
    ],
)
def test_the_relative_date_model_matches_what_gethomepage_prints(
    seconds: int, numeric: str, shown: str
) -> None:
    now = 1_795_392_000.0
    assert relative_date((now + seconds) * 1000, now, numeric) == shown


def test_glance_guards_the_next_job_before_reading_it() -> None:
    template = glance_widget()["template"]
    guard = template.index('.JSON.Exists "nextJob.id"')
    reads = [m.start() for m in re.finditer(r'\.JSON\.String "nextJob\.', template)]
    assert reads
    assert all(guard < at < template.index("{{ else }}", guard) for at in reads)
