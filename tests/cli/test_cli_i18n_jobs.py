"""``scheduler jobs``, ``next``, ``check`` and ``cluster status`` speak Korean when the locale is
Korean: the real commands as subprocesses with ``LANG=ko_KR.UTF-8`` (``jobs`` against the real
daemon of ``harness.py``), their tables measured in terminal cells (Hangul takes two).

What the daemon says stays as it came (a job's name, its id, the API's error messages: clients
match those; ``explain`` says its own Korean from the codes: ``test_cli_i18n_explain.py``), and
``--json`` keeps the API's English keys and values; every word the command line adds is Korean.
The same commands in ``LANG=C`` are the English ones ``test_cli_jobs.py``, ``test_cli_next.py``
and ``test_cli_check.py`` check.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler import i18n
from scheduler.cli import problems
from scheduler.cli.jobs_view import job_list
from scheduler.cli.tables import width
from scheduler.cluster import cli as cluster_cli
from tests import ROOT
from tests.cli.harness import api, cli, create, environ, field, jobs_daemon, percents
from tests.daemon_proc import DaemonProcess
from tests.docs_text import DOCS, section

KOREAN = {"LANG": "ko_KR.UTF-8"}
#: A job of the daemon's config: its schedule, zone and task, as ``check`` names them.
GOOD_CONFIG = """
[tasks.hello]
kind = "command"
argv = ["echo", "hi"]

[[jobs]]
name = "nightly-backup"
task = "hello"
cron = "0 3 * * *"
"""
BAD_CONFIG = (
    GOOD_CONFIG
    + """
max_retries = "three"
priorty = 5
"""
)


def korean_env(**extra: str) -> dict[str, str]:
    return environ(**KOREAN, **extra)


def hangul(text: str) -> bool:
    return re.search(r"[가-힣]", text) is not None


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with jobs_daemon(tmp_path_factory.mktemp("cli-i18n-jobs")) as started:
        yield started


@pytest.fixture
def korean(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's messages in Korean, as ``LANG=ko_KR.UTF-8`` would choose them."""
    monkeypatch.setattr(i18n, "_current", lambda: i18n.translation(KOREAN))


def scheduler(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m scheduler ARGS`` (``next``, ``check``) as an operator's shell runs it."""
    return subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=40,
        check=False,
    )


# --- scheduler jobs, against the real daemon ---------------------------------------------------


@pytest.mark.integration
def test_list_has_korean_headers_and_statuses_and_fits_80_columns(daemon: DaemonProcess) -> None:
    long = create(daemon, task="steps", workflowName="야간-백업-" * 20)
    paused = create(daemon, task="steps", workflowName="주간-보고")
    assert cli(daemon, "pause", paused["id"]).returncode == 0
    done = cli(daemon, "list", "--task", "steps", "--limit", "500", env=korean_env())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.split(r"  +", lines[0]) == ["ID", "이름", "상태", "예정 시각", "태스크"]
    assert all(width(line) <= 80 for line in lines), done.stdout
    row = next(line for line in lines if line.startswith(long["id"]))
    assert width(row) in (79, 80)  # the name cut to fit by cells (a Hangul one may leave one)
    assert re.split(r"  +", row)[1].endswith("…")
    assert "대기 중" in row
    assert "일시 정지됨" in next(line for line in lines if line.startswith(paused["id"]))
    for english in ("NAME", "STATUS", "pending", "paused"):
        assert english not in done.stdout

    as_json = cli(daemon, "list", "--task", "steps", "--limit", "500", "--json", env=korean_env())
    page = json.loads(as_json.stdout)  # --json: the API's own keys and values
    statuses = {job["id"]: job["status"] for job in page["items"]}
    assert (statuses[long["id"]], statuses[paused["id"]]) == ("pending", "paused")


@pytest.mark.integration
def test_the_next_page_hint_is_korean(daemon: DaemonProcess) -> None:
    for n in range(3):
        create(daemon, task="flaky", workflowName=f"page-{n}", schedule={"delay": "1h"})
    done = cli(daemon, "list", "--task", "flaky", "--limit", "2", env=korean_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "작업 3개 중 1-2; 더 보려면 --page 2"
    empty = cli(daemon, "list", "--task", "no-such-task", env=korean_env())
    assert empty.stdout == "작업이 없습니다\n"


@pytest.mark.integration
def test_show_labels_each_field_in_korean(daemon: DaemonProcess) -> None:
    job = create(daemon, task="steps", workflowName="show-me", payload={"team": "ops"})
    done = cli(daemon, "show", job["id"], env=korean_env())
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert field(out, "ID") == job["id"]
    assert field(out, "이름") == "show-me"
    assert field(out, "상태") == "대기 중"
    assert field(out, "유형") == "반복"
    assert field(out, "일정") == "cron 0 3 * * *"  # the schedule as written
    assert field(out, "시간대") == "Asia/Seoul"
    assert field(out, "예정 시각").endswith("03:00:00+09:00")
    assert field(out, "시도") == "0 (최대 3회 재시도)"
    assert field(out, "페이로드") == '{"team":"ops"}'
    # Values start in one terminal column: the labels are padded by cells, not characters.
    starts = {width(line) - width(line.split("  ", 1)[1].lstrip()) for line in out.splitlines()}
    assert len(starts) == 1, out
    as_json = json.loads(cli(daemon, "show", job["id"], "--json", env=korean_env()).stdout)
    assert as_json == api(daemon, "GET", f"/api/jobs/{job['id']}")


@pytest.mark.integration
def test_run_wait_and_runs_are_korean(daemon: DaemonProcess) -> None:
    job = create(daemon, task="steps", workflowName="with-progress")
    done = cli(daemon, "run", job["id"], "--wait", env=korean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert percents(done.stdout) == [0, 25, 50, 75, 100]
    lines = done.stdout.splitlines()
    assert lines[0].endswith("0%  시작됨 (시도 1)")
    assert lines[2] == "[##########----------]  50%  step 50"  # the task's own message
    assert re.fullmatch(r"결과: 성공 \(시도 1, 소요 \d\.\d\d초\)", lines[-1]), lines

    runs = cli(daemon, "runs", job["id"], env=korean_env())
    assert runs.returncode == 0, runs.stderr
    header, row = runs.stdout.splitlines()[:2]
    assert re.split(r"  +", header) == ["예정 시각", "시도", "결과", "소요 시간", "비고"]
    assert re.split(r"  +", row)[1:3] == ["1", "성공"]
    assert re.fullmatch(r"\d\.\d\d초", re.split(r"  +", row)[3])


@pytest.mark.integration
def test_a_failed_run_says_its_outcome_in_korean_and_keeps_the_error(
    daemon: DaemonProcess,
) -> None:
    job = create(daemon, task="fail", workflowName="always-fails")
    done = cli(daemon, "run", job["id"], "--wait", env=korean_env())
    assert done.returncode == 6, done.stdout + done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith("결과: 오류 (시도 1, 소요 "), last
    assert "broken" in last  # the task's error, as it came


@pytest.mark.integration
def test_explain_labels_are_korean_and_the_daemons_words_stay(daemon: DaemonProcess) -> None:
    job = create(daemon, task="steps", workflowName="explained")
    assert cli(daemon, "pause", job["id"], "--reason", "quarter close").returncode == 0
    done = cli(daemon, "explain", job["id"], env=korean_env())
    assert done.returncode == 0, done.stderr
    doc = json.loads(cli(daemon, "explain", job["id"], "--json", env=korean_env()).stdout)
    lines = done.stdout.splitlines()
    assert lines[0] == "explained: 재개할 때까지 실행되지 않습니다."  # Korean, from the codes
    assert doc["summary"] not in done.stdout  # the daemon's English sentence is --json's
    assert field(done.stdout, "상태") == "일시 정지됨"
    assert field(done.stdout, "시간대") == "Asia/Seoul"
    assert field(done.stdout, "다음 실행") != ""
    shown = [line.split(maxsplit=1) for line in lines[lines.index("사유") + 1 :]]
    by = doc["reasons"][0]["details"]["by"]
    assert shown == [["paused", f"일시 정지되었습니다. 정지한 사람: {by}. 이유: quarter close."]]
    assert doc["status"] == "paused"  # --json keeps the API's values


@pytest.mark.integration
def test_an_action_says_what_it_did_in_korean(daemon: DaemonProcess) -> None:
    job = create(daemon, task="steps", workflowName="to-pause")
    paused = cli(daemon, "pause", job["id"], env=korean_env())
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith(
        f"일시 정지됨: {job['id']} (to-pause); 상태 일시 정지됨, 예정 시각 "
    )
    resumed = cli(daemon, "resume", job["id"], env=korean_env())
    assert resumed.stdout.startswith(f"재개됨: {job['id']} (to-pause); 상태 대기 중, ")
    deleted = cli(daemon, "delete", job["id"], env=korean_env())
    assert deleted.stdout == f"삭제됨: {job['id']}\n"


@pytest.mark.integration
def test_refusals_are_korean_with_the_daemons_message_as_it_came(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    job = create(daemon, task="steps", workflowName="refused")
    conflict = cli(daemon, "resume", job["id"], env=korean_env())
    assert (conflict.returncode, conflict.stdout) == (4, "")
    assert conflict.stderr == (
        f"scheduler jobs: 작업의 현재 상태에서는 할 수 없습니다: job {job['id']} is pending, "
        "not paused\n"
    )
    assert cli(daemon, "delete", job["id"]).returncode == 0
    gone = cli(daemon, "show", job["id"], env=korean_env())
    assert gone.returncode == 3
    assert gone.stderr == f"scheduler jobs: 그런 작업이 없습니다: no job with id '{job['id']}'\n"
    malformed = cli(daemon, "show", "not-an-id", env=korean_env())  # refused before any request
    assert malformed.returncode == 3
    assert malformed.stderr.startswith("scheduler jobs: 그런 작업이 없습니다: no job with id ")

    missing = cli(daemon, "list", env=korean_env(SCHEDULER_API_TOKEN=""))
    assert missing.returncode == 5
    assert missing.stderr == (
        f"scheduler jobs: {daemon.url}에는 API 토큰이 필요합니다: --token-file FILE"
        "(예: /etc/scheduler/api_token)을 주거나 $SCHEDULER_API_TOKEN를 설정하세요\n"
    )
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token-9d2\n")
    refused = cli(daemon, "list", "--token-file", str(wrong), env=korean_env())
    assert refused.returncode == 5
    assert refused.stderr.startswith(
        f"scheduler jobs: {daemon.url}이 --token-file {wrong}의 API 토큰을 거부했습니다: "
    )
    assert "not-the-token-9d2" not in refused.stderr


@pytest.mark.integration
def test_jobs_help_and_its_exit_codes_are_korean(daemon: DaemonProcess) -> None:
    done = cli(daemon, "list", "--help", env=korean_env(COLUMNS="200"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("사용법: scheduler jobs list")
    assert "작업 목록 (한 페이지씩, 오래된 순)" in done.stdout
    assert "페이지당 작업 수, 1..500 (기본값 20)" in done.stdout
    assert "종료 코드:\n" in done.stdout
    assert "    3  그런 작업이 없습니다\n" in done.stdout
    assert "exit codes" not in done.stdout


@pytest.mark.integration
def test_the_same_commands_in_the_c_locale_are_english(daemon: DaemonProcess) -> None:
    job = create(daemon, task="steps", workflowName="in-english")
    listing = cli(daemon, "list", "--task", "steps", env=environ(LANG="C"))
    assert listing.stdout.splitlines()[0].split() == ["ID", "NAME", "STATUS", "SCHEDULED", "TASK"]
    shown = cli(daemon, "show", job["id"], env=environ(LANG="C"))
    assert field(shown.stdout, "Status") == "pending"
    statuses = {re.split(r"  +", line)[2] for line in listing.stdout.splitlines()[1:]}
    assert "pending" in statuses
    assert not any(hangul(status) for status in statuses)


# --- scheduler next and check -------------------------------------------------------------------


@pytest.mark.integration
def test_next_names_the_days_in_korean(tmp_path: Path) -> None:
    after = ("--after", "2026-01-01T00:00", "--tz", "Asia/Seoul")
    done = scheduler("next", "0 9 * * mon", "-n", "3", *after, env=korean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"월 2026-01-{day} 09:00:00 +09:00 (KST)   2026-01-{day} 00:00:00 UTC"
        for day in ("05", "12", "19")
    ]
    once = scheduler(
        "next", '{"at": "2026-01-02T09:00"}', "-n", "3", *after, env=korean_env(), cwd=tmp_path
    )
    assert once.stdout.splitlines() == [
        "금 2026-01-02 09:00:00 +09:00 (KST)   2026-01-02 00:00:00 UTC",
        "(더 이상 실행 없음)",
    ]
    bad = scheduler("next", "0 9 * * mon", "-n", "20000", env=korean_env(), cwd=tmp_path)
    assert (bad.returncode, bad.stderr) == (
        2,
        "scheduler next: -n: 0..10000 사이여야 합니다. 받은 값: 20000\n",
    )
    refused = scheduler("next", '{"cron": 5}', env=korean_env(), cwd=tmp_path)
    assert refused.returncode == 2
    assert re.fullmatch(
        r"scheduler next: schedule\.cron: .+\(이\)어야 합니다 \(받은 값: 5\)\n", refused.stderr
    )
    english = scheduler("next", "0 9 * * mon", "-n", "1", *after, env=environ(), cwd=tmp_path)
    assert english.stdout.startswith("Mon 2026-01-05 09:00:00 +09:00 (KST)")


@pytest.mark.integration
def test_check_says_a_good_config_is_good_in_korean(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(GOOD_CONFIG)
    done = scheduler("check", "-c", str(config), env=korean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"정상: {config}"
    assert lines[1] == "nightly-backup: cron '0 3 * * *', 시간대 Asia/Seoul, 태스크 hello"
    assert all(re.fullmatch(r"  \d{4}-\d\d-\d\dT03:00:00\+09:00", line) for line in lines[2:])
    assert len(lines) == 7


@pytest.mark.integration
def test_check_says_each_problem_in_korean_naming_the_key_as_written(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(BAD_CONFIG)
    done = scheduler("check", "-c", str(config), env=korean_env(), cwd=tmp_path)
    assert done.returncode == 78
    assert sorted(done.stdout.splitlines()) == [
        f"{config}: jobs[0].max_retries: 0부터 1000까지의 정수(이)어야 합니다 (받은 값: 'three')",
        f"{config}: jobs[0].priorty: 알 수 없는 키입니다. 혹시 'priority'인가요?",
    ]
    english = scheduler("check", "-c", str(config), env=environ(), cwd=tmp_path)
    assert sorted(english.stdout.splitlines()) == [
        f"{config}: jobs[0].max_retries: expected an integer from 0 to 1000, got 'three'",
        f"{config}: jobs[0].priorty: unknown key; did you mean 'priority'?",
    ]


@pytest.mark.integration
def test_cluster_commands_say_a_config_problem_in_korean(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="cluster mode's driver: pip install '.[cluster]'")
    config = tmp_path / "config.toml"
    config.write_text('[cluster]\nurl = "postgresql://127.0.0.1/none"\nlease = "soon"\n')
    done = scheduler("cluster", "status", "-c", str(config), env=korean_env(), cwd=tmp_path)
    assert done.returncode == 78, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"{config}: cluster.lease: "), line
    assert "(받은 값: 'soon')" in line, line
    english = scheduler("cluster", "status", "-c", str(config), env=environ(), cwd=tmp_path)
    assert english.stderr.startswith(f"{config}: cluster.lease: expected "), english.stderr


# --- the wording, in-process -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "korean_line"),
    [
        (
            "c.toml: jobs[2].enabled: expected true or false, got 'yes'",
            "c.toml: jobs[2].enabled: true 또는 false(이)어야 합니다 (받은 값: 'yes')",
        ),
        (
            "c.toml: jobs[0].overlap: expected one of allow, skip, got 'x'",
            "c.toml: jobs[0].overlap: allow, skip 중 하나(이)어야 합니다 (받은 값: 'x')",
        ),
        (
            "c.toml: scheduler.workers: expected an integer of at least 1, got 0",
            "c.toml: scheduler.workers: 1 이상의 정수(이)어야 합니다 (받은 값: 0)",
        ),
        (
            "c.toml: server.x: unknown key (known keys: host, port)",
            "c.toml: server.x: 알 수 없는 키입니다 (알려진 키: host, port)",
        ),
        (
            "c.toml: jobs[0]: 3 more unknown keys (not listed)",
            "c.toml: jobs[0]: 알 수 없는 키 3개 더 (목록 생략)",
        ),
        # A phrase without a translation stays English inside the Korean sentence.
        (
            "c.toml: jobs[0].retry.delay: expected a duration like '90s', got 'x'",
            "c.toml: jobs[0].retry.delay: a duration like '90s'(이)어야 합니다 (받은 값: 'x')",
        ),
        # Any other message (a TOML syntax error) is shown as it came.
        ("c.toml:3:7: Invalid value", "c.toml:3:7: Invalid value"),
    ],
)
def test_config_problems_keep_their_key_and_value_in_a_korean_sentence(
    korean: None, line: str, korean_line: str
) -> None:
    assert problems.problem_text(line) == korean_line


def test_config_problems_are_unchanged_in_english() -> None:
    line = "c.toml: jobs[0].max_retries: expected an integer from 0 to 1000, got 'three'"
    assert problems.problem_text(line) == line


def test_the_translated_phrases_are_the_checkers_own() -> None:
    """A phrase reworded in ``scheduler/checks.py`` would silently stay English: keep in step."""
    checks = (ROOT / "scheduler" / "checks.py").read_text(encoding="utf-8")
    for phrase in problems.PHRASES:
        assert f'"{phrase}"' in checks, phrase
    for pattern, _message in problems.VALUED:
        assert pattern.pattern.split(" (?P")[0].split("(?P")[0] in checks, pattern.pattern


def test_the_korean_example_of_the_cli_guide_is_what_list_prints(korean: None) -> None:
    body = section(DOCS / "cli.md", "## ", "In Korean")
    prompt = r"^```\n\$ LANG=ko_KR.UTF-8 scheduler jobs list --limit 2\n(.*?)^```"
    [example] = re.findall(prompt, body, re.S | re.M)
    items = [
        ("688dcf8e71400000", "nightly-backup", "pending", "2026-11-25T03:00:00+09:00", "backup"),
        ("688dd0a2c3800000", "주간-보고서", "paused", "2026-11-30T09:00:00+09:00", "report"),
    ]
    keys = ("id", "workflowName", "status", "scheduledTime", "task")
    page = {
        "page": 1,
        "limit": 2,
        "total": 3,
        "items": [dict(zip(keys, i, strict=True)) for i in items],
    }
    assert job_list(page, 80) == example


# --- scheduler cluster status, in-process --------------------------------------------------------

NODE = {
    "nodeId": "alpha",
    "host": "host-a",
    "pid": 101,
    "epoch": 2,
    "slot": 0,
    "heartbeatAge": 1.5,
    "alive": True,
    "clockSkew": 0.25,
    "replicaLag": 0.012,
    "inflight": 2,
    "staleInflight": 1,
}
CLUSTER = {
    "database": "127.0.0.1:5432/scheduler schema scheduler",
    "version": 1,
    "paused": True,
    "housekeeper": {"node": None, "active": False},
    "nodes": [NODE, {**NODE, "nodeId": "beta", "alive": False, "heartbeatAge": -1.0}],
    "aliveNodes": 1,
    "configMismatch": True,
    "inflight": 3,
    "jobs": {"pending": 37, "running": 3, "completed": 1, "failed": 0, "cancelled": 0,
             "paused": 0, "total": 41},
}  # fmt: skip


def test_cluster_status_is_korean_and_its_columns_line_up_in_cells(korean: None) -> None:
    lines = cluster_cli.render_status(CLUSTER).splitlines()
    rows = [
        ("데이터베이스", "127.0.0.1:5432/scheduler schema scheduler 버전 1"),
        ("클러스터", "일시 정지됨; 노드 2개 중 1개 생존"),
        ("진행 중", "실행 3건"),
        ("관리 노드", "없음 (리스를 가진 노드 없음)"),
        ("작업", "총 41개"),
        ("", "대기 중 37, 실행 중 3, 완료 1, 실패 0, 취소됨 0, 일시 정지됨 0"),
        ("경고", "살아 있는 노드들의 설정이 서로 다릅니다 (--json의 configHash)"),
    ]
    # Every value starts in one terminal cell, one past the widest label (12 cells).
    assert lines[:7] == [label + " " * (13 - width(label)) + value for label, value in rows]
    header, alpha, beta = lines[-3:]
    assert header.split() == ["노드", "호스트", "PID", "세대", "슬롯", "하트비트", "생존", "시계차",
                              "지연", "실행"]  # fmt: skip
    assert alpha.split()[6] == "예"
    assert (beta.split()[5], beta.split()[6]) == ("앞섬", "아님")
    # Each right-aligned column ends in the same terminal cell on every row.
    assert width(header) == width(alpha) == width(beta)
    assert all(width(line) <= 80 for line in lines)


def test_cluster_status_in_english_is_unchanged() -> None:
    lines = cluster_cli.render_status(CLUSTER).splitlines()
    assert lines[1] == "cluster     PAUSED; 1 of 2 nodes alive"
    assert lines[-3].split()[:3] == ["NODE", "HOST", "PID"]
    assert lines[-2].split()[6] == "yes"
