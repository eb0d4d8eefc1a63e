"""The dashboard's charts, progress bars and "Why?" in Chromium (Playwright) against the real
daemon: at 1280x800 and 390x844 nothing scrolls sideways and every row's action is on screen
with a 200-character name, the three charts are drawn with their labels, their tables hold
the numbers of /api/stats (and the windows of /api/maintenance), a running job's bar shows
its reported percent and follows it live, and the job's panel explains it. Screenshots go to
docs/images/ (the README shows them)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from tests import ROOT
from tests.browser import chromium
from tests.daemon_proc import DaemonProcess, Daemons
from tests.polling import until

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(90)]

IMAGES = ROOT / "docs" / "images"
LIVE = 5000  # ms: far below the 30 s poll
#: A python task that reports 42 %, then 84 % once the file ``go`` appears in its directory.
PROGRESS_TASK = """
import asyncio, pathlib

async def report(payload, ctx):
    ctx.progress(42, "copying files")
    while not pathlib.Path("go").exists():
        await asyncio.sleep(0.05)
    ctx.progress(84, "checking copies")
    await asyncio.Event().wait()  # runs until it is cancelled
"""
CONFIG = """
[tasks.quick]
kind = "command"
argv = ["true"]

[tasks.broken]
kind = "command"
argv = ["false"]

[tasks.progress]
kind = "python"
callable = "dashboard_progress_task:report"

[[maintenance]]
name = "backup-window"
cron = "0 2 * * *"
duration = "1h"
tasks = ["quick"]
"""
LONG_NAME = "quarterly-revenue-reconciliation-" * 6 + "x" * 2  # 200 characters
JOBS = 8  # what busy_scheduler creates
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::(\d{2}))?(?:\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@pytest.fixture
async def daemon(tmp_path: Path, daemons: Daemons) -> DaemonProcess:
    (tmp_path / "dashboard_progress_task.py").write_text(PROGRESS_TASK)
    # The progress task runs until stopped: a stop cancels it after a second.
    return await daemons.start(DaemonProcess(tmp_path, CONFIG, scheduler='shutdown_grace = "1s"'))


def local_text(iso: str) -> str:
    """What the page shows for an instant (app.js ``localText``)."""
    m = _ISO.match(iso)
    assert m, iso
    seconds = f":{m[3]}" if m[3] and m[3] != "00" else ""
    return f"{m[1]} {m[2]}{seconds} {'+00:00' if m[4] == 'Z' else m[4]}"


async def create(daemon: DaemonProcess, query: str = "", **job: Any) -> dict[str, Any]:
    status, body, _ = await daemon.request("POST", f"/api/jobs{query}", json=job)
    assert status == 201, body
    return dict(body)


async def get(daemon: DaemonProcess, path: str) -> Any:
    status, body, _ = await daemon.request("GET", path)
    assert status == 200, (path, body)
    return body


async def busy_scheduler(daemon: DaemonProcess) -> dict[str, Any]:
    """Runs of two outcomes, recurring jobs for the timeline (one of the task that maintenance
    holds), a job with a 200-character name, and one running with progress reported."""
    for _ in range(3):
        await create(daemon, "?wait=true", workflowName="welcome-mail", task="quick")
    await create(daemon, "?wait=true", workflowName="flaky-sync", task="broken", maxRetries=0)
    await create(daemon, workflowName=LONG_NAME, task="quick", schedule={"every": "3h"})
    await create(daemon, workflowName="hourly-sync", task="quick", schedule={"every": "1h"})
    await create(
        daemon, workflowName="nightly-report", task="broken", schedule={"cron": "30 2 * * *"}
    )
    running = await create(daemon, workflowName="import-customers", task="progress")

    async def reported() -> dict[str, Any] | None:
        job = await get(daemon, f"/api/jobs/{running['id']}")
        return dict(job) if job["progress"] else None

    found: dict[str, Any] = await until(reported, "the progress task to report", 10.0)
    return found


async def open_page(
    browser: Browser, daemon: DaemonProcess, **context: Any
) -> tuple[Page, list[str]]:
    page = await (await browser.new_context(**context)).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text}")

    page.on("console", console)
    await page.goto(daemon.url + "/")
    await expect(page.locator("tr.job")).to_have_count(JOBS)
    await expect(page.locator("#chart-upcoming canvas").first).to_be_attached()
    return page, errors


async def assert_nothing_scrolls_sideways(page: Page) -> None:
    fit = await page.evaluate(
        """() => {
          const doc = document.documentElement;
          const wrap = document.querySelector('.table-wrap');
          const buttons = [...document.querySelectorAll('tr.job .actions button')].map((b) => {
            const r = b.getBoundingClientRect();
            return [r.left, r.right];
          });
          return { page: doc.scrollWidth - doc.clientWidth,
                   table: wrap.scrollWidth - wrap.clientWidth, width: window.innerWidth, buttons };
        }"""
    )
    assert fit["page"] <= 0, "the page scrolls sideways"
    assert fit["table"] <= 0, "the jobs table scrolls sideways"
    assert len(fit["buttons"]) == JOBS
    for left, right in fit["buttons"]:
        assert left >= 0, "a row's action is off screen, left"
        assert right <= fit["width"], "a row's action is off screen, right"


async def assert_charts_show_the_api(page: Page, daemon: DaemonProcess) -> None:
    for figure, label in [
        ("#chart-runs", "Runs per hour by outcome"),
        ("#chart-lateness", "Start lateness p50 and p99"),
        ("#chart-upcoming", "Upcoming runs, next 24 hours"),
    ]:
        chart = page.locator(f"{figure} [role=img]")
        assert (await chart.get_attribute("aria-label") or "").startswith(label)
        await expect(page.locator(f"{figure} canvas").first).to_be_attached()
    stats = await get(daemon, "/api/stats?hours=24")
    shown = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#chart-runs tbody tr')].map(
             (tr) => [tr.dataset.start, Object.fromEntries([...tr.querySelectorAll('td')].map(
               (td) => [td.dataset.outcome, Number(td.textContent)]))]))"""
    )
    late = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#chart-lateness tbody tr')].map(
             (tr) => [tr.dataset.start, [...tr.querySelectorAll('td')].map(
               (td) => td.dataset.value === '' ? null : Number(td.dataset.value))]))"""
    )
    same = [b for b in stats["buckets"] if b["start"] in shown]
    assert len(same) >= 23  # an hour may have turned between the page's request and ours
    for bucket in same:
        assert shown[bucket["start"]] == {
            **bucket["outcomes"],
            "total": sum(bucket["outcomes"].values()),
        }
        assert late[bucket["start"]] == [bucket["latenessP50"], bucket["latenessP99"]]
    totals = {k: sum(b["outcomes"][k] for b in stats["buckets"]) for k in ("success", "error")}
    assert totals == {"success": 3, "error": 1}
    lanes = page.locator("#chart-upcoming tbody tr")
    await expect(lanes).to_have_count(len(stats["upcoming"]))
    for i, lane in enumerate(stats["upcoming"]):
        row = lanes.nth(i)
        assert await row.get_attribute("data-job-id") == lane["jobId"]
        assert await row.locator("th").get_attribute("title") == lane["name"]
        await expect(row.locator("td").nth(0)).to_have_text(str(len(lane["runs"])))
        await expect(row.locator("td").nth(1)).to_have_text(local_text(lane["runs"][0]))
    assert {lane["name"] for lane in stats["upcoming"]} == {
        LONG_NAME,
        "hourly-sync",
        "nightly-report",
    }
    windows = (await get(daemon, "/api/maintenance?hours=24"))["upcoming"]
    assert windows, "the backup window opens every night"
    items = page.locator("#chart-upcoming .maintenance li")
    await expect(items).to_have_count(len(windows))
    await expect(items.first).to_contain_text(f"backup-window: {local_text(windows[0]['start'])}")
    await expect(page.locator("#chart-upcoming")).to_contain_text("Shaded: maintenance windows")


#: The canvas's alpha at a lane's centre, a third into a window's part still to come (the
#: least of five pixels side by side, so that a grid line or a run's mark cannot decide it).
LANE_ALPHA = """([start, end, jobId]) => {
  const { plot } = charts.plots.find((p) => p.el.closest("#chart-upcoming"));
  const rows = document.querySelectorAll("#chart-upcoming tbody tr");
  const lanes = [...rows].map((tr) => tr.dataset.jobId);
  const from = Math.max(Date.parse(start) / 1000, Date.now() / 1000);
  const t = from + (Date.parse(end) / 1000 - from) / 3;
  const x = Math.round(plot.valToPos(t, "x", true));
  const y = Math.round(plot.valToPos(lanes.length - 1 - lanes.indexOf(jobId), "y", true));
  const px = plot.ctx.getImageData(x - 2, y, 5, 1).data;
  return Math.min(px[3], px[7], px[11], px[15], px[19]);
}"""


async def assert_the_window_shades_the_lanes_of_its_task(page: Page, daemon: DaemonProcess) -> None:
    stats = await get(daemon, "/api/stats?hours=24")
    window = (await get(daemon, "/api/maintenance?hours=24"))["upcoming"][0]
    assert window["tasks"] == ["quick"]
    for lane in stats["upcoming"]:
        alpha = await page.evaluate(LANE_ALPHA, [window["start"], window["end"], lane["jobId"]])
        if lane["task"] == "quick":
            assert alpha > 0, f"{lane['name']}: its task is held, its lane is not shaded"
        else:
            assert alpha == 0, f"{lane['name']}: its task is not held, yet its lane is shaded"


async def test_at_1280_everything_fits_and_the_charts_hold_the_numbers_of_the_api(
    browser: Browser, daemon: DaemonProcess
) -> None:
    running = await busy_scheduler(daemon)
    page, errors = await open_page(browser, daemon, viewport={"width": 1280, "height": 800})
    await assert_nothing_scrolls_sideways(page)
    name = page.locator("tr.job .name", has_text=LONG_NAME[:40])
    assert await name.get_attribute("title") == LONG_NAME
    assert await name.evaluate("(el) => el.scrollWidth > el.clientWidth"), "the name is cut"
    await expect(page.locator("#card-updated")).to_have_text(
        re.compile(r"^Updated \d{2}:\d{2}:\d{2} [+-]\d{2}:\d{2}$")
    )
    await assert_charts_show_the_api(page, daemon)
    await assert_the_window_shades_the_lanes_of_its_task(page, daemon)
    row = page.locator(f'tr.job[data-job-id="{running["id"]}"]')
    bar = row.get_by_role("progressbar", name="Progress of import-customers")
    assert await bar.get_attribute("value") == "42"
    await expect(row.locator(".progress-text")).to_have_text("42% · copying files")
    (daemon.root / "go").touch()  # the task reports 84 %: the bar follows live
    await expect(row.locator(".progress-text")).to_have_text("84% · checking copies", timeout=LIVE)
    assert await bar.get_attribute("value") == "84"
    IMAGES.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=IMAGES / "dashboard.png", full_page=True)
    assert errors == []


async def test_the_job_panel_says_why_in_the_words_of_explain(
    browser: Browser, daemon: DaemonProcess
) -> None:
    job = await create(daemon, workflowName="paused-report", task="quick", schedule={"every": "1h"})
    status, _, _ = await daemon.request(
        "POST", f"/api/jobs/{job['id']}/pause", json={"reason": "waiting for the new bucket"}
    )
    assert status == 200
    explained = await get(daemon, f"/api/jobs/{job['id']}/explain")
    page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
    await page.goto(daemon.url + "/")
    await page.get_by_role("button", name="Show details of paused-report").click()
    why = page.get_by_role("region", name="Why?")
    await expect(why.locator(".why-summary")).to_have_text(explained["summary"])
    await expect(why.locator("li")).to_have_text([r["message"] for r in explained["reasons"]])
    assert "paused" in [r["code"] for r in explained["reasons"]]
    await expect(why).to_contain_text("waiting for the new bucket")


async def test_on_a_phone_nothing_scrolls_sideways_and_the_charts_are_there(
    browser: Browser, daemon: DaemonProcess
) -> None:
    await busy_scheduler(daemon)
    page, errors = await open_page(browser, daemon, **PHONE)
    await assert_nothing_scrolls_sideways(page)
    await assert_charts_show_the_api(page, daemon)
    box = await page.locator("#chart-runs canvas").first.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 390
    IMAGES.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=IMAGES / "dashboard-phone.png", full_page=True)
    for figure in ("#chart-runs", "#chart-lateness", "#chart-upcoming"):
        await page.locator(f"{figure} summary").click()  # the numbers, opened, still fit
    await assert_nothing_scrolls_sideways(page)
    assert errors == []
