"""Logging: journald priority prefixes, terminal and JSON lines, redaction, run lines."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

import pytest

from scheduler.errors import InvalidInput
from scheduler.observability.logs import (
    JournalFormatter,
    TextFormatter,
    is_journal_stream,
    log_run,
    setup_logging,
)

pytestmark = pytest.mark.usefixtures("restore_root_logger")

CANARY = "tok-CANARY-3f9a1c"


@pytest.fixture
def journal_file(tmp_path: Path) -> Iterator[TextIO]:
    with (tmp_path / "journal").open("w+", encoding="utf-8") as stream:
        yield stream


def _journal_env(stream: TextIO) -> dict[str, str]:
    info = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}


def _lines(stream: TextIO) -> list[str]:
    stream.flush()
    stream.seek(0)
    return stream.read().splitlines()


def _raise_and_log(logger: logging.Logger, message: str) -> None:
    try:
        raise RuntimeError(message)
    except RuntimeError:
        logger.exception("task crashed")


def test_under_journald_lines_carry_the_priority_prefix_and_no_timestamp(
    journal_file: TextIO,
) -> None:
    setup_logging(level=logging.DEBUG, stream=journal_file, environ=_journal_env(journal_file))
    log = logging.getLogger("scheduler.engine")

    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")

    assert _lines(journal_file) == [
        "<7>scheduler.engine: d",
        "<6>scheduler.engine: i",
        "<4>scheduler.engine: w",
        "<3>scheduler.engine: e",
        "<2>scheduler.engine: c",
    ]


def test_journal_stream_naming_another_file_is_not_the_journal(
    journal_file: TextIO, tmp_path: Path
) -> None:
    with (tmp_path / "other").open("w") as other:
        environ = _journal_env(other)

    assert not is_journal_stream(journal_file, environ)
    assert is_journal_stream(journal_file, _journal_env(journal_file))
    assert not is_journal_stream(journal_file, {})
    assert not is_journal_stream(journal_file, {"JOURNAL_STREAM": "garbage"})
    assert not is_journal_stream(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_on_a_terminal_lines_start_with_the_local_time_and_its_offset() -> None:
    record = logging.makeLogRecord(
        {
            "name": "scheduler.engine",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "started %d jobs",
            "args": (3,),
            "created": datetime(2026, 11, 22, 9, 0, tzinfo=ZoneInfo("Asia/Seoul")).timestamp(),
        }
    )

    line = TextFormatter(tz=ZoneInfo("Asia/Seoul")).format(record)

    assert line == "2026-11-22 09:00:00.000+09:00 INFO scheduler.engine: started 3 jobs"


def test_text_lines_follow_the_message_with_extra_fields_quoted_when_needed() -> None:
    stream = io.StringIO()
    setup_logging(stream=stream, environ={})

    logging.getLogger("scheduler.api").info(
        "bad request", extra={"path": "/api/jobs", "reason": 'say "hi" now', "count": 2}
    )

    line = stream.getvalue()
    assert line.endswith(
        ' INFO scheduler.api: bad request path=/api/jobs reason="say \\"hi\\" now" count=2\n'
    )


@pytest.mark.parametrize("fmt", ["text", "json", "journal"])
def test_every_event_is_one_line_even_with_newlines_and_a_traceback(
    fmt: str, journal_file: TextIO
) -> None:
    if fmt == "journal":
        stream: TextIO = journal_file
        setup_logging(stream=stream, environ=_journal_env(stream))
    else:
        stream = io.StringIO()
        setup_logging(fmt=fmt, stream=stream, environ={})
    log = logging.getLogger("scheduler.engine")

    log.warning("first line\nsecond line")
    _raise_and_log(log, "went\nwrong")

    stream.seek(0)
    lines = stream.read().splitlines()
    assert len(lines) == 2
    assert "second line" in lines[0]
    assert "Traceback (most recent call last):" in lines[1]
    assert "went" in lines[1]
    assert "wrong" in lines[1]
    if fmt == "journal":
        assert lines[1].startswith("<3>")


def test_json_lines_hold_time_level_logger_message_and_extra_fields() -> None:
    stream = io.StringIO()
    setup_logging(fmt="json", stream=stream, environ={})
    log = logging.getLogger("scheduler.engine")

    log.info("loaded %d jobs", 12, extra={"source": "snapshot", "seconds": 0.25})
    _raise_and_log(log, "boom")

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "info"
    assert first["logger"] == "scheduler.engine"
    assert first["message"] == "loaded 12 jobs"
    assert first["source"] == "snapshot"
    assert first["seconds"] == 0.25
    assert datetime.fromisoformat(first["ts"]).utcoffset() is not None
    assert second["level"] == "error"
    assert "RuntimeError: boom" in second["exc"]


def test_json_lines_under_journald_carry_the_priority_prefix(journal_file: TextIO) -> None:
    setup_logging(fmt="json", stream=journal_file, environ=_journal_env(journal_file))

    logging.getLogger("scheduler").warning("disk almost full")

    (line,) = _lines(journal_file)
    assert line.startswith("<4>{")
    assert json.loads(line[3:])["message"] == "disk almost full"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_api_token_never_reaches_the_log(fmt: str) -> None:
    stream = io.StringIO()
    setup_logging(fmt=fmt, stream=stream, environ={}, secrets=[CANARY])
    log = logging.getLogger("scheduler.api.auth")

    log.warning("rejected token %s", CANARY)
    log.warning(f"header was Bearer {CANARY}")  # noqa: G004 - a secret baked into the text
    log.info("request", extra={"authorization": f"Bearer {CANARY}", "headers": {"a": CANARY}})
    _raise_and_log(log, f"compare failed for {CANARY}")
    log.warning("stack", stack_info=True, extra={"token": CANARY})

    output = stream.getvalue()
    assert CANARY not in output
    assert output.count("[redacted]") >= 6


def test_a_replaced_token_is_redacted_from_then_on() -> None:
    stream = io.StringIO()
    redactor = setup_logging(stream=stream, environ={})
    log = logging.getLogger("scheduler.daemon")

    redactor.update([CANARY])
    log.info("token is %s", CANARY)
    redactor.update(["", "new-token-value"])
    log.info("token is %s", "new-token-value")

    output = stream.getvalue()
    assert "new-token-value" not in output
    assert CANARY not in output


def test_setting_up_twice_replaces_the_handler_instead_of_doubling_lines() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging(stream=first, environ={})
    setup_logging(fmt="json", stream=second, environ={})

    logging.getLogger("scheduler").info("once")

    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_an_unknown_format_names_the_config_key() -> None:
    with pytest.raises(InvalidInput, match="log_format") as info:
        setup_logging(fmt="xml", stream=io.StringIO(), environ={})

    assert info.value.field == "scheduler.log_format"


def test_a_run_logs_one_line_with_job_workflow_outcome_duration_and_lateness() -> None:
    stream = io.StringIO()
    setup_logging(fmt="json", stream=stream, environ={})

    log_run(
        logging.getLogger("scheduler.engine"),
        job_id="01JDQ8",
        workflow="nightly-backup",
        outcome="error",
        duration=1.5,
        lateness=0.003,
        error="HTTP 500 from the workflow endpoint",
        attempt=2,
    )

    (line,) = stream.getvalue().splitlines()
    doc = json.loads(line)
    assert doc["level"] == "error"
    assert {k: doc[k] for k in ("job_id", "workflow", "outcome", "duration", "lateness")} == {
        "job_id": "01JDQ8",
        "workflow": "nightly-backup",
        "outcome": "error",
        "duration": 1.5,
        "lateness": 0.003,
    }
    assert doc["error"] == "HTTP 500 from the workflow endpoint"
    assert doc["attempt"] == 2


@pytest.mark.parametrize(
    ("outcome", "prefix"),
    [
        ("success", "<6>"),
        ("skipped_overlap", "<6>"),
        ("missed", "<4>"),
        ("interrupted", "<4>"),
        ("timeout", "<3>"),
        ("error", "<3>"),
    ],
)
def test_a_run_line_has_the_priority_of_its_outcome(outcome: str, prefix: str) -> None:
    record_stream = io.StringIO()
    handler = logging.StreamHandler(record_stream)
    handler.setFormatter(JournalFormatter())
    log = logging.getLogger(f"test.runs.{outcome}")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    try:
        log_run(log, job_id="J1", workflow="w", outcome=outcome, duration=0.5, lateness=None)
    finally:
        log.removeHandler(handler)

    line = record_stream.getvalue()
    assert line.startswith(f"{prefix}test.runs.{outcome}: run {outcome} job_id=J1 workflow=w")
    assert "duration=0.5" in line
    assert "lateness" not in line


def test_access_log_lines_do_not_repeat_the_fields_already_in_their_message() -> None:
    stream = io.StringIO()
    setup_logging(stream=stream, environ={})

    logging.getLogger("aiohttp.access").info(
        '127.0.0.1 "GET /api/scheduler HTTP/1.1" 200',
        extra={"remote_address": "127.0.0.1", "response_status": 200},
    )

    assert stream.getvalue().endswith(
        ' INFO aiohttp.access: 127.0.0.1 "GET /api/scheduler HTTP/1.1" 200\n'
    )
