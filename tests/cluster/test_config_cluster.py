"""``[cluster]`` in config.toml: every key read and checked (bad values name the key), the
defaults, the password's sources (never in a message), and every key needing a restart."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from scheduler.cluster.db import CONNECT_DEFAULTS, cluster_password, connect_info
from scheduler.config import ClusterConfig, Config, load_config
from scheduler.config.reload import cluster_notes, keep_cluster, summarize
from scheduler.errors import ConfigError
from tests import ROOT
from tests.config.files import problems_of, write

URL = "postgresql://scheduler@127.0.0.1:5432/scheduler"
SECRET = "s3cr3t-Pa55"


def cluster_of(tmp_path: Path, text: str) -> ClusterConfig:
    config = load_config(write(tmp_path, text))
    assert config.cluster is not None
    return config.cluster


def test_without_a_cluster_section_the_config_has_none(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "[scheduler]\n")).cluster is None


def test_every_key_is_read(tmp_path: Path) -> None:
    cluster = cluster_of(
        tmp_path,
        f"""
        [cluster]
        url = "{URL}"
        password_env = "DB_PW"
        node_id = "box-1.example"
        lease = "30s"
        schema = "jobs_2"
        """,
    )
    assert cluster == ClusterConfig(
        url=URL, password_env="DB_PW", node_id="box-1.example", lease=30.0, schema="jobs_2"
    )


def test_the_defaults_are_the_host_name_ten_seconds_and_schema_scheduler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "box7")
    cluster = cluster_of(tmp_path, f'[cluster]\nurl = "{URL}"\n')
    assert (cluster.node_id, cluster.lease, cluster.schema) == ("box7", 10.0, "scheduler")
    assert cluster.password_env == "SCHEDULER_DB_PASSWORD"


def test_an_empty_password_env_means_none(tmp_path: Path) -> None:
    cluster = cluster_of(tmp_path, f'[cluster]\nurl = "{URL}"\npassword_env = ""\n')
    assert cluster.password_env is None


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("url", '"http://db:5432/x"', "cluster.url: expected a URL like 'postgresql://"),
        ("url", '"postgresql://db:0/x"', "cluster.url: expected a URL like"),
        ("url", "5432", "cluster.url: expected a non-empty string, got 5432"),
        ("url", '"postgres://u:hunter2@db/x"', "cluster.url: expected a URL without a password"),
        ("url", '"postgresql://u@db/x?password=hunter2"', "cluster.url: expected a URL without"),
        ("password_env", '"1BAD"', "cluster.password_env: expected an environment variable"),
        ("password_env", "7", "cluster.password_env: expected an environment variable"),
        ("node_id", '"has space"', "cluster.node_id: expected a node id of 1 to 63 letters"),
        ("node_id", '""', "cluster.node_id: expected a node id"),
        ("node_id", f'"{"n" * 64}"', "cluster.node_id: expected a node id"),
        ("lease", '"1s"', "cluster.lease: expected a duration from 2 s to 600 s, got '1s'"),
        ("lease", '"11m"', "cluster.lease: expected a duration from 2 s to 600 s, got '11m'"),
        ("lease", '"soon"', "cluster.lease: "),
        ("schema", '"Jobs"', "cluster.schema: expected a schema name of lowercase letters"),
        ("schema", '"pg_jobs"', "cluster.schema: expected a schema name"),
        ("schema", '"a-b"', "cluster.schema: expected a schema name"),
        ("schema", f'"{"s" * 64}"', "cluster.schema: expected a schema name"),
    ],
)
def test_a_bad_value_names_its_key(tmp_path: Path, key: str, value: str, expected: str) -> None:
    lines = {"url": f'"{URL}"', "node_id": '"n"', key: value}
    text = "[cluster]\n" + "".join(f"{k} = {v}\n" for k, v in lines.items())
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"cfg.toml: {expected}"), problems


def test_a_password_in_the_url_is_never_quoted_back(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, f'[cluster]\nurl = "postgresql://u:{SECRET}@db/x"\n')
    assert SECRET not in "\n".join(problems)


def test_the_bounds_of_the_lease_are_accepted(tmp_path: Path) -> None:
    for lease, seconds in (('"2s"', 2.0), ('"10m"', 600.0)):
        cluster = cluster_of(tmp_path, f'[cluster]\nurl = "{URL}"\nlease = {lease}\n')
        assert cluster.lease == seconds


def test_a_section_without_url_an_unknown_key_and_a_table_are_problems(tmp_path: Path) -> None:
    assert problems_of(tmp_path, '[cluster]\nnode_id = "a"\nleese = "5s"\n') == [
        "cfg.toml: cluster.leese: unknown key; did you mean 'lease'?",
        "cfg.toml: cluster.url: expected a postgresql:// URL; [cluster] needs one",
    ]
    assert problems_of(tmp_path, 'cluster = "postgresql://db/x"\n') == [
        "cfg.toml: cluster: expected a table ([cluster]), got 'postgresql://db/x'"
    ]


def test_a_host_name_that_cannot_name_a_node_asks_for_node_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "a host")
    assert problems_of(tmp_path, f'[cluster]\nurl = "{URL}"\n') == [
        "cfg.toml: cluster.node_id: the host name 'a host' cannot name a node (1 to 63 letters,"
        " digits, '_', '.' and '-'); set cluster.node_id"
    ]


def test_problems_of_cluster_come_with_the_others_in_file_order(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, '[cluster]\nurl = "x"\n[scheduler]\nhistory = 0\n')
    assert [p.split(":")[1].strip() for p in problems] == ["cluster.url", "scheduler.history"]


def test_the_shipped_config_documents_every_cluster_key() -> None:
    text = (ROOT / "config.toml").read_text()
    documented = set(re.findall(r"^# ([a-z_]+) = ", text, flags=re.MULTILINE))
    assert set(ClusterConfig.__struct_fields__) <= documented
    assert "# [cluster]" in text
    assert load_config(ROOT / "config.toml").cluster is None  # commented out: the single box


# --- the password --------------------------------------------------------------------------------


def test_the_credential_file_wins_over_the_variable(tmp_path: Path) -> None:
    cluster = ClusterConfig(url=URL, password_env="DB_PW")
    (tmp_path / "db_password").write_text(f"{SECRET}\n")
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path), "DB_PW": "from-the-variable"}
    assert cluster_password(cluster, environ) == SECRET
    assert cluster_password(Config(cluster=cluster), environ) == SECRET


def test_without_a_credential_file_the_variable_is_read(tmp_path: Path) -> None:
    cluster = ClusterConfig(url=URL, password_env="DB_PW")
    assert cluster_password(cluster, {"DB_PW": " pw \n"}) == "pw"
    empty_dir = {"CREDENTIALS_DIRECTORY": str(tmp_path), "DB_PW": "pw"}
    assert cluster_password(cluster, empty_dir) == "pw"  # a directory without the file
    (tmp_path / "db_password").write_text("\n")
    assert cluster_password(cluster, empty_dir) == "pw"  # an empty file is no password


def test_no_source_is_no_password() -> None:
    assert cluster_password(ClusterConfig(url=URL, password_env="DB_PW"), {}) is None
    assert cluster_password(ClusterConfig(url=URL, password_env=None), {"DB_PW": "x"}) is None
    assert cluster_password(Config(), {"SCHEDULER_DB_PASSWORD": "x"}) is None


def test_an_unreadable_credential_file_is_named_without_its_content(tmp_path: Path) -> None:
    (tmp_path / "db_password").mkdir()  # reading a directory fails
    with pytest.raises(ConfigError) as caught:
        cluster_password(ClusterConfig(url=URL), {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert caught.value.problems == [
        f"{tmp_path / 'db_password'}: cannot read the database password: Is a directory"
    ]


def test_the_connection_string_holds_the_password_and_the_node(tmp_path: Path) -> None:
    cluster = ClusterConfig(url=URL + "?connect_timeout=2", node_id="box1", password_env="PW")
    conninfo, password = connect_info(cluster, {"PW": SECRET})
    assert password == SECRET
    params = dict(re.findall(r"(\w+)=(\S+)", conninfo))
    assert params["password"] == SECRET
    assert params["application_name"] == "scheduler:box1"
    assert (params["host"], params["port"], params["dbname"]) == ("127.0.0.1", "5432", "scheduler")
    assert params["connect_timeout"] == "2"  # the URL's own value wins over the defaults
    assert params["keepalives"] == CONNECT_DEFAULTS["keepalives"]


def test_without_a_password_the_connection_string_has_none() -> None:
    conninfo, password = connect_info(ClusterConfig(url=URL, password_env=None), {})
    assert password is None
    assert "password" not in conninfo


# --- reload --------------------------------------------------------------------------------------


def test_every_cluster_key_needs_a_restart() -> None:
    old = Config(cluster=ClusterConfig(url=URL, node_id="a"))
    new = Config(
        cluster=ClusterConfig(
            url=URL + "2", password_env="X", node_id="b", lease=20.0, schema="other"
        )
    )
    notes = cluster_notes(old, new)
    assert [note.split(" changed")[0] for note in notes] == [
        "cluster.url",
        "cluster.password_env",
        "cluster.node_id",
        "cluster.lease",
        "cluster.schema",
    ]
    assert all("needs a restart" in note for note in notes)
    assert keep_cluster(old, new).cluster == old.cluster
    assert cluster_notes(old, old) == []
    assert cluster_notes(Config(), Config()) == []


def test_adding_or_removing_the_section_needs_a_restart() -> None:
    single, cluster = Config(), Config(cluster=ClusterConfig(url=URL, node_id="a"))
    assert cluster_notes(single, cluster) == [
        "[cluster] added: moving to cluster mode needs a restart (systemctl restart scheduler);"
        " still running as the single box"
    ]
    assert cluster_notes(cluster, single)[0].startswith("[cluster] removed: moving to the single")
    assert keep_cluster(single, cluster).cluster is None
    assert summarize(single, cluster) == "cluster added"
    assert summarize(cluster, single) == "cluster removed"


def test_a_reload_summary_names_changed_cluster_keys_without_values() -> None:
    old = Config(cluster=ClusterConfig(url=URL, node_id="a"))
    new = Config(cluster=ClusterConfig(url=URL + "x", node_id="a", lease=5.0))
    assert summarize(old, new) == "cluster.lease changed; cluster.url changed"
