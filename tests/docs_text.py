"""Reading the Markdown of ``docs/``: the helpers the documentation tests share.

A plain module, not a test file: ``tests/test_docs.py`` (the single box's pages) and
``tests/test_docs_cluster.py`` (``docs/cluster.md`` and the cluster parts of the others) read
the same pages the same way, so a change to how a heading, a table or a fenced block is read
holds for both.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from tests import ROOT

DOCS = ROOT / "docs"
CONFIG_DOC = DOCS / "configuration.md"

__all__ = [
    "CONFIG_DOC",
    "DOCS",
    "ROOT",
    "fenced_blocks",
    "fields",
    "first_column",
    "section",
    "sections",
    "text",
    "ticked",
]


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def sections(path: Path, level: str) -> dict[str, str]:
    """Heading -> body, for the headings of one level (``"## "`` or ``"### "``)."""
    found: dict[str, str] = {}
    heading = None
    lines: list[str] = []
    fenced = False
    for line in text(path).splitlines():
        fenced = fenced != line.startswith("```")
        if not fenced and re.match(r"#{2,3} ", line):
            if heading is not None:
                found[heading] = "\n".join(lines)
            heading, lines = (line[len(level) :], []) if line.startswith(level) else (None, [])
            continue
        lines.append(line)
    if heading is not None:
        found[heading] = "\n".join(lines)
    return found


def section(path: Path, level: str, needle: str) -> str:
    """The body of the one heading that contains ``needle``."""
    matches = [body for title, body in sections(path, level).items() if needle in title]
    assert len(matches) == 1, f"{path.name}: {len(matches)} headings contain {needle!r}"
    return matches[0]


def ticked(body: str) -> set[str]:
    """Every ``code`` span of a text."""
    return set(re.findall(r"`([^`\n]+)`", body))


def fields(kind: type[msgspec.Struct]) -> set[str]:
    """The keys a config structure accepts: what its section of the docs must list."""
    return {field.name for field in msgspec.structs.fields(kind)}


def first_column(body: str) -> set[str]:
    """The keys named in the first column of a section's tables."""
    keys: set[str] = set()
    for line in body.splitlines():
        cells = line.split("|")
        if line.startswith("| `") and len(cells) > 2:
            keys |= ticked(cells[1])
    return keys


def fenced_blocks(path: Path) -> list[tuple[str, list[str]]]:
    """``(language, lines)`` of every fenced block of a Markdown file, in order."""
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in text(path).splitlines():
        if line.startswith("```") and current is None:
            current = []
            blocks.append((line[3:].strip(), current))
        elif line.startswith("```"):
            current = None
        elif current is not None:
            current.append(line)
    return blocks
