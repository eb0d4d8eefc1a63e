"""The dashboard's message catalogues (static/i18n/en.json and ko.json) against each other and
against the code: the same keys in both, every key the page looks up exists and every key is
looked up, the same placeholders in both languages, no English left in the Korean one, every
visible word of index.html named by a key, and the files shipped as package data and served."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from scheduler.api import dashboard
from scheduler.config import Config
from scheduler.runtime.library import Scheduler
from tests import ROOT
from tests.api.harness import app_for
from tests.fakes import FakeClock

STATIC = Path(dashboard.__file__).parent / "static"
I18N = STATIC / "i18n"
#: Where the page's words are looked up: t("key") in the scripts, data-i18n="key" (text) and
#: data-i18n-<attribute>="key" in the page.
SOURCES = [STATIC / "app.js", STATIC / "charts.js", I18N / "i18n.js", STATIC / "index.html"]
LOOKUP = re.compile(r"""\bt\("([^"]+)"|data-i18n(?:-[a-z-]+)?="([^"]+)\"""")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
PLURAL_FORMS = {"zero", "one", "two", "few", "many", "other"}
#: What may stay Latin in Korean: acronyms, units, statistics and names that Korean writes so.
LATIN_IN_KOREAN = {"API", "HTTP", "ID", "RFC", "ms", "p50", "p99", "config.toml", "English"}
#: Attributes a person reads (or hears): each must come from the catalogue.
READ_ATTRIBUTES = {"aria-label", "placeholder", "title", "alt"}


def catalogue(lang: str) -> dict[str, Any]:
    messages = json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(messages, dict)
    return messages


def used_keys() -> dict[str, list[str]]:
    """Every key looked up, with the files that look it up."""
    used: dict[str, list[str]] = {}
    for source in SOURCES:
        for match in LOOKUP.finditer(source.read_text(encoding="utf-8")):
            used.setdefault(match[1] or match[2], []).append(source.name)
    return used


def forms(value: Any) -> list[str]:
    """A message's texts: itself, or each of its plural forms."""
    return list(value.values()) if isinstance(value, dict) else [value]


def test_both_catalogues_have_the_same_keys() -> None:
    en, ko = catalogue("en"), catalogue("ko")
    assert sorted(en.keys() - ko.keys()) == [], "in en.json only"
    assert sorted(ko.keys() - en.keys()) == [], "in ko.json only"


def test_every_key_used_exists_and_every_key_is_used() -> None:
    keys = set(catalogue("en"))
    used = used_keys()
    missing = {key: files for key, files in used.items() if key not in keys}
    assert missing == {}, "looked up but in no catalogue"
    assert sorted(keys - used.keys()) == [], "in the catalogues but never looked up"
    assert len(used) > 200  # the scan found the lookups (a broken pattern would find none)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_messages_are_texts_or_plural_forms_with_an_other(lang: str) -> None:
    for key, value in catalogue(lang).items():
        if isinstance(value, dict):
            assert "other" in value, (lang, key)
            odd = {f for f in value if f not in PLURAL_FORMS and not re.fullmatch(r"=\d+", f)}
            assert odd == set(), (lang, key)
        for text in forms(value):
            assert isinstance(text, str), (lang, key)


def test_placeholders_are_the_same_in_both_languages() -> None:
    en, ko = catalogue("en"), catalogue("ko")
    for key in en:
        names = [{n for text in forms(c[key]) for n in PLACEHOLDER.findall(text)} for c in (en, ko)]
        assert names[0] == names[1], key


def test_no_english_is_left_in_the_korean_catalogue() -> None:
    ko = catalogue("ko")
    for key, value in ko.items():
        if key.startswith("meta.") or key == "schedule.weekdayStyle":
            continue  # settings for Intl (a locale, a style), never shown
        for text in forms(value):
            words = PLACEHOLDER.sub("", text)
            latin = set(re.findall(r"[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]|[A-Za-z]", words))
            assert latin <= LATIN_IN_KOREAN, (key, latin - LATIN_IN_KOREAN)
    assert ko["card.runningJobs"] == "실행 중"
    assert ko["card.pending"] == "대기 중"
    assert ko["card.nextJob"] == "다음 실행"


class _PageWords(HTMLParser):
    """The text and read attributes of index.html that no data-i18n names."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[dict[str, str | None]] = []
        self.unnamed: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for attr in READ_ATTRIBUTES & named.keys():
            if f"data-i18n-{attr}" not in named:
                self.unnamed.append(f"<{tag} {attr}={named[attr]!r}>")
        if tag not in {"meta", "link", "input", "br"}:
            self.stack.append(named)

    def handle_endtag(self, tag: str) -> None:
        if tag not in {"meta", "link", "input", "br"} and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        inside = self.stack[-1] if self.stack else {}
        if re.search(r"\w", data) and "data-i18n" not in inside:
            self.unnamed.append(data.strip())


def test_every_visible_word_of_the_page_is_named_by_a_key() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    body = html[html.index("<body>") :]
    words = _PageWords()
    words.feed(body)
    assert words.unnamed == []  # marks (an ellipsis, a dash) are no words
    assert '<title data-i18n="page.title">' in html
    assert '<html lang="en">' in html  # the script sets it to the language in use


def test_the_catalogues_are_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["scheduler"]
    for name in ("en.json", "ko.json", "i18n.js"):
        assert any(fnmatch.fnmatch(f"api/static/i18n/{name}", p) for p in patterns), name
        assert f"i18n/{name}" in dashboard.ASSETS  # read through importlib.resources


@pytest.fixture
async def sched() -> AsyncIterator[Scheduler]:
    sched = Scheduler(Config(), clock=FakeClock(1_795_392_000.0), persistence=False)
    await sched.start()
    yield sched
    await sched.stop(grace=0)


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("en.json", "application/json"),
        ("ko.json", "application/json"),
        ("i18n.js", "text/javascript"),
    ],
)
async def test_the_catalogues_are_served_with_the_static_files(
    sched: Scheduler, aiohttp_client: AiohttpClient, name: str, content_type: str
) -> None:
    client = await aiohttp_client(app_for(sched, token="s3cret"))
    resp = await client.get(f"/static/i18n/{name}")  # like the page: no token needed
    assert resp.status == 200
    assert resp.headers["Content-Type"] == f"{content_type}; charset=utf-8"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert await resp.read() == (I18N / name).read_bytes()
    page = await client.get("/")
    policy = page.headers["Content-Security-Policy"]
    assert "connect-src 'self';" in policy  # the catalogues come from the page's own origin
    assert "http" not in policy
    missing = await client.get("/static/i18n/fr.json")
    assert missing.status == 404
