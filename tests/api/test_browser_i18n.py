"""The dashboard in Korean and English, in Chromium (Playwright) against the real daemon: a
browser that prefers Korean gets the Korean card, table, details and charts with no English
word left but data; switching to English changes every word and survives a reload, switching
back works; a browser that prefers English gets English. Schedules read as words in both
languages from one description, and numbers are grouped the locale's way."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests import ROOT
from tests.browser import PageErrors, chromium, scripts_page
from tests.daemon_proc import DaemonProcess, Daemons

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(90)]

TASKS = """
[tasks.quick]
kind = "command"
argv = ["true"]

[tasks.broken]
kind = "command"
argv = ["false"]
"""
ARTIFACTS = ROOT / "test-artifacts"
KOREAN = {"locale": "ko-KR", "extra_http_headers": {"Accept-Language": "ko-KR,ko;q=0.9"}}
ENGLISH = {"locale": "en-US"}
HEADERS_KO = ["워크플로", "유형", "상태", "다음 실행", "마지막 실행", "실행 횟수", "자세히"]
HEADERS_EN = ["Workflow", "Type", "Status", "Next run", "Last run", "Runs", "Details"]
#: Latin words a Korean page may show: acronyms and units Korean writes so, stats' names.
LATIN_OK = {"API", "HTTP", "ID", "RFC", "ms", "p50", "p99"}
#: Instants as the API writes them and as the page shows them (data, not words).
INSTANTS = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?"
)
#: Every visible text of the page, and each attribute a person reads or hears, but the names of
#: the languages in the language switch (each written in its own language, on purpose).
TEXTS = """() => {
  const switcher = document.getElementById('language').innerText;
  const texts = [document.body.innerText.replace(switcher, '')];
  for (const el of document.querySelectorAll('[aria-label], [title], [placeholder]')) {
    for (const a of ['aria-label', 'title', 'placeholder']) texts.push(el.getAttribute(a) || '');
  }
  texts.push(document.title);
  return texts.join('\\n');
}"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@pytest.fixture
async def daemon(tmp_path: Path, daemons: Daemons) -> DaemonProcess:
    return await daemons.start(DaemonProcess(tmp_path, TASKS))


async def create(daemon: DaemonProcess, query: str = "", **job: Any) -> dict[str, Any]:
    status, body, _ = await daemon.request("POST", f"/api/jobs{query}", json=job)
    assert status == 201, body
    return dict(body)


async def some_jobs(daemon: DaemonProcess) -> None:
    weekly = {"repeat": {"freq": "weekly", "weekdays": ["mon", "wed"], "time": "09:00"}}
    await create(daemon, workflowName="morning-digest", task="quick", schedule=weekly)
    await create(daemon, workflowName="hourly-sync", task="quick", schedule={"every": "1h"})
    await create(daemon, "?wait=true", workflowName="welcome-mail", task="quick")
    await create(daemon, "?wait=true", workflowName="flaky-sync", task="broken", maxRetries=0)
    held = await create(
        daemon, workflowName="paused-report", task="quick", schedule={"every": "1h"}
    )
    status, _, _ = await daemon.request(
        "POST", f"/api/jobs/{held['id']}/pause", json={"reason": "새 버킷을 기다림"}
    )
    assert status == 200


async def open_page(browser: Browser, daemon: DaemonProcess, context: dict[str, Any]) -> Page:
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    await page.goto(daemon.url + "/")
    return page


async def data_words(daemon: DaemonProcess) -> set[str]:
    """What the page shows as it came from the API: names, ids, tasks, zones."""
    _, jobs, _ = await daemon.request("GET", "/api/jobs")
    _, stats, _ = await daemon.request("GET", "/api/stats?hours=24")
    data = {stats["timezone"]}
    for job in jobs["items"]:
        data |= {
            job["workflowName"],
            job["id"],
            job["task"],
            job["timezone"],
            job.get("error") or "",
        }
    return data - {""}


def english_left(text: str, data: set[str]) -> set[str]:
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    text = INSTANTS.sub(" ", text)
    return set(re.findall(r"[A-Za-z][A-Za-z0-9]*", text)) - LATIN_OK


async def headers(page: Page) -> list[str]:
    return [t.strip() for t in await page.locator("#job-table thead th").all_inner_texts()]


async def assert_korean(page: Page, daemon: DaemonProcess) -> None:
    await expect(page.locator("html")).to_have_attribute("lang", "ko")
    counts = page.locator("#card dt")
    await expect(counts).to_have_text(["총 작업", "대기 중", "실행 중", "완료", "실패"])
    await expect(page.locator("#card .next .label")).to_have_text("다음 실행")
    await expect(page.locator("#state-text")).to_have_text("실행 중, 실패한 작업 1개")
    await expect(page.locator("#job-table thead th")).to_have_text(HEADERS_KO)
    await expect(page.locator("#language")).to_have_value("ko")
    # Instants the Korean way (Intl), with the job's offset; relative times in Korean.
    korean_instant = r"\(\d{4}\. \d{2}\. \d{2}\. \d{2}:\d{2}(:\d{2})? [+-]\d{2}:\d{2}\)"
    await expect(page.locator("#next-job")).to_contain_text(re.compile(korean_instant))
    await expect(page.locator("#next-job")).to_contain_text(re.compile(r"\d+(분|시간) 후"))


async def test_a_korean_browser_sees_korean_and_can_switch_to_english_and_back(
    browser: Browser, daemon: DaemonProcess
) -> None:
    await some_jobs(daemon)
    page = await open_page(browser, daemon, KOREAN)
    errors = PageErrors(page)
    assert (await page.evaluate("navigator.languages"))[0].startswith("ko")
    await assert_korean(page, daemon)
    digest = page.locator("tr.job", has=page.get_by_text("morning-digest", exact=True))
    await expect(digest).to_contain_text("반복")  # the type, in Korean
    await digest.get_by_role("button", name="morning-digest 자세히 보기").click()
    details = page.locator("tr.details:not([hidden])").first
    await expect(details).to_contain_text("매주 월·수 09:00")
    await expect(details.get_by_role("button", name="지금 실행: morning-digest")).to_be_visible()
    await expect(page.locator("#chart-runs [role=img]")).to_have_attribute(
        "aria-label", re.compile(r"^결과별 시간당 실행, 최근 24시간")
    )
    await expect(details.locator(".next-runs li")).to_have_count(5)
    paused = page.locator("tr.job", has=page.get_by_text("paused-report", exact=True))
    await paused.get_by_role("button", name="paused-report 자세히 보기").click()
    why = page.get_by_role("region", name="왜?").last  # its panel opened after the digest's
    await expect(why.locator(".why-summary")).to_have_text(
        "paused-report: 재개할 때까지 실행되지 않습니다."
    )
    await expect(why.locator("li[data-code=paused]")).to_have_text(
        re.compile(r"^일시 정지되었습니다\..* 이유: 새 버킷을 기다림\.$")
    )
    left = english_left(await page.evaluate(TEXTS), await data_words(daemon))
    assert left == set(), "English left on the Korean page"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "dashboard-ko.png", full_page=True)

    await page.get_by_label("언어").select_option("en")  # the switch has a label
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("#job-table thead th")).to_have_text(HEADERS_EN)
    await expect(page.locator("#state-text")).to_have_text("Running, with 1 failed job")
    await expect(details).to_contain_text("every week on Monday and Wednesday at 09:00")
    await expect(page.locator("#chart-runs figcaption")).to_have_text("Runs per hour by outcome")
    await page.reload()
    await expect(page.locator("#job-table thead th")).to_have_text(HEADERS_EN)
    await expect(page.locator("#card dt").first).to_have_text("Total")
    await expect(page.locator("#language")).to_have_value("en")

    await page.locator("#language").focus()  # the keyboard alone switches back
    await page.keyboard.press("ArrowDown")
    await assert_korean(page, daemon)
    await page.reload()
    await assert_korean(page, daemon)
    assert errors.errors == []


async def test_an_english_browser_gets_english(browser: Browser, daemon: DaemonProcess) -> None:
    await some_jobs(daemon)
    page = await open_page(browser, daemon, ENGLISH)
    errors = PageErrors(page)
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("#job-table thead th")).to_have_text(HEADERS_EN)
    await expect(page.locator("#card dt")).to_have_text(
        ["Total", "Pending", "Running", "Completed", "Failed"]
    )
    await expect(page.locator("#next-job")).to_contain_text("in 1 hour")
    assert not re.search(r"[가-힣]", await page.evaluate(TEXTS)), "Korean on the English page"
    assert errors.errors == []


WORDS = [
    ({"cron": "0 9 * * 1-5"}, "on Monday to Friday, at 09:00", "매주 월~금 09:00"),
    ({"cron": "*/15 * * * *"}, "every 15 minutes", "15분마다"),
    ({"cron": "0 * * * *"}, "every hour, on the hour", "매시 정각"),
    ({"cron": "30 2 1 * *"}, "on the 1st, at 02:30", "매월 1일 02:30"),
    ({"cron": "0 0 29 2 *"}, "on the 29th in February, at 00:00", "매년 2월 29일 00:00"),
    ({"cron": "@yearly"}, "on the 1st in January, at 00:00", "매년 1월 1일 00:00"),
    ({"cron": "15 8 * * MON,WED"}, "on Monday and Wednesday, at 08:15", "매주 월·수 08:15"),
    ({"cron": "5 4 L * *"}, "cron rule 5 4 L * *", "크론 규칙 5 4 L * *"),
    (
        {"repeat": {"freq": "weekly", "weekdays": ["mon", "wed"], "time": "09:00"}},
        "every week on Monday and Wednesday at 09:00",
        "매주 월·수 09:00",
    ),
    (
        {"repeat": {"freq": "monthly", "monthDays": [1, 15, -1], "time": "08:30"}},
        "every month on the 1st, 15th and last day at 08:30",
        "매월 1일·15일·마지막 날 08:30",
    ),
    (
        {"repeat": {"freq": "daily", "interval": 2, "time": "07:00", "count": 3}},
        "every 2 days at 07:00, 3 times",
        "2일마다 07:00, 3회",
    ),
    (
        {"rrule": "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0;COUNT=10"},
        "every week on Monday and Wednesday at 09:00, 10 times",
        "매주 월·수 09:00, 10회",
    ),
    (
        {"rrule": "FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR"},
        "every 2 months on last Friday",
        "2개월마다 마지막 금요일",
    ),
    (
        {"rrule": "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=1;BYHOUR=6"},
        "every year on the 1st in March at 06:00",
        "매년 3월 1일 06:00",
    ),
    (
        {"every": "30m", "start": "2026-12-01T00:00", "end": "2026-12-31T00:00"},
        "every 30m, from 2026-12-01T00:00, until 2026-12-31T00:00",
        "30분마다, 2026-12-01T00:00부터, 2026-12-31T00:00까지",
    ),
    ({"at": "2026-12-24T09:00"}, "once, at 2026-12-24T09:00", "한 번, 2026-12-24T09:00"),
    ({"delay": "15m"}, "once, 15m after it was created", "한 번, 만든 뒤 15분 후"),
    ({"every": "1h30m"}, "every 1h30m", "1시간 30분마다"),
    ({}, "once, as soon as possible", "한 번, 가능한 한 빨리"),
]


@pytest.mark.parametrize("lang", ["en", "ko"])
async def test_schedules_read_as_words_in_both_languages(browser: Browser, lang: str) -> None:
    page = await scripts_page(browser, lang)
    got = await page.evaluate(
        "(all) => all.map((s) => scheduleWords({schedule: s}))", [s for s, _, _ in WORDS]
    )
    want = [en if lang == "en" else ko for _, en, ko in WORDS]
    assert got == want
    # One description serves both languages: the descriptor has no words in it.
    described = await page.evaluate("(s) => JSON.stringify(describeSchedule(s))", WORDS[8][0])
    assert "Monday" not in described
    assert "월" not in described


@pytest.mark.parametrize(
    ("lang", "page_info", "soon", "failed"),
    [
        ("en", "Jobs 1\u2013100 of 12,345", "in 1 hour", "Running, with 1 failed job"),
        ("ko", "작업 12,345개 중 1\u2013100", "1시간 후", "실행 중, 실패한 작업 1개"),
    ],
)
async def test_numbers_plurals_and_relative_times_follow_the_language(
    browser: Browser, lang: str, page_info: str, soon: str, failed: str
) -> None:
    page = await scripts_page(browser, lang)
    assert await page.evaluate("formatNumber(12345)") == "12,345"
    got = await page.evaluate(
        "t('jobs.pageInfo', {first: 1, last: 100, total: 12345, searchNote: ''})"
    )
    assert got == page_info
    in_an_hour = "relative(new Date(Date.now() + 3600e3 + 5e3).toISOString())"
    assert await page.evaluate(in_an_hour) == soon
    assert await page.evaluate("t('card.runningWithFailed', {count: 1})") == failed
    plural = await page.evaluate("t('card.runningWithFailed', {count: 2})")
    assert plural == ("Running, with 2 failed jobs" if lang == "en" else "실행 중, 실패한 작업 2개")
    # Times are written the language's way (Intl) and keep the job's own offset in both.
    local = await page.evaluate("localText('2026-11-24T05:00:00.000+09:00')")
    assert local == ("2026-11-24 05:00 +09:00" if lang == "en" else "2026. 11. 24. 05:00 +09:00")
    seconds = await page.evaluate("localText('2026-03-08T01:59:30Z')")
    assert seconds == (
        "2026-03-08 01:59:30 +00:00" if lang == "en" else "2026. 03. 08. 01:59:30 +00:00"
    )
