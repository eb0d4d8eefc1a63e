"""Where ``scheduler jobs`` finds the daemon and its token, how a refusal becomes an exit code
and a message (never with the token in it), and the command line's own errors and help.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.api.security import CREDENTIAL_NAME as DAEMON_CREDENTIAL
from scheduler.cli import exits
from scheduler.cli.exits import EXIT_CODES, Failure
from scheduler.cli.http import Client
from scheduler.cli.main import main
from scheduler.cli.target import CREDENTIAL_NAME, Target, read_server, read_token, resolve
from tests.daemon_proc import free_port

# --- which daemon and which token -------------------------------------------------------------


def test_the_credential_has_the_daemons_name() -> None:
    assert CREDENTIAL_NAME == DAEMON_CREDENTIAL


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("server", "url"),
    [
        ('host = "0.0.0.0"\nport = 9123', "http://127.0.0.1:9123"),
        ('host = "::"\nport = 9123', "http://127.0.0.1:9123"),
        ('host = "::1"\nport = 80', "http://[::1]:80"),
        ('host = "10.1.2.3"', "http://10.1.2.3:8080"),
        ("", "http://127.0.0.1:8080"),
    ],
)
def test_the_url_comes_from_the_servers_table(tmp_path: Path, server: str, url: str) -> None:
    config = write(tmp_path / "config.toml", f"[server]\n{server}\n[tasks.x]\nkind = 'nope'\n")
    assert resolve(config=config, url=None, token_file=None, environ={}).url == url
    assert resolve(config=config, url="http://h:1", token_file=None, environ={}).url == "http://h:1"
    assert resolve(config=None, url=None, token_file=None, environ={}).url == (
        "http://127.0.0.1:8080"
    )


def test_a_bad_server_table_is_reported_naming_the_file_and_key(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[server]\nport = 0\nhots = "x"\n')
    with pytest.raises(Failure) as caught:
        read_server(config)
    assert "c.toml: server.port: expected" in caught.value.message
    assert "server.hots" in caught.value.message
    with pytest.raises(Failure, match=r"c.toml:1:\d+: "):
        read_server(write(tmp_path / "c.toml", "[server\n"))
    with pytest.raises(Failure, match="cannot read the file"):
        read_server(str(tmp_path / "missing.toml"))


def test_the_token_comes_from_the_file_then_the_credential_then_the_variable(
    tmp_path: Path,
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    env = {"CREDENTIALS_DIRECTORY": str(creds), "MY_TOKEN": " from-env\n"}
    assert read_token(None, env, "MY_TOKEN") == ("from-env", "$MY_TOKEN")
    write(creds / "api_token", "from-credential\n")
    assert read_token(None, env, "MY_TOKEN") == (
        "from-credential",
        "$CREDENTIALS_DIRECTORY/api_token",
    )
    given = write(tmp_path / "token", "  from-file\n")
    assert read_token(given, env, "MY_TOKEN") == ("from-file", f"--token-file {given}")
    assert read_token(None, {}, None) is None
    assert read_token(None, {"SCHEDULER_API_TOKEN": "t"}, None) is None  # token_env = ""


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read the API token: no such file"), ("\n", "the file is empty"),
     ("two\nlines", "must be one line")],
)  # fmt: skip
def test_a_token_file_that_cannot_be_used_is_an_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(Failure, match=message) as caught:
        read_token(str(path), {}, None)
    assert caught.value.code == exits.ERROR


# --- refusals and exit codes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, 2), (401, 5), (403, 5), (404, 3), (409, 4), (415, 1), (500, 1), (503, 1)],
)
def test_each_refusal_has_its_exit_code_and_the_daemons_message(status: int, code: int) -> None:
    client = Client(Target("http://127.0.0.1:1", "secret-token-value", "$T", "T"))
    doc = {"error": {"code": "x", "message": "job 1 is pending, not paused", "field": "status"}}
    failure = client.refusal(status, "Reason", doc)
    assert failure.code == code
    assert "job 1 is pending, not paused" in failure.message
    assert "secret-token-value" not in failure.message
    assert client.refusal(status, "Reason", None).message.endswith(f"answered {status} Reason")


def test_a_401_says_how_to_give_the_token_or_where_the_refused_one_came_from() -> None:
    anonymous = Client(Target("http://127.0.0.1:1", token_env="SCHEDULER_API_TOKEN"))
    message = anonymous.refusal(401, "Unauthorized", None).message
    assert "needs the API token: give --token-file FILE" in message
    assert "$SCHEDULER_API_TOKEN" in message
    wrong = Client(Target("http://127.0.0.1:1", "wrong-token", "--token-file /t", None))
    message = wrong.refusal(401, "Unauthorized", None).message
    assert message.startswith("http://127.0.0.1:1 refused the API token from --token-file /t")
    assert "wrong-token" not in message


def test_nothing_listening_exits_1_and_a_bad_url_2(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["jobs", "list", "--url", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"scheduler jobs: no scheduler answers at {url} (")
    assert err.count("\n") == 1
    assert main(["jobs", "show", "abc", "--url", "ftp://x"]) == 2
    assert "must be http://" in capsys.readouterr().err
    # A malformed id names no job: said without asking (nothing listens at `url`).
    assert main(["jobs", "delete", "../scheduler", "--url", url]) == 3
    assert capsys.readouterr().err == "scheduler jobs: no job with id '../scheduler'\n"


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["jobs", "list", "--limit", "501"],
        ["jobs", "list", "--status", "sleeping"],
        ["jobs", "run", "x", "--wait", "--timeout", "soon"],
        ["jobs", "pause"],
    ):
        with pytest.raises(SystemExit) as bad:
            main(argv)
        assert bad.value.code == 2, argv
    assert "expected a whole number 1..500" in capsys.readouterr().err


def test_the_help_shows_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as shown:
        main(["jobs", "--help"])
    assert shown.value.code == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for code, meaning in EXIT_CODES.items():
        assert f"{code:>3}  {meaning}\n" in out
