"""The command line speaks the operator's language: Korean when the locale is Korean, English
otherwise, chosen in gettext's order (``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``).

The language rules and the Korean wording are checked in-process; the command itself runs as
``python -m scheduler`` with the locale in its environment, as an operator's shell starts it,
against the in-process API.
"""

from __future__ import annotations

import asyncio
import gettext
import os
import re
import sys
from datetime import datetime

import pytest

from scheduler import i18n
from scheduler.cli import status as status_cli
from scheduler.cli.tables import width
from tests.api.harness import T0, TOKEN, Api, ApiOptions
from tests.daemon_proc import free_port
from tests.docs_text import DOCS, section

KOREAN = {"LANG": "ko_KR.UTF-8"}
COUNTS = ("pending", "running", "completed", "failed", "cancelled", "paused")
#: What a terminal's locale may look like, and the language the command must answer in.
LOCALES = [
    ({"LANG": "ko_KR.UTF-8"}, "ko"),
    ({"LANG": "ko_KR.eucKR"}, "ko"),
    ({"LANG": "ko"}, "ko"),
    ({"LANG": "en_US.UTF-8"}, "en"),
    ({"LANG": "C"}, "en"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({}, "en"),
    ({"LC_ALL": "C", "LANG": "ko_KR.UTF-8"}, "en"),  # LC_ALL comes before LANG
    ({"LC_MESSAGES": "ko_KR.UTF-8", "LANG": "en_US.UTF-8"}, "ko"),
    ({"LANGUAGE": "ko", "LANG": "C.UTF-8"}, "ko"),  # LANGUAGE comes first of all
    ({"LANGUAGE": "fr:ko", "LANG": "en_US.UTF-8"}, "ko"),  # no French: the next one
    ({"LANGUAGE": "en:ko", "LANG": "ko_KR.UTF-8"}, "en"),  # English is the msgids: found first
    ({"LANGUAGE": "C:ko"}, "en"),  # C ends the list
    ({"LANGUAGE": "", "LC_ALL": "", "LANG": "ko_KR.UTF-8"}, "ko"),  # empty is unset
]


@pytest.fixture
def api_options() -> ApiOptions:
    return {"token": TOKEN}


@pytest.fixture
def korean(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's messages in Korean, as ``LANG=ko_KR.UTF-8`` would choose them."""
    monkeypatch.setattr(i18n, "_current", lambda: i18n.translation(KOREAN))


def url_of(api: Api) -> str:
    return str(api.client.make_url("")).rstrip("/")


async def scheduler(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``python -m scheduler ARGS`` with the locale of ``env`` (``LANG=C.UTF-8`` unless it says)."""
    unset = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LC_CTYPE", "PYTHONIOENCODING")
    base = {k: v for k, v in os.environ.items() if k not in unset}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scheduler", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**base, "LANG": "C.UTF-8", "COLUMNS": "200", **env},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# --- the choice of language --------------------------------------------------------------------


@pytest.mark.parametrize(("environ", "language"), LOCALES)
def test_the_language_follows_gettexts_order_of_variables(
    environ: dict[str, str], language: str
) -> None:
    chosen = i18n.translation(environ)
    assert chosen.gettext("pending") == {"ko": "대기 중", "en": "pending"}[language]
    assert isinstance(chosen, gettext.GNUTranslations) == (language == "ko")


def test_the_catalogue_is_compiled_once() -> None:
    assert i18n.translation(KOREAN) is i18n.translation({"LANGUAGE": "ko"})


# --- the Korean wording, in-process ------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "지금"),
        (45, "45초 후"),
        (7980, "2시간 13분 후"),
        (-300, "5분 전"),
        (90061, "1일 1시간 후"),
    ],
)
def test_relative_times_read_naturally_in_korean(korean: None, seconds: float, text: str) -> None:
    assert status_cli.relative(seconds) == text


def test_the_korean_table_lines_up_its_values_in_terminal_cells(korean: None) -> None:
    doc = {
        "isRunning": True,
        "state": "paused",
        "totalJobs": 1200,
        "pendingJobs": 1199,
        "cancelledJobs": 1,
        "nextJob": {
            "id": "18a4c1e9c1800000",
            "workflowName": "야간-백업",
            "type": "recurring",
            "scheduledTime": "2030-01-07T10:00:00.000+09:00",
        },
    }
    lines = status_cli.render(doc, "http://h:1", T0).splitlines()
    assert re.split(r"  +", lines[0]) == ["스케줄러", "일시 정지됨 (http://h:1)"]
    assert lines[1].split() == ["작업", "총", "1200개"]
    assert [line.split()[:2] for line in lines[2:4]] == [["대기", "중"], ["취소됨", "1"]]
    assert lines[4].endswith("야간-백업 (반복)")
    assert lines[5].endswith("2030-01-07 10:00:00+09:00 (1시간 후)")
    starts = {width(line) - width(re.split(r"\S  +", line, maxsplit=1)[1]) for line in lines}
    assert len(starts) == 1, lines  # every value starts in the same terminal column


# --- the command, as an operator runs it -------------------------------------------------------


@pytest.mark.integration
async def test_status_in_korean_has_korean_labels_and_no_english_word(api: Api) -> None:
    job = await api.create(schedule={"delay": "2h13m"}, workflowName="nightly-backup")
    await api.create(schedule={"cron": "0 9 * * *"})
    url = url_of(api)
    code, out, err = await scheduler("status", "--url", url, env=KOREAN)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["스케줄러", "실행", "중", f"({url})"]
    assert lines[1].split() == ["작업", "총", "2개"]
    assert lines[2].split() == ["대기", "중", "2"]
    assert lines[-3].split() == ["다음", "실행", "nightly-backup", "(지연", "실행)"]
    assert re.fullmatch(r"  시각 +2030-01-07 11:13:00\+09:00 \(\d+일 \d+시간 (후|전)\)", lines[-2])
    assert lines[-1].split() == ["ID", job["id"]]
    # What the daemon says (URL, name, id, time) stays as it is; every word around it is Korean
    # ("ID" is how Korean screens write it).
    words = out
    for data in (url, "nightly-backup", job["id"], "2030-01-07 11:13:00+09:00", "ID"):
        words = words.replace(data, "")
    assert re.findall(r"[A-Za-z]+", words) == []


@pytest.mark.integration
@pytest.mark.parametrize("env", [{"LANG": "en_US.UTF-8"}, {"LANG": "C"}, {}])
async def test_status_is_english_in_any_other_locale(api: Api, env: dict[str, str]) -> None:
    await api.create(schedule={"delay": "1h"}, workflowName="nightly")
    url = url_of(api)
    code, out, err = await scheduler("status", "--url", url, env=env)
    assert (code, err) == (0, "")
    assert out.splitlines()[0].split() == ["Scheduler", "running", "at", url]
    assert "Next job" in out
    assert re.search(r"[가-힣]", out) is None


@pytest.mark.integration
async def test_status_against_nothing_says_so_in_one_korean_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = await scheduler("status", "--url", url, env=KOREAN)
    assert (code, out) == (1, "")
    no_answer = f"{url}/api/scheduler에서 응답하는 스케줄러가 없습니다 ("
    assert err.startswith(f"scheduler status: {no_answer}")
    assert err.count("\n") == 1


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--help"], ["작업 스케줄러 데몬.", "위치 인수:", "실행 중인 데몬의 상태 보기"]),
        (["status", "--help"], ["데몬의 기본 URL", "먼저 데몬이 준비될 때까지 대기 (/healthz)"]),
        (["check", "--help"], ["설정 파일 (--state만 주지 않으면 기본값 /etc/scheduler/"]),
    ],
)
async def test_help_is_korean(args: list[str], says: list[str]) -> None:
    code, out, err = await scheduler(*args, env=KOREAN)
    assert (code, err) == (0, "")
    assert out.startswith("사용법: scheduler")
    assert "옵션:" in out
    assert "-h, --help" in out
    assert "이 도움말을 보여 주고 종료" in out
    for text in says:
        assert text in out
    for english in ("usage:", "options:", "show this help", "positional arguments"):
        assert english not in out


@pytest.mark.integration
async def test_a_usage_error_is_korean_and_exits_2() -> None:
    code, out, err = await scheduler("status", "--bogus", env=KOREAN)
    assert (code, out) == (2, "")
    assert err.startswith("사용법: scheduler")
    assert err.splitlines()[-1] == "scheduler: 오류: 알 수 없는 인수: --bogus"


def test_the_korean_example_of_the_operations_guide_is_what_status_prints(korean: None) -> None:
    body = section(DOCS / "operations.md", "### ", "Language")
    prompt = r"^```\n\$ LANG=ko_KR.UTF-8 scheduler status\n(.*?)^```"
    [example] = re.findall(prompt, body, re.S | re.M)
    doc = {
        "isRunning": True,
        "state": "running",
        "totalJobs": 12,
        **{f"{k}Jobs": n for k, n in zip(COUNTS, (7, 1, 3, 1, 0, 0), strict=True)},
        "nextJob": {
            "id": "688dcf8e71400000",
            "workflowName": "nightly-backup",
            "type": "recurring",
            "scheduledTime": "2026-11-24T05:00:00+09:00",
        },
    }
    now = datetime.fromisoformat("2026-11-24T05:00:00+09:00").timestamp() - (2 * 3600 + 13 * 60)
    assert status_cli.render(doc, "http://127.0.0.1:8080", now) == example
