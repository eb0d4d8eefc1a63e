"""The gettext catalogues match the code: every message the code marks is in the template
(``scheduler.pot``) and in each language's ``.po``, neither has a message the code no longer
uses, and every translation is there and keeps its placeholders.

The messages are read from the code the way ``xgettext`` reads them: the string literal given
to ``_()``, ``N_()`` or ``ngettext()`` anywhere under ``scheduler/``.
"""

from __future__ import annotations

import ast
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import polib
import pytest

from scheduler import i18n
from tests import ROOT

PACKAGE = ROOT / "scheduler"
TEMPLATE = i18n.LOCALE_DIR / f"{i18n.DOMAIN}.pot"
CATALOGUES = sorted(i18n.LOCALE_DIR.glob(f"*/LC_MESSAGES/{i18n.DOMAIN}.po"))
#: ``{name}`` of str.format and ``%(name)s`` / ``%s`` / ``%r`` of printf-style formatting.
_PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\([a-z_]+\)[sdr]|%[sdr]")


def marked(tree: ast.AST) -> set[tuple[str, str | None]]:
    """``(msgid, msgid_plural)`` of every marked literal in one module."""
    found: set[tuple[str, str | None]] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        texts = [a.value for a in node.args if isinstance(a, ast.Constant)]
        if node.func.id in ("_", "N_") and texts and isinstance(texts[0], str):
            found.add((texts[0], None))
        elif node.func.id == "ngettext" and len(texts) >= 2:
            found.add((str(texts[0]), str(texts[1])))
    return found


def code_messages() -> set[tuple[str, str | None]]:
    found: set[tuple[str, str | None]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        found |= marked(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return found


def entries(path: Path) -> set[tuple[str, str | None]]:
    return {(e.msgid, e.msgid_plural or None) for e in polib.pofile(str(path)) if not e.obsolete}


def placeholders(text: str) -> list[str]:
    return sorted(_PLACEHOLDER.findall(text))


def test_the_scan_finds_marked_literals_and_nothing_else() -> None:
    tree = ast.parse('_("a"); N_("b"); ngettext("c", "cs", n); gettext("d"); _(name); f(_("e"))')
    assert marked(tree) == {("a", None), ("b", None), ("c", "cs"), ("e", None)}


def test_there_is_a_korean_catalogue() -> None:
    assert [p.relative_to(i18n.LOCALE_DIR).parts[0] for p in CATALOGUES] == ["ko"]


def test_the_template_has_every_message_of_the_code_and_no_other() -> None:
    code, template = code_messages(), entries(TEMPLATE)
    assert sorted(code - template) == [], "marked in the code, missing from scheduler.pot"
    assert sorted(template - code) == [], "in scheduler.pot, no longer used by the code"


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.parts[-3])
def test_each_catalogue_has_every_message_of_the_code_and_no_other(path: Path) -> None:
    code, catalogue = code_messages(), entries(path)
    assert sorted(code - catalogue) == [], f"missing from {path.name}"
    assert sorted(catalogue - code) == [], f"unused in {path.name}"


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: p.parts[-3])
def test_every_translation_is_there_and_keeps_its_placeholders(path: Path) -> None:
    po = polib.pofile(str(path))
    assert po.metadata["Content-Type"] == "text/plain; charset=UTF-8"
    for entry in po:
        assert not entry.fuzzy, entry.msgid
        texts = list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]
        assert texts, entry.msgid
        for text in texts:
            assert text.strip(), f"{entry.msgid!r} has no translation"
            assert placeholders(text) == placeholders(entry.msgid), entry.msgid
            assert text.endswith("\n") == entry.msgid.endswith("\n"), entry.msgid
            assert text.endswith(" ") == entry.msgid.endswith(" "), entry.msgid


def test_the_catalogues_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["scheduler"]
    assert "polib>=1.2,<2" in config["project"]["dependencies"]
    for path in CATALOGUES:
        inside = path.relative_to(PACKAGE).as_posix()
        assert any(fnmatch(inside, pattern) for pattern in patterns), inside
