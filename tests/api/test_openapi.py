"""The OpenAPI document: valid OpenAPI 3.1, covers every served route, and real responses
conform to it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate

from scheduler.api.openapi import document
from tests.api.harness import TOKEN, Api, ApiOptions

#: Routes other modules register (dashboard, metrics); documented here, served once wired in.
ELSEWHERE = {("/", "get"), ("/static/{path}", "get"), ("/metrics", "get")}
_METHODS = {"get", "head", "post", "put", "patch", "delete"}


@pytest.fixture
def api_options() -> ApiOptions:
    return {"token": TOKEN}


def served(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path += "/{path}"
        method = route.method.lower()
        if method == "head" and path != "/api/scheduler":
            continue  # aiohttp's automatic HEAD of every GET
        out.add((path, method))
    return out


def documented() -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document()["paths"].items()
        for method in item
        if method in _METHODS
    }


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


async def test_every_served_route_is_documented_and_nothing_else(api: Api) -> None:
    routes = served(api.client.app)
    assert routes - documented() == set()
    assert documented() - routes <= ELSEWHERE


async def test_the_document_is_served(api: Api) -> None:
    status, body = await api.call("GET", "/api/openapi.json")
    assert status == 200
    assert body == document(("broken", "gated", "work"))
    assert body["components"]["schemas"]["JobInput"]["properties"]["task"]["enum"] == [
        "broken",
        "gated",
        "work",
    ]
    validate(body)


class Conformance:
    """Calls the API and validates every answer against the documented response."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.doc = document()
        self.checked: set[tuple[str, str, int]] = set()

    def schema_for(self, template: str, method: str, status: int) -> dict[str, Any] | None:
        responses = self.doc["paths"][template][method.lower()]["responses"]
        assert str(status) in responses, f"{method} {template}: {status} is not documented"
        content = responses[str(status)].get("content", {})
        media = content.get("application/json")
        return None if media is None else media["schema"]

    async def call(
        self,
        method: str,
        template: str,
        *,
        status: int,
        json: Any = None,
        headers: dict[str, str] | None = None,
        **params: str,
    ) -> Any:
        path = template.format(**params)
        got, body = await self.api.call(method, path, json=json, headers=headers)
        assert got == status, (method, path, got, body)
        schema = self.schema_for(template.split("?", maxsplit=1)[0], method, got)
        if schema is not None:
            root = {"components": self.doc["components"], **schema}
            Draft202012Validator(root, format_checker=FormatChecker()).validate(body)
        self.checked.add((method, template.split("?", maxsplit=1)[0], got))
        return body


async def test_real_responses_conform_to_the_document(api: Api) -> None:
    c = Conformance(api)
    await c.call("GET", "/api/scheduler", status=200)
    await c.call("GET", "/healthz", status=200)
    job = await c.call(
        "POST",
        "/api/jobs",
        status=201,
        json={"task": "work", "schedule": {"every": "1h"}, "payload": {"a": 1}},
    )
    one_off = await c.call(
        "POST",
        "/api/jobs",
        status=201,
        json={
            "task": "gated",
            "schedule": {"repeat": {"freq": "monthly", "monthDays": [1, -1]}},
            "timeout": "1m",
            "misfire": {"grace": "5m"},
        },
    )
    jid, oid = job["id"], one_off["id"]
    await c.call("GET", "/api/scheduler", status=200)
    await c.call("GET", "/api/jobs", status=200)
    await c.call("GET", "/api/jobs?status={s}", status=400, s="nope")
    await c.call("GET", "/api/jobs/{id}", status=200, id=jid)
    await c.call("GET", "/api/jobs/{id}", status=404, id="nope")
    await c.call("PATCH", "/api/jobs/{id}", status=200, id=jid, json={"priority": "low"})
    await c.call("PATCH", "/api/jobs/{id}", status=400, id=jid, json={"status": "x"})
    await c.call("POST", "/api/jobs/{id}/run", status=202, id=jid)
    await api.clock.advance(0)
    await c.call("GET", "/api/jobs/{id}/runs", status=200, id=jid)
    await c.call("GET", "/api/jobs/{id}/next", status=200, id=jid)
    await c.call("GET", "/api/jobs/{id}/explain", status=200, id=jid)
    await c.call("GET", "/api/jobs/{id}/explain", status=404, id="nope")
    await c.call("GET", "/api/stats", status=200)
    await c.call("GET", "/api/stats?hours={h}", status=400, h="0")
    await c.call("GET", "/api/maintenance", status=200)
    await c.call("GET", "/api/maintenance?hours={h}", status=400, h="169")
    await c.call("POST", "/api/jobs/{id}/pause", status=200, id=jid, json={"reason": "x"})
    await c.call("POST", "/api/jobs/{id}/resume", status=200, id=jid)
    await c.call("POST", "/api/jobs/{id}/retry", status=409, id=jid)
    await c.call("POST", "/api/jobs/{id}/run", status=202, id=oid)
    await api.run_until_running(oid)
    await c.call("GET", "/api/jobs/{id}", status=200, id=oid)
    await c.call("POST", "/api/jobs/{id}/cancel", status=200, id=oid)
    await c.call("GET", "/api/jobs/{id}/runs", status=200, id=oid)
    waited = asyncio.create_task(
        c.call("POST", "/api/jobs?wait=true", status=201, json={"task": "broken", "maxRetries": 0})
    )
    while not waited.done():
        await api.clock.advance(0)
    failed = waited.result()
    await c.call("POST", "/api/jobs/{id}/retry", status=200, id=failed["id"])
    await c.call(
        "PUT",
        "/api/workflows/{workflowId}/schedule",
        status=201,
        workflowId="wf",
        json={"task": "work", "schedule": {"cron": "@daily"}},
    )
    await c.call(
        "PUT",
        "/api/workflows/{workflowId}/schedule",
        status=200,
        workflowId="wf",
        json={"task": "work", "schedule": {"rrule": "FREQ=DAILY;COUNT=3"}},
    )
    await c.call("DELETE", "/api/workflows/{workflowId}/schedule", status=204, workflowId="wf")
    await c.call("POST", "/api/scheduler/pause", status=200)
    await c.call("POST", "/api/scheduler/resume", status=200)
    await c.call("POST", "/api/scheduler/clean", status=200, json={"status": ["failed"]})
    await c.call("DELETE", "/api/jobs/{id}", status=204, id=jid)
    await c.call("POST", "/api/jobs", status=415, headers={"Content-Type": "text/plain"})
    cross_site = {"Sec-Fetch-Site": "cross-site"}
    await c.call("POST", "/api/scheduler/pause", status=403, headers=cross_site)
    await c.call("GET", "/api/jobs?stauts=failed", status=400)
    covered = {(path, method.lower()) for method, path, _ in c.checked}
    elsewhere = {("/api/events", "get"), ("/api/scheduler", "head"), ("/api/openapi.json", "get")}
    assert documented() - ELSEWHERE - elsewhere - covered == set()
