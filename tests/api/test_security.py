"""Security: the bearer token, where it comes from, the Host check, CORS, and secrets that never
leak into a log line, a response or an error body."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from scheduler.api.security import check_bind, host_is_loopback_name, is_loopback_bind, read_token
from scheduler.errors import ConfigError
from tests.api.harness import TOKEN, Api, ApiOptions, running_api
from tests.daemon_proc import DaemonProcess

ORIGIN = "https://home.example"


@pytest.fixture
def api_options() -> ApiOptions:
    return {"token": TOKEN, "cors_origins": (ORIGIN,)}


async def raw_request(api: Api, head: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (a client library would refuse or re-encode odd headers)."""
    assert api.client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", api.client.server.port)
    writer.write(head + b"Connection: close\r\n\r\n")
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    status = int(data.split(b" ", 2)[1])
    return status, data


# --- where the token comes from --------------------------------------------------------------


def test_the_systemd_credential_comes_before_the_environment(tmp_path: Path) -> None:
    (tmp_path / "api_token").write_text("from-credential\n")
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path), "SCHEDULER_API_TOKEN": "from-env"}
    assert read_token(environ, "SCHEDULER_API_TOKEN") == "from-credential"


def test_the_environment_variable_named_by_token_env_is_the_fallback(tmp_path: Path) -> None:
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path), "MY_TOKEN": " from-env \n"}
    assert read_token(environ, "MY_TOKEN") == "from-env"
    assert read_token({"SCHEDULER_API_TOKEN": "x"}, "MY_TOKEN") is None
    assert read_token({"MY_TOKEN": "x"}, None) is None


def test_an_empty_token_counts_as_none(tmp_path: Path) -> None:
    (tmp_path / "api_token").write_text("\n")
    assert read_token({"CREDENTIALS_DIRECTORY": str(tmp_path), "T": ""}, "T") is None


def test_an_unreadable_credential_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "api_token").mkdir()
    with pytest.raises(ConfigError, match="api_token"):
        read_token({"CREDENTIALS_DIRECTORY": str(tmp_path)}, None)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_which_binds_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_bind(host) is loopback


def test_a_non_loopback_bind_needs_a_token() -> None:
    with pytest.raises(ConfigError, match="no API token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "t")
    check_bind("127.0.0.1", None)


# --- the bearer token ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        f"{TOKEN}",
        "Bearer ",
        "Bearer",
        "",
        "Bearer " + "a" * 10_240,
        f"Bearer {TOKEN} {TOKEN}",
    ],
    ids=[
        "missing",
        "wrong",
        "longer",
        "shorter",
        "basic",
        "no-scheme",
        "empty",
        "scheme-only",
        "blank",
        "10kB",
        "twice",
    ],
)
async def test_a_bad_authorization_header_is_a_401(api: Api, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    before = api.state()
    status, body = await api.call(
        "POST", "/api/jobs", json={"task": "work"}, headers=headers, auth=False
    )
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert TOKEN not in str(body)
    assert api.state() == before


@pytest.mark.parametrize(
    "value",
    [b"Bearer \xc3\xa9t\xc3\xa9", b"Bearer " + TOKEN.encode() + b"\xff", b"Bearer \xe2\x80\x8b"],
    ids=["utf8", "token-then-byte", "zero-width-space"],
)
async def test_a_non_ascii_token_is_a_401(api: Api, value: bytes) -> None:
    status, data = await raw_request(
        api, b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + value + b"\r\n"
    )
    assert status == 401
    assert TOKEN.encode() not in data


async def test_the_right_token_is_accepted_with_any_case_of_scheme(api: Api) -> None:
    for scheme in ("Bearer", "bearer", "BEARER"):
        status, _ = await api.call(
            "GET", "/api/jobs", headers={"Authorization": f"{scheme} {TOKEN}"}, auth=False
        )
        assert status == 200


async def test_the_status_card_health_and_static_files_need_no_token(api: Api) -> None:
    for method, path in [
        ("GET", "/api/scheduler"),
        ("HEAD", "/api/scheduler"),
        ("GET", "/healthz"),
    ]:
        status, _ = await api.call(method, path, auth=False)
        assert status == 200, (method, path)
    for path in ("/", "/static/app.js"):  # open, whether or not the dashboard is installed
        status, _ = await api.call("GET", path, auth=False)
        assert status != 401, path


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/jobs"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/events"),
        ("POST", "/api/scheduler/pause"),
        ("POST", "/api/scheduler"),
        ("DELETE", "/api/workflows/w/schedule"),
        ("GET", "/metrics"),
        ("GET", "/api/jobs/0000000000000"),
    ],
)
async def test_everything_else_needs_the_token(api: Api, method: str, path: str) -> None:
    status, body = await api.call(method, path, auth=False)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"


async def test_a_401_asks_for_a_bearer_token(api: Api) -> None:
    async with api.client.get("/api/jobs") as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


# --- DNS rebinding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("localhost", True),
        ("localhost:8080", True),
        ("LOCALHOST:1", True),
        ("127.0.0.1", True),
        ("127.0.0.1:8080", True),
        ("[::1]", True),
        ("[::1]:8080", True),
        ("evil.example", False),
        ("evil.example:8080", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("::1", False),
        ("localhost:http", False),
        ("", False),
    ],
)
def test_which_host_headers_are_loopback_names(host: str, ok: bool) -> None:
    assert host_is_loopback_name(host) is ok


async def test_a_non_loopback_host_header_is_a_403_on_a_loopback_bind(api: Api) -> None:
    status, body = await api.call("GET", "/api/jobs", headers={"Host": "evil.example:8080"})
    assert status == 403
    assert body["error"]["code"] == "forbidden"
    status, _ = await api.call("GET", "/api/scheduler", headers={"Host": "evil.example"})
    assert status == 403  # even the open status card: a rebinding page reads nothing
    status, _ = await api.call("GET", "/api/jobs", headers={"Host": "localhost:8080"})
    assert status == 200


async def test_any_host_header_is_accepted_on_a_public_bind() -> None:
    async with running_api(token=TOKEN, host="0.0.0.0") as api:
        status, _ = await api.call("GET", "/api/jobs", headers={"Host": "scheduler.lan:8080"})
        assert status == 200


# --- CORS ------------------------------------------------------------------------------------


async def test_cors_headers_go_only_to_listed_origins_and_only_on_get(api: Api) -> None:
    async with api.client.get("/api/scheduler", headers={"Origin": ORIGIN}) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "Origin" in resp.headers["Vary"]
    async with api.client.get("/api/scheduler", headers={"Origin": "https://evil.example"}) as r:
        assert "Access-Control-Allow-Origin" not in r.headers
    async with api.client.post(
        "/api/scheduler/pause", headers={"Origin": ORIGIN, **api.headers()}
    ) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_a_preflight_is_answered_for_get_of_the_status_card_only(api: Api) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    async with api.client.options("/api/scheduler", headers=preflight) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert resp.headers["Access-Control-Allow-Methods"] == "GET, HEAD"
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    for path, origin, method in [
        ("/api/scheduler", ORIGIN, "POST"),
        ("/api/scheduler", ORIGIN, "DELETE"),
        ("/api/scheduler", "https://evil.example", "GET"),
        ("/api/jobs", ORIGIN, "GET"),  # a listed origin still reads only the card
    ]:
        headers = {"Origin": origin, "Access-Control-Request-Method": method}
        async with api.client.options(path, headers=headers) as resp:
            assert resp.status == 403
            assert "Access-Control-Allow-Origin" not in resp.headers


async def test_no_cors_without_configured_origins() -> None:
    async with (
        running_api() as api,
        api.client.get("/api/scheduler", headers={"Origin": ORIGIN}) as resp,
    ):
        assert "Access-Control-Allow-Origin" not in resp.headers


# --- the real daemon -------------------------------------------------------------------------


@pytest.mark.integration
async def test_the_daemon_refuses_a_public_bind_without_a_token(tmp_path: Path) -> None:
    proc = DaemonProcess(tmp_path, env={"SCHEDULER_API_TOKEN": ""})
    proc.config.write_text(proc.config.read_text().replace('"127.0.0.1"', '"0.0.0.0"'))
    with pytest.raises(RuntimeError, match="exited 78") as info:
        await proc.start()
    assert "no API token is configured" in str(info.value)


@pytest.mark.integration
async def test_the_token_never_appears_in_logs_responses_or_job_environments(
    tmp_path: Path,
) -> None:
    """A canary: the token is sent right and wrong in every way, and a command job prints its
    environment; the token must not show up in any response or log line."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "api_token").write_text(TOKEN + "\n")
    proc = DaemonProcess(
        tmp_path,
        '[tasks.printenv]\nkind = "command"\nargv = ["env"]\n',
        env={"CREDENTIALS_DIRECTORY": str(credentials), "SCHEDULER_API_TOKEN": TOKEN + "-env"},
    )
    await proc.start()
    seen: list[str] = []
    try:
        good = {"Authorization": f"Bearer {TOKEN}"}
        for headers in [
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": "Bearer " + TOKEN * 400},
            {"Authorization": f"Bearer {TOKEN}-env"},  # the credential wins over the env var
        ]:
            status, body, answer_headers = await proc.request("GET", "/api/jobs", headers=headers)
            assert status == 401
            seen += [str(body), str(dict(answer_headers))]
        status, job, _ = await proc.request(
            "POST", "/api/jobs?wait=true", json={"task": "printenv"}, headers=good
        )
        assert status == 201, job
        assert job["run"]["outcome"] == "success"
        assert "SCHEDULER_JOB_ID" in str(job["result"])  # the environment was printed
        seen.append(str(job))
        for method, path in [
            ("GET", "/api/scheduler"),
            ("GET", "/api/openapi.json"),
            ("GET", f"/api/jobs/{job['id']}/runs"),
            ("GET", "/nope"),
        ]:
            status, body, headers = await proc.request(method, path, headers=good)
            seen += [str(body), str(dict(headers))]
        # A header the HTTP parser rejects is answered and logged without its text.
        reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
        writer.write(
            b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\x01\r\nConnection: close\r\n\r\n"
        )
        assert (await reader.read()).startswith(b"HTTP/1.0 400")
        writer.close()
        await writer.wait_closed()
        status, body, _ = await proc.request(
            "POST",
            "/api/jobs",
            data=f'{{"task": "{TOKEN}"}}',
            headers={**good, "Content-Type": "application/json"},
        )
        assert status == 400
        seen.append(str(body))
    finally:
        assert await proc.stop() == 0
    log = proc.output()
    assert "listening" in log
    assert "refused a request from 127.0.0.1: malformed HTTP request" in log
    assert "Traceback" not in log
    for text in [*seen, log]:
        assert TOKEN not in text
