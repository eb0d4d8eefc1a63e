"""Issue 12, item 1: ``docs/api.md`` documents every status code the API answers.

``tests/test_docs.py`` holds the routes, parameters and keys of ``docs/api.md`` to the OpenAPI
document; this holds its "Status codes" table to the codes the OpenAPI document says each
operation answers, so a new code cannot be served without saying when.
"""

from __future__ import annotations

import re

from scheduler.api.openapi import document
from tests import ROOT

API = ROOT / "docs" / "api.md"
_METHODS = ("get", "head", "post", "put", "patch", "delete")


def served_codes() -> dict[str, list[str]]:
    """Status code -> the operations of the OpenAPI document that answer it."""
    codes: dict[str, list[str]] = {}
    for path, item in document()["paths"].items():
        for method in _METHODS:
            for code in item.get(method, {}).get("responses", {}):
                codes.setdefault(code, []).append(f"{method.upper()} {path}")
    return codes


def documented_codes() -> set[str]:
    """The codes in the first column of the "Status codes" table of docs/api.md."""
    text = API.read_text(encoding="utf-8")
    section = text.split("\n## Status codes\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| (\d{3}) \|", section, flags=re.MULTILINE))


def test_the_status_table_is_found_and_has_rows() -> None:
    assert {"200", "400", "404"} <= documented_codes()


def test_every_status_code_the_api_answers_is_in_the_status_table() -> None:
    undocumented = {
        code: operations
        for code, operations in served_codes().items()
        if code not in documented_codes()
    }
    assert not undocumented, f"status codes missing from docs/api.md's table: {undocumented}"
