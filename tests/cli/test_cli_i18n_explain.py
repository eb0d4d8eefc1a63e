"""``scheduler jobs explain`` in Korean: the summary and each reason written from the
explanation's stable code and details (the dashboard's ``why.*`` wording), with no English word
left but the data (names, ids, tasks, windows, times); a code the command does not know keeps the
daemon's English message; in English the daemon's text stays exactly as it came.

The documents are the shapes ``tests/api/test_explain.py`` checks the daemon against; then the
real command against the real daemon with ``LANG=ko_KR.UTF-8``: a job paused with ``--by``,
``--reason`` and ``--until``, and the whole scheduler paused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from scheduler import i18n
from scheduler.cli import explain_ko
from scheduler.cli.jobs_view import explanation
from scheduler.cli.tables import long_time, width
from tests.cli.harness import api, cli, create, environ, field, jobs_daemon
from tests.daemon_proc import DaemonProcess
from tests.docs_text import DOCS, section

KOREAN = {"LANG": "ko_KR.UTF-8"}
NAME = "nightly-backup"
ZONE = "Asia/Seoul"
T0 = "2030-01-07T09:00:00.000+09:00"
T1 = "2030-01-07T10:30:00.000+09:00"
T2 = "2030-01-08T03:00:00.000+09:00"
#: 2030-01-07 09:30 in Seoul: after T0, before T1 and T2.
NOW = 1893976200.0

#: (code, details, the data the Korean message must quote) for every code of the daemon, and
#: each of its variants; the English message is the daemon's, so a fallback would show.
REASONS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("quarantined", {"interruptions": 3, "at": T0}, ["3", T0]),
    ("rule_ended", {"count": 2, "until": None, "last": T0}, [T0]),
    ("rule_ended", {"count": None, "until": "2030-01-01", "last": None}, []),
    ("no_next_run", {"status": "cancelled", "at": T0}, ["취소됨"]),
    ("paused", {"by": "ops-team", "reason": "quarter close", "until": T2}, ["ops-team", T2]),
    ("paused", {"by": None, "reason": None, "until": None}, []),
    ("scheduler_paused", {}, []),
    ("maintenance", {"window": "backup-window", "from": T0, "until": T1}, [T0, T1]),
    (
        "rate_limited",
        {"task": "report", "until": T1, "count": 2, "per": 3600.0, "ahead": 1},
        ["report", "2", "1시간", T1],
    ),
    ("waiting_for_slot", {"limit": "global", "ahead": 2, "running": 1, "max": 1}, ["2", "1"]),
    (
        "waiting_for_slot",
        {"limit": "task", "task": "report", "ahead": 0, "running": 2, "max": 2},
        ["report", "0", "2"],
    ),
    (
        "retry_backoff",
        {"attempt": 2, "at": T1, "fire": T0, "maxRetries": 3, "error": "exit status 3"},
        ["2", T1],
    ),
    (
        "misfired",
        {
            "from": T0,
            "to": T1,
            "count": 4,
            "daemonDown": True,
            "grace": None,
            "coalesce": "latest",
            "recordedAt": T1,
            "downSince": T0,
            "downUntil": T1,
        },
        ["4", T0, T1],
    ),
    (
        "misfired",
        {
            "from": T0,
            "to": T0,
            "count": 1,
            "daemonDown": False,
            "grace": 60.0,
            "coalesce": "latest",
            "recordedAt": T1,
        },
        [T0],
    ),
    ("overlap_skipped", {"at": T0, "overlap": "skip"}, [T0]),
    ("dst_shifted", {"kind": "gap", "rule": "skip", "at": T0, "skipped": True}, [T0]),
    ("dst_shifted", {"kind": "gap", "rule": "next", "at": T0, "skipped": False}, [T0]),
    ("dst_shifted", {"kind": "fold", "rule": "both", "at": T0, "skipped": False}, [T0]),
]
ENGLISH_WORDS = re.compile(r"[A-Za-z]+")


def document(
    *reasons: dict[str, Any], status: str = "pending", next_run: Any = T1
) -> dict[str, Any]:
    return {
        "jobId": "18a4c1e9c1800000",
        "status": status,
        "summary": f"Job {NAME!r} runs next at {T1} because it waits.",
        "lastExpected": T0,
        "nextRun": next_run,
        "timezone": ZONE,
        "reasons": list(reasons),
    }


def reason(code: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": code,
        "message": f"The daemon's English sentence for {code}.",
        "details": details,
    }


def said(out: str) -> dict[str, str]:
    """Each reason's message by code, its wrapped lines joined again."""
    lines = out.splitlines()
    found: dict[str, str] = {}
    code = ""
    for line in lines[lines.index("사유") + 1 :]:
        if line.startswith("  ") and not line.startswith("    "):
            code, text = line.split(maxsplit=1)
            found[code] = text
        else:
            found[code] += " " + line.strip()
    return found


@pytest.fixture
def korean(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's messages in Korean, as ``LANG=ko_KR.UTF-8`` would choose them."""
    monkeypatch.setattr(i18n, "_current", lambda: i18n.translation(KOREAN))


@pytest.fixture
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(i18n, "_current", lambda: i18n.translation({"LANG": "C.UTF-8"}))


# --- the text, without a daemon ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "details", "data"), REASONS, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(REASONS)]
)
def test_each_reason_is_korean_but_for_its_data(
    korean: None, code: str, details: dict[str, Any], data: list[str]
) -> None:
    out = explanation(document(reason(code, details)), name=NAME, now=NOW, columns=80)
    assert all(width(line) <= 80 for line in out.splitlines()), out
    text = said(out)[code]
    assert re.search(r"[가-힣]", text), text
    quoted = [long_time(item) if item.startswith("2030-") else item for item in data]
    for item in quoted:
        assert item in text, (item, text)
    names = [details[key] for key in ("by", "reason", "window", "task") if details.get(key)]
    left = text
    for item in (*quoted, *names):
        left = left.replace(item, "")
    assert ENGLISH_WORDS.findall(left) == [], text


def test_the_summary_says_where_the_job_stands_in_korean(korean: None) -> None:
    def first(**doc: Any) -> str:
        """The summary, its wrapped lines joined again."""
        lines = explanation(document(**doc), name=NAME, now=NOW, columns=80).splitlines()
        return " ".join(lines[: next(i for i, x in enumerate(lines) if x.startswith("상태"))])

    assert first() == f"{NAME}: 다음 실행은 2030-01-07 10:30:00+09:00입니다."
    late = "2030-01-07 09:00:00+09:00에 실행될 예정이었지만 아직 시작되지 않았습니다."
    assert first(next_run=T0) == f"{NAME}: {late}"
    assert first(status="running") == f"{NAME}: 실행 중입니다."
    assert first(status="paused", next_run=None) == f"{NAME}: 재개할 때까지 실행되지 않습니다."
    assert first(status="completed", next_run=None) == f"{NAME}: 더 이상 실행되지 않습니다."
    out = explanation(document(), name=NAME, now=NOW)
    assert field(out, "상태") == "대기 중"
    assert field(out, "사유") == "없음"


def test_long_korean_lines_wrap_by_cells_under_their_message(korean: None) -> None:
    name = "매일-밤-데이터베이스-전체-백업-" * 4
    paused = {
        "by": "운영팀-김민수",
        "reason": "분기 마감 동안 데이터베이스를 건드리지 않음" * 2,
        "until": T2,
    }
    doc = document(reason("paused", paused), reason("scheduler_paused", {}))
    out = explanation(doc, name=name, now=NOW, columns=80)
    lines = out.splitlines()
    assert all(width(line) <= 80 for line in lines), out
    start = lines.index("사유") + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("  scheduler_paused"))
    column = lines[start].index("일시")
    assert end - start > 2  # the pause takes several lines, each under the first's message
    assert all(
        line.startswith(" " * column) and line[column] != " " for line in lines[start + 1 : end]
    )
    assert said(out)["paused"] == (
        f"일시 정지되었습니다. 정지한 사람: 운영팀-김민수. {long_time(T2)}에 재개됩니다. "
        f"이유: {paused['reason']}."
    )
    assert "".join(lines[:start]).replace(" ", "").startswith(name.replace(" ", ""))


def test_a_code_the_command_does_not_know_keeps_the_daemons_message(korean: None) -> None:
    newer = {"code": "cluster_fenced", "message": "Its node lost its lease.", "details": {}}
    out = explanation(document(newer, reason("paused", {})), name=NAME, now=NOW)
    assert said(out)["cluster_fenced"] == "Its node lost its lease."
    assert said(out)["paused"] == "일시 정지되었습니다."
    odd = {"code": "paused", "message": "paused, as it came", "details": None}
    assert said(explanation(document(odd), name=NAME, now=NOW))["paused"] == "paused, as it came"


def test_english_is_exactly_the_daemons_text(english: None) -> None:
    doc = document(*(reason(code, details) for code, details, _ in REASONS[:6]))
    long = {"code": "paused", "message": "It was paused " + "and so on " * 20, "details": {}}
    doc["reasons"].append(long)
    lines = explanation(doc, name=NAME, now=NOW, columns=80).splitlines()
    assert lines[0] == doc["summary"]
    shown = [line.split(maxsplit=1) for line in lines[lines.index("Reasons") + 1 :]]
    assert shown == [[r["code"], r["message"].strip()] for r in doc["reasons"]]
    assert not explain_ko.own_words()


def test_wrap_breaks_at_spaces_not_inside_a_time_and_inside_a_word_wider_than_a_line() -> None:
    assert explain_ko.wrap("가나다 라마 " * 3, 20) == ["가나다 라마 가나다", "라마 가나다 라마"]
    assert explain_ko.wrap("가" * 25, 20) == ["가" * 10, "가" * 10, "가" * 5]
    assert explain_ko.wrap("", 20) == [""]
    at = "점검은 2030-01-07 09:00:00+09:00부터 입니다"  # a date and its time stay together
    assert explain_ko.wrap(at, 30) == ["점검은", "2030-01-07 09:00:00+09:00부터", "입니다"]


# --- the real command and the real daemon -------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with jobs_daemon(tmp_path_factory.mktemp("cli-i18n-explain")) as started:
        yield started


def explain(daemon: DaemonProcess, job_id: str) -> tuple[str, dict[str, Any]]:
    done = cli(daemon, "explain", job_id, env=environ(**KOREAN))
    assert done.returncode == 0, done.stderr
    as_json = cli(daemon, "explain", job_id, "--json", env=environ(**KOREAN))
    return done.stdout, json.loads(as_json.stdout)


@pytest.mark.integration
def test_a_paused_job_is_explained_in_korean(daemon: DaemonProcess) -> None:
    job = create(daemon, task="steps", workflowName="주간-보고")
    until = "2031-03-02T09:00:00+09:00"
    pause = ("--by", "김민수", "--reason", "quarter close", "--until", until)
    assert cli(daemon, "pause", job["id"], *pause).returncode == 0
    out, doc = explain(daemon, job["id"])
    assert all(width(line) <= 80 for line in out.splitlines()), out
    assert out.splitlines()[0].startswith("주간-보고: ")
    assert doc["summary"] not in out  # --json keeps the daemon's English sentence
    assert field(out, "상태") == "일시 정지됨"
    details = doc["reasons"][0]["details"]
    assert details["by"] == "김민수"
    assert said(out)["paused"] == (
        f"일시 정지되었습니다. 정지한 사람: 김민수. {long_time(details['until'])}에 재개됩니다. "
        "이유: quarter close."
    )
    assert long_time(details["until"]) == "2031-03-02 09:00:00+09:00"
    assert doc["status"] == "paused"
    assert doc["reasons"][0]["code"] == "paused"


@pytest.mark.integration
def test_the_whole_scheduler_paused_is_explained_in_korean(daemon: DaemonProcess) -> None:
    job = create(daemon, task="steps", workflowName="야간-정리")
    api(daemon, "POST", "/api/scheduler/pause")
    try:
        out, doc = explain(daemon, job["id"])
        english = cli(daemon, "explain", job["id"], env=environ(LANG="C.UTF-8"))
    finally:
        api(daemon, "POST", "/api/scheduler/resume")
    assert "scheduler_paused" in [r["code"] for r in doc["reasons"]]
    assert said(out)["scheduler_paused"] == (
        "스케줄러 전체가 일시 정지되어 재개할 때까지 아무 실행도 시작하지 않습니다."
    )
    when = long_time(doc["nextRun"])
    assert out.splitlines()[0] in (
        f"야간-정리: 다음 실행은 {when}입니다.",
        f"야간-정리: {when}에 실행될 예정이었지만 아직 시작되지 않았습니다.",
    )
    assert all(width(line) <= 80 for line in out.splitlines()), out
    assert english.stdout.splitlines()[0] == doc["summary"]  # English: the daemon's, as it came


def test_the_korean_explain_example_of_the_cli_guide_is_what_explain_prints(korean: None) -> None:
    body = section(DOCS / "cli.md", "## ", "In Korean")
    prompt = r"^```\n\$ LANG=ko_KR.UTF-8 scheduler jobs explain 688dd0a2c3800000\n(.*?)^```"
    [example] = re.findall(prompt, body, re.S | re.M)
    paused = {"by": "김민수", "reason": "분기 마감", "until": "2026-12-01T09:00:00.000+09:00"}
    doc = {
        "jobId": "688dd0a2c3800000",
        "status": "paused",
        "summary": "Job '주간-보고서' will not run until it is resumed because it was paused.",
        "lastExpected": "2026-11-23T09:00:00.000+09:00",
        "nextRun": None,
        "timezone": "Asia/Seoul",
        "reasons": [reason("paused", paused)],
    }
    assert explanation(doc, name="주간-보고서", now=NOW, columns=80) == example
