"""Another site cannot change the scheduler through the operator's browser (CSRF), changes must
be JSON, and CORS exposes the status card only."""

from __future__ import annotations

import pytest

from tests.api.harness import Api, ApiOptions, running_api

ORIGIN = "https://home.example"
CHANGES = [
    ("POST", "/api/scheduler/pause"),
    ("POST", "/api/scheduler/resume"),
    ("POST", "/api/scheduler/clean"),
    ("POST", "/api/jobs"),
    ("PUT", "/api/workflows/wf/schedule"),
]


@pytest.fixture
def api_options() -> ApiOptions:  # no token: the default
    return {"cors_origins": (ORIGIN,)}


@pytest.mark.parametrize(("method", "path"), CHANGES)
@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another port on localhost is "same-site"
        {"Origin": "https://evil.example"},
        {"Origin": "http://127.0.0.1:9999"},
        {"Origin": "null"},
        {"Origin": ORIGIN},  # a CORS origin may read the card, not change anything
    ],
    ids=["cross-site", "same-site", "origin", "other-port", "null", "cors-origin"],
)
async def test_a_change_from_another_site_is_refused_and_changes_nothing(
    api: Api, method: str, path: str, headers: dict[str, str]
) -> None:
    before = api.state()
    status, body = await api.call(method, path, headers=headers)
    assert status == 403, body
    assert body["error"]["code"] == "forbidden"
    assert api.state() == before


async def test_an_empty_cross_site_form_post_cannot_pause_the_scheduler(api: Api) -> None:
    """What an HTML form on another page sends: no Sec-Fetch-Site (an old browser), its
    own Origin, a form media type and no body."""
    headers = {
        "Origin": "https://evil.example",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    status, _ = await api.call("POST", "/api/scheduler/pause", headers=headers)
    assert status == 403
    assert not api.sched.store.paused


async def test_the_dashboard_same_origin_and_non_browser_clients_may_change(api: Api) -> None:
    host = f"127.0.0.1:{api.client.port}"
    for headers in [
        {"Sec-Fetch-Site": "same-origin", "Origin": f"http://{host}"},  # the dashboard
        {"Origin": f"http://{host}"},  # a browser without Fetch metadata
        {"Host": f"localhost:{api.client.port}", "Origin": f"http://localhost:{api.client.port}"},
        {"Sec-Fetch-Site": "none"},  # typed by the user
        {},  # curl, scripts
    ]:
        status, body = await api.call("POST", "/api/scheduler/pause", headers=headers)
        assert status == 200, (headers, body)


@pytest.mark.parametrize(("method", "path"), [*CHANGES, ("PATCH", "/api/jobs/{id}")])
@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_a_change_must_be_sent_as_json_even_when_empty(
    api: Api, method: str, path: str, content_type: str | None
) -> None:
    job = await api.create(schedule={"delay": "1h"})
    before = api.state()
    headers = {} if content_type is None else {"Content-Type": content_type}
    async with api.client.request(method, path.format(id=job["id"]), headers=headers) as resp:
        body = await resp.json()
        assert resp.status == 415, body
    assert body["error"]["code"] == "unsupported_media_type"
    assert api.state() == before


async def test_a_delete_needs_no_type_but_a_declared_one_must_be_json(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"})
    other = await api.create(schedule={"delay": "1h"})
    async with api.client.delete(f"/api/jobs/{job['id']}") as resp:
        assert resp.status == 204
    text = {"Content-Type": "text/plain"}
    async with api.client.delete(f"/api/jobs/{other['id']}", headers=text) as resp:
        assert resp.status == 415


async def test_an_unknown_route_is_a_404_not_a_415(api: Api) -> None:
    async with api.client.post("/api/nope") as resp:
        assert resp.status == 404
    async with api.client.put("/api/jobs") as resp:
        assert resp.status == 405


async def test_cors_exposes_the_status_card_and_nothing_else(api: Api) -> None:
    async with api.client.get("/api/scheduler", headers={"Origin": ORIGIN}) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    for path in ("/api/jobs", "/metrics", "/api/openapi.json", "/healthz"):
        async with api.client.get(path, headers={"Origin": ORIGIN}) as resp:
            assert "Access-Control-Allow-Origin" not in resp.headers, path


async def test_even_a_wildcard_origin_reads_only_the_listed_routes() -> None:
    async with running_api(cors_origins=("*",)) as api:
        job = await api.create(payload={"secret": "payload"})
        for path in (f"/api/jobs/{job['id']}", "/api/jobs", "/api/events"):
            if path == "/api/events":
                resp = await api.client.get(path, headers={"Origin": "https://any.example"})
                assert "Access-Control-Allow-Origin" not in resp.headers
                resp.close()
                continue
            async with api.client.get(path, headers={"Origin": "https://any.example"}) as resp:
                assert "Access-Control-Allow-Origin" not in resp.headers, path
        async with api.client.get("/api/scheduler", headers={"Origin": "https://a.example"}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "https://a.example"
