"""``scheduler jobs`` against the real daemon, run as an operator or a script runs it: ``python -m
scheduler jobs ...`` as a subprocess, its stdout, stderr and exit code checked.

One daemon serves the module (its start is the slow part): see ``harness.py`` for its tasks,
its token and the helpers.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.cli.tables import width
from tests.cli.harness import (
    TOKEN,
    api,
    argv,
    cli,
    create,
    environ,
    field,
    jobs_daemon,
    percents,
    until_status,
)
from tests.daemon_proc import DaemonProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with jobs_daemon(tmp_path_factory.mktemp("cli-jobs")) as started:
        yield started


# --- reading -----------------------------------------------------------------------------------


def test_list_fits_80_columns_with_a_200_character_name(daemon: DaemonProcess) -> None:
    long = create(daemon, task="steps", workflowName="report-" + "x" * 193)
    korean = create(daemon, task="steps", workflowName="야간-백업-" * 20)
    done = cli(daemon, "list", "--task", "steps", "--limit", "500")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATUS", "SCHEDULED", "TASK"]
    assert all(width(line) <= 80 for line in lines), done.stdout
    row = next(line for line in lines if line.startswith(long["id"]))
    assert width(row) == 80
    name, status, _day, _time, task = row.split()[1:]
    assert name.startswith("report-xxx")
    assert name.endswith("…")
    assert (status, task) == ("pending", "steps")
    assert any(line.startswith(korean["id"]) and "야간-백업" in line for line in lines)

    as_json = cli(daemon, "list", "--task", "steps", "--limit", "500", "--json")
    assert as_json.returncode == 0, as_json.stderr
    page = json.loads(as_json.stdout)
    names = {job["id"]: job["workflowName"] for job in page["items"]}
    assert names[long["id"]] == long["workflowName"]  # whole
    assert page["total"] >= 2


def test_list_pages_and_filters(daemon: DaemonProcess) -> None:
    for n in range(3):
        create(daemon, task="fail", workflowName=f"page-{n}", schedule={"delay": "1h"})
    done = cli(daemon, "list", "--task", "fail", "--type", "delayed", "--limit", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[1] for line in lines[1:3]] == ["page-0", "page-1"]
    assert lines[-1] == "jobs 1-2 of 3; --page 2 for more"
    last = cli(daemon, "list", "--task", "fail", "--type", "delayed", "--limit", "2", "--page", "2")
    assert [line.split()[1] for line in last.stdout.splitlines()[1:]] == ["page-2"]
    none = cli(daemon, "list", "--task", "no-such-task")
    assert (none.returncode, none.stdout) == (0, "no jobs\n")


def test_show_prints_the_job_field_by_field_and_json_parses(daemon: DaemonProcess) -> None:
    job = create(daemon, task="steps", workflowName="show-me", payload={"team": "ops"})
    done = cli(daemon, "show", job["id"])
    assert done.returncode == 0, done.stderr
    assert field(done.stdout, "ID") == job["id"]
    assert field(done.stdout, "Name") == "show-me"
    assert field(done.stdout, "Status") == "pending"
    assert field(done.stdout, "Schedule") == "cron 0 3 * * *"
    assert field(done.stdout, "Time zone") == "Asia/Seoul"
    assert field(done.stdout, "Payload") == '{"team":"ops"}'
    assert field(done.stdout, "Scheduled").endswith("03:00:00+09:00")
    as_json = json.loads(cli(daemon, "show", job["id"], "--json").stdout)
    assert as_json == api(daemon, "GET", f"/api/jobs/{job['id']}")


# --- run --wait --------------------------------------------------------------------------------


def test_run_wait_draws_the_progress_in_order_and_ends_with_the_outcome(
    daemon: DaemonProcess,
) -> None:
    job = create(daemon, task="steps", workflowName="with-progress")
    done = cli(daemon, "run", job["id"], "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert percents(done.stdout) == [0, 25, 50, 75, 100]
    lines = done.stdout.splitlines()
    assert lines[0].endswith("0%  started (attempt 1)")
    assert lines[2] == "[##########----------]  50%  step 50"
    assert re.fullmatch(r"Outcome: success \(attempt 1, took \d\.\d\d s\)", lines[-1]), lines
    assert "\r" not in done.stdout  # not a terminal: a line per report

    runs = cli(daemon, "runs", job["id"])
    assert runs.returncode == 0, runs.stderr
    assert runs.stdout.splitlines()[0].split() == [
        "SCHEDULED",
        "ATTEMPT",
        "OUTCOME",
        "TOOK",
        "NOTE",
    ]
    assert runs.stdout.splitlines()[1].split()[2:4] == ["1", "success"]

    as_json = cli(daemon, "run", job["id"], "--wait", "--json")
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)  # one document: no bar, no outcome line
    assert (doc["id"], doc["run"]["outcome"], doc["run"]["result"]) == (
        job["id"],
        "success",
        {"steps": 4},
    )
    assert json.loads(cli(daemon, "runs", job["id"], "--json").stdout)["total"] == 2


def test_a_failing_run_exits_6_with_the_error(daemon: DaemonProcess) -> None:
    job = create(daemon, task="fail", workflowName="always-fails")
    done = cli(daemon, "run", job["id"], "--wait")
    assert done.returncode == 6, done.stdout + done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith("Outcome: error (attempt 1, took ")
    assert "exit code 3" in last
    assert "broken" in last
    assert percents(done.stdout) == [0]  # a command reports no progress


def test_a_retried_attempt_is_reported_and_the_wait_goes_on(daemon: DaemonProcess) -> None:
    job = create(
        daemon,
        task="flaky",
        workflowName="flaky",
        retry={"max": 1, "delay": "100ms", "jitter": 0},
    )
    done = cli(daemon, "run", job["id"], "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "attempt 1 ended: error: RuntimeError: first attempt fails; it will be retried" in lines
    assert percents(done.stdout) == [0, 10, 0, 10]
    assert lines[-1].startswith("Outcome: success (attempt 2, took ")


def test_a_timed_out_wait_exits_6_and_the_run_goes_on_until_cancelled(
    daemon: DaemonProcess,
) -> None:
    job = create(daemon, task="slow", workflowName="slow-one")
    started = time.monotonic()
    done = cli(daemon, "run", job["id"], "--wait", "--timeout", "300ms")
    assert done.returncode == 6, done.stdout + done.stderr
    assert time.monotonic() - started < 20
    assert done.stderr == (
        f"scheduler jobs: the run of {job['id']} had not finished after 0.3 s; it goes on in "
        f"the daemon (scheduler jobs show {job['id']})\n"
    )
    until_status(daemon, job["id"], "running")
    cancel = cli(daemon, "cancel", job["id"])
    assert cancel.returncode == 0, cancel.stderr
    assert cancel.stdout.startswith(f"cancelled: {job['id']} (slow-one); status cancelled")
    again = cli(daemon, "run", job["id"])
    assert again.returncode == 4, again.stdout
    assert again.stderr.startswith(f"scheduler jobs: job {job['id']} is cancelled")


def test_a_run_cancelled_while_waited_for_exits_6(daemon: DaemonProcess) -> None:
    job = create(daemon, task="slow", workflowName="cancel-me")
    with subprocess.Popen(  # waits in the background while the run is cancelled
        argv(daemon, "run", job["id"], "--wait"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ(),
    ) as waiting:
        until_status(daemon, job["id"], "running")
        assert cli(daemon, "cancel", job["id"]).returncode == 0
        out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 6, out + err
    assert percents(out) == [0, 5]
    assert out.splitlines()[-1].startswith("Outcome: cancelled (attempt 1")


# --- actions -----------------------------------------------------------------------------------


def test_pause_and_resume_change_the_status(daemon: DaemonProcess) -> None:
    job = create(daemon, task="steps", workflowName="pausable")
    until = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    as_someone = {**environ(), "USER": "ops-person", "LOGNAME": "ops-person"}
    paused = cli(
        daemon, "pause", job["id"], "--reason", "disk swap", "--until", until.isoformat(),
        env=as_someone,
    )  # fmt: skip
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith(f"paused: {job['id']} (pausable); status paused, scheduled ")
    local = until.astimezone(datetime.fromisoformat(job["scheduledTime"]).tzinfo)
    expected = f"paused until {local.isoformat(sep=' ')} (disk swap)"
    assert field(cli(daemon, "show", job["id"]).stdout, "Status") == expected
    who = json.loads(cli(daemon, "show", job["id"], "--json").stdout)["pausedBy"]
    assert who == "ops-person"  # the login name, by default
    listed = cli(daemon, "list", "--status", "paused", "--limit", "500").stdout
    assert any(line.startswith(job["id"]) for line in listed.splitlines())

    resumed = cli(daemon, "resume", job["id"], "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "pending"
    again = cli(daemon, "resume", job["id"])
    assert again.returncode == 4
    assert again.stderr == f"scheduler jobs: job {job['id']} is pending, not paused\n"
    named = cli(daemon, "pause", job["id"], "--by", "the night shift", "--json")
    assert json.loads(named.stdout)["pausedBy"] == "the night shift"
    bad = cli(daemon, "pause", job["id"], "--until", "next tuesday")
    assert bad.returncode == 2
    assert bad.stderr.startswith("scheduler jobs: until: ")


def test_retry_requeues_a_failed_job(daemon: DaemonProcess) -> None:
    job = create(daemon, task="fail", workflowName="once", schedule={})  # runs at once, fails
    until_status(daemon, job["id"], "failed")
    done = cli(daemon, "retry", job["id"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"queued again: {job['id']} (once); status pending")
    assert until_status(daemon, job["id"], "failed")["runs"] == 2
    steps = create(daemon, task="steps", workflowName="not-failed")
    refused = cli(daemon, "retry", steps["id"])
    assert refused.returncode == 4
    assert "only a failed job can be retried" in refused.stderr


def test_delete_then_show_exits_3_and_a_config_job_cannot_be_deleted(
    daemon: DaemonProcess,
) -> None:
    job = create(daemon, task="steps", workflowName="doomed")
    done = cli(daemon, "delete", job["id"])
    assert (done.returncode, done.stdout) == (0, f"deleted: {job['id']}\n")
    gone = cli(daemon, "show", job["id"])
    assert (gone.returncode, gone.stdout) == (3, "")
    assert gone.stderr.startswith("scheduler jobs: ")
    assert job["id"] in gone.stderr
    assert cli(daemon, "runs", job["id"]).returncode == 3
    other = create(daemon, task="steps", workflowName="doomed-too")
    as_json = cli(daemon, "delete", other["id"], "--json")
    assert json.loads(as_json.stdout) == {"id": other["id"], "deleted": True}

    page = json.loads(cli(daemon, "list", "--limit", "500", "--json").stdout)
    static = next(j for j in page["items"] if j["workflowName"] == "static-report")
    refused = cli(daemon, "delete", static["id"])
    assert refused.returncode == 4
    assert "defined in config.toml" in refused.stderr


# --- the token ---------------------------------------------------------------------------------


def test_the_token_from_a_file_or_the_systemd_credential(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    token_file = tmp_path / "api_token"
    token_file.write_text(TOKEN + "\n")
    by_file = cli(daemon, "list", "--token-file", str(token_file), env=environ(token=None))
    assert by_file.returncode == 0, by_file.stderr
    by_credential = cli(
        daemon, "list", env=environ(token=None, CREDENTIALS_DIRECTORY=str(tmp_path))
    )
    assert by_credential.returncode == 0, by_credential.stderr
    by_url = cli(daemon, "list", "--url", daemon.url)
    assert by_url.returncode == 0, by_url.stderr


def test_a_wrong_or_missing_token_exits_5_without_printing_it(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token-9d2\n")
    done = cli(daemon, "list", "--token-file", str(wrong))
    assert (done.returncode, done.stdout) == (5, "")
    assert done.stderr.startswith(
        f"scheduler jobs: {daemon.url} refused the API token from --token-file {wrong}"
    )
    assert "not-the-token-9d2" not in done.stderr
    missing = cli(daemon, "show", "0000000000000000", env=environ(token=None))
    assert missing.returncode == 5
    assert missing.stderr == (
        f"scheduler jobs: {daemon.url} needs the API token: give --token-file FILE (such as "
        "/etc/scheduler/api_token), or set $SCHEDULER_API_TOKEN\n"
    )


def test_explain_prints_the_summary_and_each_reason_code_and_message(
    daemon: DaemonProcess,
) -> None:
    job = create(daemon, task="steps", workflowName="explained")
    assert cli(daemon, "pause", job["id"], "--reason", "quarter close").returncode == 0
    done = cli(daemon, "explain", job["id"])
    assert done.returncode == 0, done.stderr
    doc = json.loads(cli(daemon, "explain", job["id"], "--json").stdout)
    lines = done.stdout.splitlines()
    assert lines[0] == doc["summary"]
    assert field(done.stdout, "Status") == "paused"
    assert field(done.stdout, "Time zone") == "Asia/Seoul"
    shown = [line.split(maxsplit=1) for line in lines[lines.index("Reasons") + 1 :]]
    assert shown == [[r["code"], r["message"]] for r in doc["reasons"]]
    assert "paused" in [r["code"] for r in doc["reasons"]]
    assert cli(daemon, "explain", "0000000000000001").returncode == 3


def test_a_daemon_stopping_during_the_wait_ends_it_with_exit_1(tmp_path: Path) -> None:
    with jobs_daemon(tmp_path) as stopping:  # its own daemon: this one is stopped
        job = create(stopping, task="slow", workflowName="interrupted")
        with subprocess.Popen(
            argv(stopping, "run", job["id"], "--wait"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environ(),
        ) as waiting:
            until_status(stopping, job["id"], "running")
            assert stopping.proc is not None
            stopping.proc.send_signal(signal.SIGTERM)
            out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 1, out + err
    assert err == (
        f"scheduler jobs: the daemon closed the event stream before the run of {job['id']} "
        f"finished (scheduler jobs runs {job['id']})\n"
    )
