"""What the browser tests share: Debian's Chromium launched headless by Playwright, a record of
a page's script errors, and the dashboard's scripts on a blank page in one language (for tests
of its pure functions: schedules in words, times, numbers)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from tests import ROOT

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STATIC = ROOT / "scheduler" / "api" / "static"


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium for one test, closed after it."""
    assert HAVE_CHROMIUM, "install Chromium: apt-get install -y chromium"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class PageErrors:
    """Script errors and console errors of a page: a test fails on any it did not expect."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


def catalogue(lang: str) -> dict[str, object]:
    """The dashboard's message catalogue of one language, as shipped."""
    messages = json.loads((STATIC / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(messages, dict)
    return messages


async def scripts_page(browser: Browser, lang: str = "en") -> Page:
    """A blank page with the dashboard's scripts and the catalogue of ``lang`` in use (no daemon:
    the page's own functions, ``scheduleWords`` and friends, are called by ``page.evaluate``)."""
    page = await browser.new_page()
    await page.add_script_tag(content=(STATIC / "i18n" / "i18n.js").read_text(encoding="utf-8"))
    await page.evaluate("([l, m]) => useCatalogue(l, m)", [lang, catalogue(lang)])
    await page.add_script_tag(content=(STATIC / "app.js").read_text(encoding="utf-8"))
    return page
