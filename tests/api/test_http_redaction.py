"""The API token never reaches a log line, however it is quoted on the way."""

from __future__ import annotations

import io
import json
import logging
import urllib.parse

import pytest

from scheduler.observability.logs import setup_logging

pytestmark = pytest.mark.usefixtures("restore_root_logger")

TOKEN = 'tok\\en/with+odd"chars=='  # characters that quoting changes


@pytest.mark.parametrize(
    "shown",
    [
        TOKEN,
        repr(TOKEN),
        repr(TOKEN.encode()),
        json.dumps(TOKEN),
        urllib.parse.quote(TOKEN, safe=""),
    ],
    ids=["plain", "repr", "bytes-repr", "json", "url"],
)
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_token_is_redacted_however_it_was_quoted(shown: str, fmt: str) -> None:
    out = io.StringIO()
    setup_logging(fmt=fmt, stream=out, secrets=[TOKEN], environ={})
    log = logging.getLogger("scheduler.test")
    log.warning("bad header %s", shown, extra={"value": f"header={shown}"})
    try:
        raise ValueError(f"got {shown}")
    except ValueError:
        log.exception("failed")
    text = out.getvalue()
    assert "[redacted]" in text
    for form in (TOKEN, repr(TOKEN)[1:-1], urllib.parse.quote(TOKEN, safe="")):
        assert form not in text
    assert json.dumps(TOKEN)[1:-1] not in text
