"""Query parameters: the task filter, unknown or repeated parameters refused by name, and the
status card's added counts (``delayedJobs``, ``jobsByType``)."""

from __future__ import annotations

import pytest

from scheduler.api.openapi import document
from scheduler.api.queries import accepted
from tests.api.harness import Api


async def test_the_list_filters_by_task_with_the_other_filters(api: Api) -> None:
    work = [await api.create(task="work", schedule={"delay": "1h"}) for _ in range(3)]
    gated = await api.create(task="gated", schedule={"delay": "1h"})
    await api.create(task="work", schedule={"every": "1h"})
    status, body = await api.call("GET", "/api/jobs?task=gated")
    assert status == 200
    assert [j["id"] for j in body["items"]] == [gated["id"]]
    assert body["total"] == 1
    status, body = await api.call("GET", "/api/jobs?task=work&type=delayed&status=pending&limit=2")
    assert [j["id"] for j in body["items"]] == [j["id"] for j in work[:2]]
    assert body["total"] == 3
    status, body = await api.call("GET", "/api/jobs?task=work&type=delayed&page=2&limit=2")
    assert [j["id"] for j in body["items"]] == [work[2]["id"]]
    status, body = await api.call("GET", "/api/jobs?task=nope")
    assert (status, body["items"], body["total"]) == (200, [], 0)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/jobs?stauts=failed", "stauts"),
        ("/api/jobs?status=pending&status=failed", "status"),
        ("/api/jobs?pgae=2", "pgae"),
        ("/api/jobs/{id}/next?count=3", "count"),
        ("/api/events?job=1", "job"),
    ],
)
async def test_an_unknown_or_repeated_query_parameter_is_a_400_naming_it(
    api: Api, path: str, field: str
) -> None:
    job = await api.create(schedule={"every": "1h"})
    status, body = await api.call("GET", path.format(id=job["id"]))
    assert status == 400, body
    assert body["error"]["field"] == field
    assert field in body["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/jobs?wiat=true", {"task": "work"}),
        ("/api/jobs/{id}/run?forse=true", None),
        ("/api/jobs/{id}/run?wait=true&x=1", None),
    ],
)
async def test_a_change_with_an_unknown_query_parameter_changes_nothing(
    api: Api, path: str, body: dict[str, str] | None
) -> None:
    job = await api.create(schedule={"every": "1h"})
    before = api.state()
    status, answer = await api.call("POST", path.format(id=job["id"]), json=body)
    await api.clock.advance(0)
    assert status == 400, answer
    assert api.state() == before


async def test_a_long_unknown_parameter_is_quoted_short(api: Api) -> None:
    name = "x" * 5000
    status, body = await api.call("GET", f"/api/jobs?{name}=1")
    assert status == 400
    assert len(body["error"]["message"]) < 200


async def test_routes_that_take_no_query_ignore_one(api: Api) -> None:
    for path in ("/api/scheduler?_=123", "/healthz?x=1", "/?v=2", "/static/app.js?v=2"):
        status, _ = await api.call("GET", path)
        assert status == 200, path


def test_the_accepted_parameters_are_those_the_document_lists() -> None:
    table = accepted()
    assert table[("/api/jobs", "GET")] == {
        "status",
        "type",
        "workflowId",
        "task",
        "page",
        "limit",
    }
    assert table[("/api/jobs", "POST")] == {"wait"}
    assert table[("/api/jobs/{id}/run", "POST")] == {"force", "wait"}
    assert table[("/api/jobs/{id}/next", "GET")] == {"n"}
    assert table[("/api/events", "GET")] == {"jobId"}
    for (path, method), _names in table.items():
        assert "400" in document()["paths"][path][method.lower()]["responses"], (path, method)


async def test_the_card_counts_delayed_jobs_and_jobs_by_type(api: Api) -> None:
    await api.create(schedule={"delay": "1h"})
    await api.create(schedule={"at": "2030-02-01T09:00"})
    await api.create(schedule={"every": "1h"})
    soon = await api.create(schedule={"delay": "1s"})
    status, card = await api.call("GET", "/api/scheduler")
    assert status == 200
    assert card["delayedJobs"] == 3
    assert card["jobsByType"] == {"immediate": 0, "delayed": 2, "scheduled": 1, "recurring": 1}
    await api.clock.advance(2)  # the 1 s delay comes and its job runs: no longer waiting
    assert (await api.get(soon["id"]))["status"] == "completed"
    _, card = await api.call("GET", "/api/scheduler")
    assert card["delayedJobs"] == 2
    assert sum(card["jobsByType"].values()) == card["totalJobs"] == 4


async def test_a_job_whose_time_came_is_not_delayed_while_it_waits_for_a_slot(api: Api) -> None:
    slots = api.sched.config.scheduler.max_concurrency
    for _ in range(slots):
        await api.create(task="gated")
    await api.clock.advance(0)
    await api.create(schedule={"delay": "1s"})
    _, card = await api.call("GET", "/api/scheduler")
    assert (card["runningJobs"], card["delayedJobs"]) == (slots, 1)
    await api.clock.advance(2)
    _, card = await api.call("GET", "/api/scheduler")
    assert (card["pendingJobs"], card["delayedJobs"]) == (1, 0)  # due, waiting for a slot


async def test_while_dispatching_is_paused_an_overdue_job_stays_delayed(api: Api) -> None:
    await api.call("POST", "/api/scheduler/pause")
    await api.create(schedule={"delay": "1s"})
    await api.clock.advance(2)
    _, card = await api.call("GET", "/api/scheduler")
    assert card["delayedJobs"] == 1  # nothing is handed out as due while paused
    await api.call("POST", "/api/scheduler/resume")
    await api.clock.advance(0)
    _, card = await api.call("GET", "/api/scheduler")
    assert card["delayedJobs"] == 0
