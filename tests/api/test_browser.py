"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against the real
daemon as a subprocess: the card agrees with /api/scheduler, a new job appears live, a job run
from the table shows in its history, the token is asked for once, and screenshots are saved
to test-artifacts/ for a person to look at."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests import ROOT
from tests.browser import PageErrors, chromium, scripts_page
from tests.daemon_proc import DaemonProcess, Daemons

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ARTIFACTS = ROOT / "test-artifacts"
TASKS = """
[tasks.quick]
kind = "command"
argv = ["true"]

[tasks.broken]
kind = "command"
argv = ["false"]
"""
LIVE = 5000  # ms: far below the 30 s poll, so passing means the event stream delivered it


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@pytest.fixture
async def daemon(tmp_path: Path, daemons: Daemons) -> DaemonProcess:
    return await daemons.start(DaemonProcess(tmp_path, TASKS))


async def open_dashboard(browser: Browser, daemon: DaemonProcess, **context: Any) -> Page:
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    await page.goto(daemon.url + "/")
    return page


async def create(daemon: DaemonProcess, query: str = "", **job: Any) -> dict[str, Any]:
    status, body, _ = await daemon.request("POST", f"/api/jobs{query}", json=job)
    assert status == 201, body
    assert isinstance(body, dict)
    return body


def job_row(page: Page, name: str) -> Any:
    return page.locator("tr.job", has=page.get_by_text(name, exact=True))


async def test_the_card_shows_the_numbers_of_the_status_api(
    browser: Browser, daemon: DaemonProcess
) -> None:
    await create(daemon, workflowName="nightly-backup", task="quick", schedule={"delay": "1h"})
    await create(daemon, workflowName="weekly-report", task="quick", schedule={"cron": "0 9 * * 1"})
    await create(daemon, "?wait=true", workflowName="welcome-mail", task="quick")
    await create(daemon, "?wait=true", workflowName="flaky-sync", task="broken", maxRetries=0)
    _, status, _ = await daemon.request("GET", "/api/scheduler")
    page = await open_dashboard(browser, daemon)
    errors = PageErrors(page)
    card = page.locator("#card")
    await expect(page.locator("#count-total")).to_have_text(str(status["totalJobs"]))
    await expect(page.locator("#count-pending")).to_have_text(str(status["pendingJobs"]))
    await expect(page.locator("#count-running")).to_have_text(str(status["runningJobs"]))
    await expect(page.locator("#count-completed")).to_have_text(str(status["completedJobs"]))
    await expect(page.locator("#count-failed")).to_have_text(str(status["failedJobs"]))
    assert (status["totalJobs"], status["failedJobs"]) == (4, 1)
    await expect(card).to_have_attribute("data-state", "warn")  # running, one job failed
    await expect(page.locator("#state-text")).to_have_text("Running, with 1 failed job")
    await expect(page.locator("#next-job")).to_contain_text(status["nextJob"]["workflowName"])
    await expect(page.locator("#next-job")).to_contain_text("in 1 hour")
    await expect(job_row(page, "weekly-report")).to_contain_text("recurring")
    assert errors.errors == []


async def test_a_new_job_appears_live_without_a_reload(
    browser: Browser, daemon: DaemonProcess
) -> None:
    page = await open_dashboard(browser, daemon)
    errors = PageErrors(page)
    await expect(page.locator("#connection")).to_have_attribute("data-mode", "live")
    await expect(page.locator("#job-rows")).to_contain_text("No jobs yet")
    await expect(page.locator("#next-job")).to_have_text("none")
    await create(daemon, workflowName="brand-new-workflow", task="quick", schedule={"delay": "2h"})
    await expect(job_row(page, "brand-new-workflow")).to_be_visible(timeout=LIVE)
    await expect(page.locator("#count-total")).to_have_text("1", timeout=LIVE)
    await expect(page.locator("#count-pending")).to_have_text("1", timeout=LIVE)
    await expect(page.locator("#next-job")).to_contain_text("brand-new-workflow", timeout=LIVE)
    assert errors.errors == []


async def test_running_a_job_from_the_table_shows_its_run_in_the_history(
    browser: Browser, daemon: DaemonProcess
) -> None:
    await create(daemon, workflowName="hourly-sync", task="quick", schedule={"every": "1h"})
    await create(
        daemon,
        workflowName="morning-digest",
        task="quick",
        schedule={"repeat": {"freq": "weekly", "weekdays": ["mon", "fri"], "time": "09:00"}},
    )
    page = await open_dashboard(browser, daemon)
    errors = PageErrors(page)
    row = job_row(page, "hourly-sync")
    toggle = row.get_by_role("button", name="Show details of hourly-sync")
    await toggle.focus()
    await page.keyboard.press("Enter")  # keyboard alone is enough
    details = page.locator("tr.details:not([hidden])")
    await expect(details).to_contain_text("every 1h")
    await expect(details.locator(".next-runs li")).to_have_count(5)
    await expect(details).to_contain_text("No runs yet.")
    await details.get_by_role("button", name="Run now: hourly-sync").focus()
    await page.keyboard.press("Enter")
    history = details.locator("table.runs tbody tr")
    await expect(history).to_have_count(1, timeout=LIVE)
    await expect(history.first).to_contain_text("success")
    # The refreshes rebuilt the panel; the keyboard user is still on the same button.
    await expect(details.get_by_role("button", name="Run now: hourly-sync")).to_be_focused()
    await expect(page.locator("#notice")).to_contain_text("Run queued: hourly-sync")
    await expect(row.locator("td.num")).to_have_text("1")
    digest = job_row(page, "morning-digest")
    await digest.get_by_role("button", name="Show details of morning-digest").click()
    await expect(page.locator("tr.details:not([hidden])").nth(1)).to_contain_text(
        "every week on Monday and Friday at 09:00"
    )
    await expect(history).to_have_count(1)  # the first panel stays as it was
    wide = await page.evaluate(
        "(() => { const w = document.querySelector('.table-wrap');"
        " return w.scrollWidth - w.clientWidth; })()"
    )
    assert wide <= 0, "the job details widen the table beyond the page"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)
    assert errors.errors == []


async def test_it_reads_well_on_a_phone(browser: Browser, daemon: DaemonProcess) -> None:
    for n in range(3):
        await create(daemon, workflowName=f"report-{n}", task="quick", schedule={"delay": "30m"})
    page = await open_dashboard(
        browser, daemon, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    await expect(job_row(page, "report-2")).to_be_visible()
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the page scrolls sideways on a phone"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "dashboard-phone.png", full_page=True)


async def test_a_stopped_daemon_shows_as_unreachable_and_the_page_keeps_working(
    browser: Browser, daemon: DaemonProcess
) -> None:
    await create(daemon, workflowName="keeps-showing", task="quick", schedule={"delay": "1h"})
    page = await open_dashboard(browser, daemon)
    await expect(job_row(page, "keeps-showing")).to_be_visible()
    await expect(page.locator("#connection")).to_have_attribute("data-mode", "live")
    await daemon.stop()
    await expect(page.locator("#card")).to_have_attribute("data-state", "down", timeout=LIVE)
    await expect(page.locator("#state-text")).to_contain_text("Unreachable")
    await expect(page.locator("#count-total")).to_have_text("1")  # the last numbers stay
    await expect(job_row(page, "keeps-showing")).to_be_visible()


async def test_the_token_is_asked_for_once_and_kept_for_the_tab(
    browser: Browser, tmp_path: Path, daemons: Daemons
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "api_token").write_text("s3cret-token\n")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    proc = await daemons.start(DaemonProcess(tmp_path, TASKS, env=env))
    auth = {"Authorization": "Bearer s3cret-token"}
    job = {"workflowName": "guarded", "task": "quick", "schedule": {"delay": "1h"}}
    status, _, _ = await proc.request("POST", "/api/jobs", headers=auth, json=job)
    assert status == 201
    page = await open_dashboard(browser, proc)
    await expect(page.locator("#count-total")).to_have_text("1")  # the card needs no token
    dialog = page.get_by_role("dialog", name="API token needed")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("API token").fill("s3cret-token")
    await page.keyboard.press("Enter")
    await expect(job_row(page, "guarded")).to_be_visible()
    await expect(page.locator("#connection")).to_have_attribute("data-mode", "live")
    await page.reload()
    await expect(job_row(page, "guarded")).to_be_visible()
    await expect(dialog).to_be_hidden()


WORDS = [
    ({"cron": "0 9 * * 1-5"}, "on Monday to Friday, at 09:00"),
    ({"cron": "*/15 * * * *"}, "every 15 minutes"),
    ({"cron": "0 * * * *"}, "every hour, on the hour"),
    ({"cron": "30 2 1 * *"}, "on the 1st, at 02:30"),
    ({"cron": "0 9 * * *"}, "every day at 09:00"),
    ({"cron": "@daily"}, "every day at 00:00"),
    ({"cron": "0 0 29 2 *"}, "on the 29th in February, at 00:00"),
    ({"cron": "5 4 L * *"}, "cron rule 5 4 L * *"),
    (
        {"rrule": "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0;COUNT=10"},
        "every week on Monday and Wednesday at 09:00, 10 times",
    ),
    ({"rrule": "FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR"}, "every 2 months on last Friday"),
    (
        {"repeat": {"freq": "monthly", "monthDays": [1, 15, -1], "time": "08:30"}},
        "every month on the 1st, 15th and last day at 08:30",
    ),
    ({"every": "1h"}, "every 1h"),
    ({"delay": "15m"}, "once, 15m after it was created"),
    ({"at": "2026-12-24T09:00"}, "once, at 2026-12-24T09:00"),
    ({}, "once, as soon as possible"),
]


async def test_schedules_read_as_words_and_times_keep_their_offset(browser: Browser) -> None:
    page = await scripts_page(browser, "en")
    for schedule, words in WORDS:
        got = await page.evaluate("(s) => scheduleWords({schedule: s})", schedule)
        assert got == words, schedule
    local = "(iso) => localText(iso)"
    assert await page.evaluate(local, "2026-11-24T05:00:00.000+09:00") == "2026-11-24 05:00 +09:00"
    assert await page.evaluate(local, "2026-03-08T01:59:30Z") == "2026-03-08 01:59:30 +00:00"
