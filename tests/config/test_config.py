"""config.toml loading: every key read, every problem reported at once with file and key path."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from scheduler.config import (
    AlertsConfig,
    Config,
    FsyncMode,
    PersistenceConfig,
    RateLimit,
    SchedulerConfig,
    ServerConfig,
    StaticJob,
    TaskConfig,
    TaskKind,
    job_defaults,
    load_config,
    parse_config,
)
from scheduler.errors import ConfigError
from scheduler.jobspec import SCHEDULE_KEYS, JobDefaults, JobSpec
from scheduler.model import (
    Backoff,
    Coalesce,
    MisfirePolicy,
    OnCrash,
    Overlap,
    Priority,
    RetryPolicy,
    Schedule,
)
from tests import ROOT
from tests.config.files import problems_of, write


def test_the_shipped_config_toml_loads_with_its_demo_jobs() -> None:
    config = load_config(ROOT / "config.toml")
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8080
    assert config.persistence.dir is None  # state: $STATE_DIRECTORY, else ./var beside it
    assert config.tasks["hello"].argv == ("echo", "hello from scheduler")
    assert [job.name for job in config.jobs] == ["hello-every-5-minutes", "weekday-morning-hello"]
    assert config.jobs[0].schedule.every == 300
    assert config.jobs[1].schedule.cron == "0 9 * * 1-5"
    assert config.path == str(ROOT / "config.toml")


def test_an_empty_file_gives_every_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config == Config(path=str(tmp_path / "cfg.toml"))


FULL = """
    [server]
    host = "0.0.0.0"
    port = 9000
    token_env = "MY_TOKEN"
    cors_origins = ["http://127.0.0.1:3000/", "*"]

    [scheduler]
    timezone = "Europe/Berlin"
    scan_interval = "30s"
    max_concurrency = 4
    retention = "2d"
    history = 5
    shutdown_grace = "1m"
    log_format = "json"

    [retry]
    max = 5
    backoff = "fixed"
    delay = "10s"
    max_delay = "1h"
    jitter = 0
    timeout = "15m"

    [persistence]
    dir = "/srv/state"
    snapshot_interval = "5m"
    fsync = "batch"
    batch_interval = "50ms"
    enabled = false

    [tasks.hook]
    kind = "http"
    url = "https://example.test/hook"
    method = "put"
    headers = { Authorization = "Bearer x" }
    max_response_bytes = 1024
    timeout = "30s"
    concurrency = 2
    rate_limit = "10/10s"

    [tasks.backup]
    kind = "command"
    argv = ["tar", "czf", "/tmp/b.tgz", "/etc"]
    cwd = "/tmp"
    env = { LANG = "C" }
    kill_grace = "2s"
    no_retry_exit_codes = [2, 3]

    [tasks.report]
    kind = "python"
    callable = "json:dumps"

    [[jobs]]
    name = "nightly"
    task = "backup"
    payload = { full = true }
    workflow_id = "wf-1"
    workflow_name = "Nightly backup"
    priority = "high"
    unique_key = "backup"
    timezone = "America/New_York"
    cron = "0 3 * * *"
    retry = { max = 1, max_delay = "2h" }
    timeout = "2h"
    misfire = { grace = "10m", coalesce = "all" }
    overlap = "buffer_one"
    on_crash = "abandon"

    [alerts]
    webhook_urls = ["http://127.0.0.1:9/alert"]
    window = "30m"
    failure_rate = 0.5
    mean_run_time = "1m"
    waiting_jobs = 10
    slot_utilisation = 0.75
"""


def test_every_section_and_key_is_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    server, sched, persistence, alerts = (
        config.server,
        config.scheduler,
        config.persistence,
        config.alerts,
    )
    assert (server.host, server.port, server.token_env) == ("0.0.0.0", 9000, "MY_TOKEN")
    assert server.cors_origins == ("http://127.0.0.1:3000", "*")
    assert (sched.timezone, sched.scan_interval, sched.max_concurrency) == ("Europe/Berlin", 30, 4)
    assert (sched.retention, sched.history, sched.shutdown_grace) == (172800, 5, 60)
    assert sched.log_format == "json"
    assert config.retry == RetryPolicy(
        max=5, backoff=Backoff.FIXED, delay=10, max_delay=3600, jitter=0
    )
    assert config.default_timeout == 900
    assert (persistence.dir, persistence.snapshot_interval) == ("/srv/state", 300)
    assert (persistence.fsync, persistence.batch_interval) == (FsyncMode.BATCH, 0.05)
    assert persistence.enabled is False
    hook, backup, report = config.tasks["hook"], config.tasks["backup"], config.tasks["report"]
    assert (hook.kind, hook.url, hook.method) == (TaskKind.HTTP, "https://example.test/hook", "PUT")
    assert (hook.headers, hook.max_response_bytes) == ({"Authorization": "Bearer x"}, 1024)
    assert (hook.timeout, hook.concurrency, hook.rate_limit) == (30, 2, RateLimit(10, 10))
    assert (backup.argv, backup.cwd, backup.env) == (
        ("tar", "czf", "/tmp/b.tgz", "/etc"),
        "/tmp",
        {"LANG": "C"},
    )
    assert (backup.kill_grace, backup.no_retry_exit_codes) == (2, (2, 3))
    assert (report.kind, report.callable) == (TaskKind.PYTHON, "json:dumps")
    assert alerts.webhook_urls == ("http://127.0.0.1:9/alert",)
    assert (alerts.window, alerts.failure_rate, alerts.mean_run_time) == (1800, 0.5, 60)
    assert (alerts.waiting_jobs, alerts.slot_utilisation) == (10, 0.75)


def test_a_static_job_takes_every_job_key_and_the_section_defaults(tmp_path: Path) -> None:
    (job,) = load_config(write(tmp_path, FULL)).jobs
    assert (job.name, job.task, job.payload) == ("nightly", "backup", {"full": True})
    assert (job.workflow_id, job.workflow_name) == ("wf-1", "Nightly backup")
    assert (job.priority, job.unique_key, job.timezone) == (
        Priority.HIGH,
        "backup",
        "America/New_York",
    )
    assert job.schedule == Schedule(cron="0 3 * * *")
    # retry keys the job names override [retry]; the others come from [retry].
    assert job.policy.retry == RetryPolicy(
        max=1, backoff=Backoff.FIXED, delay=10, max_delay=7200, jitter=0
    )
    assert job.policy.timeout == 7200
    assert job.policy.misfire == MisfirePolicy(grace=600, coalesce=Coalesce.ALL)
    assert (job.policy.overlap, job.policy.on_crash) == (Overlap.BUFFER_ONE, OnCrash.ABANDON)


def test_a_job_without_its_own_zone_or_policies_uses_the_config_defaults(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
            [scheduler]
            timezone = "Europe/Berlin"
            [retry]
            max = 7
            timeout = "3m"
            [tasks.t]
            kind = "command"
            argv = ["true"]
            [[jobs]]
            name = "j"
            task = "t"
            every = "1h"
            """,
        )
    )
    (job,) = config.jobs
    assert job.timezone == "Europe/Berlin"
    assert job.policy.retry.max == 7
    assert job.policy.timeout is None  # [retry] timeout applies when the job runs
    assert config.default_timeout == 180
    assert job_defaults(config) == JobDefaults(timezone="Europe/Berlin", retry=RetryPolicy(max=7))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        (45, 45),
    ],
)
def test_durations_are_read_in_every_unit(tmp_path: Path, text: object, expected: float) -> None:
    value = f'"{text}"' if isinstance(text, str) else text
    config = load_config(write(tmp_path, f"[scheduler]\nscan_interval = {value}\n"))
    assert config.scheduler.scan_interval == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10/10s", RateLimit(10, 10)), ("5/s", RateLimit(5, 1)), ("100 / 1m", RateLimit(100, 60))],
)
def test_a_rate_limit_is_starts_per_duration(
    tmp_path: Path, text: str, expected: RateLimit
) -> None:
    config = load_config(
        write(tmp_path, f'[tasks.t]\nkind = "command"\nargv = ["true"]\nrate_limit = "{text}"\n')
    )
    assert config.tasks["t"].rate_limit == expected


def test_a_relative_state_dir_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    path = write(
        tmp_path / "etc",
        '[persistence]\ndir = "state"\n[tasks.t]\nkind = "command"\nargv = ["x"]\ncwd = "work"\n',
    )
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("etc") / path.name)
    assert config.persistence.dir == str(tmp_path / "etc" / "state")
    assert config.tasks["t"].cwd == str(tmp_path / "etc" / "work")
    assert config.path == str(tmp_path / "etc" / "cfg.toml")


def test_an_absolute_state_dir_is_kept(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[persistence]\ndir = "/var/lib/scheduler"\n'))
    assert config.persistence.dir == "/var/lib/scheduler"


def test_parse_config_without_a_base_dir_keeps_relative_paths() -> None:
    config = parse_config({"persistence": {"dir": "var"}}, source="inline")
    assert config.persistence.dir == "var"


def test_a_job_without_a_task_runs_the_workflow_task(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
            [tasks.workflow]
            kind = "http"
            url = "http://127.0.0.1:3000/api/workflows/execute"
            [[jobs]]
            name = "j"
            workflow_id = "wf-9"
            cron = "@daily"
            """,
        )
    )
    assert config.jobs[0].task == "workflow"


def test_a_job_may_name_a_task_registered_in_code(tmp_path: Path) -> None:
    path = write(tmp_path, '[[jobs]]\nname = "j"\ntask = "dailyReport"\ncron = "0 0 * * *"\n')
    config = load_config(path, known_tasks={"dailyReport"})
    assert config.jobs[0].task == "dailyReport"


def test_toml_dates_in_a_job_read_like_their_string_forms(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
            [tasks.t]
            kind = "command"
            argv = ["true"]
            [[jobs]]
            name = "j"
            task = "t"
            at = 2099-12-24T09:00:00
            payload = { day = 2099-12-24 }
            """,
        )
    )
    (job,) = config.jobs
    assert job.schedule.at is not None
    assert job.schedule.at.startswith("2099-12-24T09:00")
    assert job.payload == {"day": "2099-12-24"}


# --- problems --------------------------------------------------------------------------------

TASK = '[tasks.t]\nkind = "command"\nargv = ["true"]\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "[server]\nport = 70000\n",
            "cfg.toml: server.port: expected an integer from 1 to 65535, got 70000",
            id="port-range",
        ),
        pytest.param(
            '[server]\nport = "80"\n',
            "cfg.toml: server.port: expected an integer from 1 to 65535, got '80'",
            id="port-type",
        ),
        pytest.param(
            '[server]\ntoken_env = "not a name"\n',
            "cfg.toml: server.token_env: expected an environment variable name such as"
            " 'SCHEDULER_API_TOKEN', got 'not a name'",
            id="token-env",
        ),
        pytest.param(
            '[server]\ncors_origins = ["http://a.test/path"]\n',
            "cfg.toml: server.cors_origins[0]: expected '*' or an origin like"
            " 'http://host:3000', got 'http://a.test/path'",
            id="cors-origin",
        ),
        pytest.param(
            "[scheduler]\nmax_concurrency = 0\n",
            "cfg.toml: scheduler.max_concurrency: expected an integer of at least 1, got 0",
            id="max-concurrency",
        ),
        pytest.param(
            "[scheduler]\nhistory = 0\n",
            "cfg.toml: scheduler.history: expected an integer of at least 1, got 0",
            id="history",
        ),
        pytest.param(
            '[scheduler]\nscan_interval = "soon"\n',
            "cfg.toml: scheduler.scan_interval: expected a duration like '90s', '15m', '2h' or"
            " '1d', got 'soon'",
            id="duration",
        ),
        pytest.param(
            '[scheduler]\nlog_format = "xml"\n',
            "cfg.toml: scheduler.log_format: expected one of text, json, got 'xml'",
            id="log-format",
        ),
        pytest.param(
            '[persistence]\nfsync = "sometimes"\n',
            "cfg.toml: persistence.fsync: expected one of always, batch, never, got 'sometimes'",
            id="fsync",
        ),
        pytest.param(
            '[persistence]\nenabled = "yes"\n',
            "cfg.toml: persistence.enabled: expected true or false, got 'yes'",
            id="bool",
        ),
        pytest.param(
            "[retry]\njitter = 2\n",
            "cfg.toml: retry.jitter: expected a number from 0 to 1, got 2",
            id="jitter",
        ),
        pytest.param(
            '[retry]\ndelay = "1m"\nmax_delay = "10s"\n',
            "cfg.toml: retry.max_delay: expected at least the retry delay (60s), got 10s",
            id="max-delay-below-delay",
        ),
        pytest.param(
            '[retry]\nbackoff = "linear"\n',
            "cfg.toml: retry.backoff: expected one of exponential, fixed, got 'linear'",
            id="backoff",
        ),
        pytest.param(
            "[alerts]\nfailure_rate = 1.5\n",
            "cfg.toml: alerts.failure_rate: expected a number from 0 to 1, got 1.5",
            id="failure-rate",
        ),
        pytest.param(
            '[alerts]\nwebhook_urls = ["http://ok.test", "ftp://no.test"]\n',
            "cfg.toml: alerts.webhook_urls[1]: expected an http:// or https:// URL,"
            " got 'ftp://no.test'",
            id="webhook-url",
        ),
        pytest.param(
            "server = 3\n",
            "cfg.toml: server: expected a table ([server]), got 3",
            id="section-not-a-table",
        ),
        pytest.param(
            '[tasks.backup]\nkind = "command"\nargv = "tar czf /tmp/b.tgz /etc"\n',
            "cfg.toml: tasks.backup.argv: expected a non-empty list of strings,"
            " got 'tar czf /tmp/b.tgz /etc'",
            id="argv-shell-string",
        ),
        pytest.param(
            '[tasks.backup]\nkind = "command"\n',
            "cfg.toml: tasks.backup.argv: expected a non-empty list of strings;"
            " a command task needs it",
            id="argv-missing",
        ),
        pytest.param(
            '[tasks.hook]\nkind = "http"\n',
            "cfg.toml: tasks.hook.url: expected an http:// or https:// URL; an http task needs it",
            id="url-missing",
        ),
        pytest.param(
            '[tasks.hook]\nkind = "http"\nurl = "ftp://x.test/"\n',
            "cfg.toml: tasks.hook.url: expected an http:// or https:// URL, got 'ftp://x.test/'",
            id="url-scheme",
        ),
        pytest.param(
            '[tasks.hook]\nkind = "http"\nurl = "http://x.test/"\nmethod = "FETCH"\n',
            "cfg.toml: tasks.hook.method: expected one of GET, POST, PUT, PATCH, DELETE,"
            " got 'FETCH'",
            id="method",
        ),
        pytest.param(
            '[tasks.hook]\nkind = "http"\nurl = "http://x.test/"\nargv = ["x"]\n',
            "cfg.toml: tasks.hook.argv: applies to command tasks only, not http",
            id="key-of-another-kind",
        ),
        pytest.param(
            '[tasks.t]\nargv = ["x"]\n',
            "cfg.toml: tasks.t.kind: expected one of http, command, python; every task needs one",
            id="kind-missing",
        ),
        pytest.param(
            '[tasks.t]\nkind = "shell"\n',
            "cfg.toml: tasks.t.kind: expected one of http, command, python, got 'shell'",
            id="kind-unknown",
        ),
        pytest.param(
            '[tasks.p]\nkind = "python"\ncallable = "json.dumps"\n',
            "cfg.toml: tasks.p.callable: expected 'module:function', got 'json.dumps'",
            id="callable-format",
        ),
        pytest.param(
            TASK + "no_retry_exit_codes = [0]\n",
            "cfg.toml: tasks.t.no_retry_exit_codes[0]: expected an integer from 1 to 255, got 0",
            id="exit-codes",
        ),
        pytest.param(
            TASK + 'rate_limit = "fast"\n',
            "cfg.toml: tasks.t.rate_limit: expected a rate like '10/10s' (at most 10 starts in"
            " any 10 s), got 'fast'",
            id="rate-limit",
        ),
        pytest.param(
            TASK + "concurrency = 0\n",
            "cfg.toml: tasks.t.concurrency: expected an integer of at least 1, got 0",
            id="task-concurrency",
        ),
        pytest.param(
            TASK + "env = { A = 1 }\n",
            "cfg.toml: tasks.t.env.A: expected a string, got 1",
            id="env-value",
        ),
        pytest.param(
            '[[jobs]]\ncron = "@daily"\n' + 'task = "t"\n' + TASK,
            "cfg.toml: jobs[0].name: expected a unique name; every static job needs one",
            id="job-name-missing",
        ),
        pytest.param(
            TASK + '[[jobs]]\nname = "j"\ntask = "nope"\ncron = "@daily"\n',
            "cfg.toml: jobs[0].task: expected a task defined in config or registered in code"
            " (t), got 'nope'",
            id="job-task-unknown",
        ),
        pytest.param(
            TASK + '[[jobs]]\nname = "j"\ncron = "@daily"\n',
            "cfg.toml: jobs[0].task: expected a task name (no 'workflow' task is defined to run"
            " by default)",
            id="job-task-missing-no-workflow",
        ),
        pytest.param(
            TASK + '[[jobs]]\nname = "j"\ntask = "t"\npriority = "urgent"\n',
            "cfg.toml: jobs[0].priority: expected one of critical, high, normal, low, got 'urgent'",
            id="job-priority",
        ),
        pytest.param(
            TASK + '[[jobs]]\nname = "j"\ntask = "t"\nretry = { max_delay = "soon" }\n',
            "cfg.toml: jobs[0].retry.max_delay: expected a duration like '90s', '15m', '2h' or"
            " '1d', got 'soon'",
            id="job-retry-key",
        ),
        pytest.param(
            TASK + '[[jobs]]\nname = "j"\ntask = "t"\nmisfire = { coalesce = "middle" }\n',
            "cfg.toml: jobs[0].misfire.coalesce: expected one of latest, earliest, all,"
            " got 'middle'",
            id="job-misfire",
        ),
        pytest.param(
            TASK + '[[jobs]]\nname = "j"\ntask = "t"\novrelap = "skip"\n',
            "cfg.toml: jobs[0].ovrelap: unknown key; did you mean 'overlap'?",
            id="job-unknown-key",
        ),
        pytest.param(
            TASK + '[[jobs]]\nname = "j"\ntask = "t"\n[[jobs]]\nname = "j"\ntask = "t"\n',
            "cfg.toml: jobs[1].name: expected a unique name (jobs[0] has it too), got 'j'",
            id="job-name-duplicate",
        ),
        pytest.param(
            '[jobs]\nname = "j"\n',
            "cfg.toml: jobs: expected an array of tables ([[jobs]]), got a table",
            id="jobs-not-an-array",
        ),
        pytest.param(
            "[sever]\nport = 1\n",
            "cfg.toml: sever: unknown key; did you mean 'server'?",
            id="unknown-section",
        ),
        pytest.param(
            "[server]\nprot = 1\n",
            "cfg.toml: server.prot: unknown key; did you mean 'port'?",
            id="unknown-key",
        ),
    ],
)
def test_each_problem_names_the_file_the_key_path_and_what_was_expected(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert problems_of(tmp_path, text) == [expected]


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        pytest.param(
            '[scheduler]\ntimezone = "Mars/Olympus"\n', "cfg.toml: scheduler.timezone: ", id="zone"
        ),
        pytest.param(
            TASK + '[[jobs]]\nname = "j"\ntask = "t"\ncron = "61 * * * *"\n',
            "cfg.toml: jobs[0].cron: ",
            id="cron",
        ),
        pytest.param(
            TASK + '[[jobs]]\nname = "j"\ntask = "t"\ntimezone = "Nowhere/City"\n',
            "cfg.toml: jobs[0].timezone: ",
            id="job-zone",
        ),
        pytest.param(
            TASK + '[[jobs]]\nname = "j"\ntask = "t"\nrepeat = { freq = "hourly" }\n',
            "cfg.toml: jobs[0].repeat.freq: ",
            id="repeat",
        ),
        pytest.param(
            '[tasks.p]\nkind = "python"\ncallable = "no_such_module_h2:f"\n',
            "cfg.toml: tasks.p.callable: ",
            id="callable-import",
        ),
    ],
)
def test_problems_from_zones_schedules_and_imports_name_the_key_path(
    tmp_path: Path, text: str, prefix: str
) -> None:
    (line,) = problems_of(tmp_path, text)
    assert line.startswith(prefix)
    assert len(line) > len(prefix) + 5


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    lines = problems_of(
        tmp_path,
        """
        [server]
        port = 0
        [scheduler]
        history = 0
        [tasks.backup]
        kind = "command"
        [[jobs]]
        name = "a"
        task = "backup"
        priority = "urgent"
        overlap = "sometimes"
        [[jobs]]
        name = "b"
        task = "missing"
        """,
    )
    # In the file's order, though jobs are checked after the sections they depend on.
    assert [line.split(": ")[1] for line in lines] == [
        "server.port",
        "scheduler.history",
        "tasks.backup.argv",
        "jobs[0].priority",
        "jobs[0].overlap",
        "jobs[1].task",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '[server]\nport = 8080\nhost = "x" "y"\n',
            "cfg.toml:3:12: Expected newline or end of document after a statement",
            id="mid-file",
        ),
        pytest.param("[server]\nport = ", "cfg.toml:2:8: Invalid value", id="end-of-document"),
    ],
)
def test_a_toml_syntax_error_names_its_line_and_column(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert problems_of(tmp_path, text) == [expected]


def test_a_missing_file_is_one_problem_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: cannot read the file: No such file or directory"]


def test_a_file_that_is_not_utf8_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(b"a = 1\n\xff\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: expected UTF-8 text, got byte 6"]


def _documented_keys() -> set[str]:
    text = (ROOT / "config.toml").read_text()
    return set(re.findall(r"^#? ?([a-z_]+) = ", text, flags=re.MULTILINE)) | set(
        re.findall(r"[{,] ([a-z_]+) = ", text)
    )


@pytest.mark.parametrize(
    "struct",
    [ServerConfig, SchedulerConfig, PersistenceConfig, TaskConfig, AlertsConfig, RetryPolicy],
)
def test_the_shipped_config_documents_every_key_of_each_section(
    struct: type[msgspec.Struct],
) -> None:
    assert set(struct.__struct_fields__) - _documented_keys() == set()


def test_the_shipped_config_documents_every_job_key() -> None:
    job_keys = {*StaticJob.__struct_fields__, *SCHEDULE_KEYS} - {"schedule", "policy"}
    policy_keys = {"retry", "timeout", "misfire", "overlap", "on_crash"}
    assert (job_keys | policy_keys) - _documented_keys() == set()


def test_a_static_job_stands_for_the_job_input_the_api_would_parse(tmp_path: Path) -> None:
    (job,) = load_config(write(tmp_path, FULL)).jobs
    assert job.spec() == JobSpec(**msgspec.structs.asdict(job))
    assert job.spec().name == "nightly"


def test_the_state_directory_is_systemds_else_var_beside_the_config() -> None:
    from scheduler.runtime.library import Scheduler

    config = load_config(ROOT / "config.toml")
    assert Scheduler(config, environ={}).state_dir == ROOT / "var"
    under_systemd = Scheduler(config, environ={"STATE_DIRECTORY": "/var/lib/scheduler"})
    assert under_systemd.state_dir == Path("/var/lib/scheduler")
