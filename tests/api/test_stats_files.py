"""The charts' files: uPlot and its stylesheet are served from the package (``/static/vendor/``)
under the page's unchanged policy, and every file of the dashboard, the vendored ones included,
is declared as package data, so an installed wheel has the charts too."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

import pytest
from pytest_aiohttp import AiohttpClient

from scheduler.api import dashboard
from scheduler.config import Config
from scheduler.runtime.library import Scheduler
from tests import ROOT
from tests.api.harness import app_for
from tests.fakes import FakeClock

pytestmark = pytest.mark.timeout(30)

STATIC = Path(dashboard.__file__).parent / "static"
VENDOR = STATIC / "vendor"


@pytest.fixture
async def sched() -> AsyncIterator[Scheduler]:
    sched = Scheduler(Config(), clock=FakeClock(1_795_392_000.0), persistence=False, environ={})
    await sched.start()
    yield sched
    await sched.stop(grace=0)


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("uPlot.iife.min.js", "text/javascript"), ("uPlot.min.css", "text/css")],
)
async def test_the_charting_library_is_served_from_the_package(
    sched: Scheduler, aiohttp_client: AiohttpClient, name: str, content_type: str
) -> None:
    client = await aiohttp_client(app_for(sched, token="s3cret"))  # open, like the page
    resp = await client.get(f"/static/vendor/{name}")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == f"{content_type}; charset=utf-8"
    assert await resp.read() == (VENDOR / name).read_bytes()
    again = await client.get(
        f"/static/vendor/{name}", headers={"If-None-Match": resp.headers["ETag"]}
    )
    assert again.status == 304


@pytest.mark.parametrize(
    "path", ["/static/vendor/LICENSE", "/static/vendor/README", "/static/vendor/../app.js.map"]
)
async def test_nothing_else_of_the_vendor_folder_is_served(
    sched: Scheduler, aiohttp_client: AiohttpClient, path: str
) -> None:
    client = await aiohttp_client(app_for(sched))
    assert (await client.get(path)).status == 404


async def test_the_page_still_allows_only_its_own_code(
    sched: Scheduler, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(app_for(sched))
    policy = (await client.get("/")).headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"


def test_the_vendored_library_names_its_version_and_licence() -> None:
    head = (VENDOR / "uPlot.iife.min.js").read_text()[:80]
    readme = (VENDOR / "README").read_text()
    assert "(v1.6.32)" in head
    assert "uPlot 1.6.32" in readme
    assert "MIT" in (VENDOR / "LICENSE").read_text()


def test_every_dashboard_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["scheduler"]
    files = [p.relative_to(ROOT / "scheduler").as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert "api/static/vendor/uPlot.iife.min.js" in files
    missing = [f for f in files if not any(globbed(f, pattern) for pattern in patterns)]
    assert missing == []


def globbed(path: str, pattern: str) -> bool:
    """Whether setuptools' glob ``pattern`` takes ``path`` (``*`` stays in its folder)."""
    parts, wanted = PurePosixPath(path), PurePosixPath(pattern)
    return len(parts.parts) == len(wanted.parts) and parts.match(pattern)
