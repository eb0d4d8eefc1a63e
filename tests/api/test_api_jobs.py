"""Job routes over HTTP: list, create, read, PATCH, DELETE, and workflow registration."""

from __future__ import annotations

import asyncio

import pytest

from scheduler.config import StaticJob
from scheduler.ids import encode
from scheduler.model import Schedule
from tests.api.harness import T0, Api, running_api, seoul

HOUR = 3600.0


# --- list ------------------------------------------------------------------------------------


async def test_the_list_pages_through_jobs_in_creation_order(api: Api) -> None:
    ids = [(await api.create(schedule={"delay": f"{i + 1}h"}))["id"] for i in range(5)]
    status, body = await api.call("GET", "/api/jobs?page=1&limit=2")
    assert status == 200
    assert [j["id"] for j in body["items"]] == ids[:2]
    assert (body["total"], body["page"], body["limit"]) == (5, 1, 2)
    _, body = await api.call("GET", "/api/jobs?page=3&limit=2")
    assert [j["id"] for j in body["items"]] == ids[4:]
    _, body = await api.call("GET", "/api/jobs?page=4&limit=2")
    assert body["items"] == []
    assert body["total"] == 5


async def test_the_list_defaults_to_the_first_page_of_twenty(api: Api) -> None:
    for _ in range(21):
        await api.create(schedule={"delay": "1h"})
    _, body = await api.call("GET", "/api/jobs")
    assert (len(body["items"]), body["total"], body["page"], body["limit"]) == (20, 21, 1, 20)


async def test_the_list_filters_by_status_type_and_workflow(api: Api) -> None:
    delayed = await api.create(schedule={"delay": "1h"}, workflowId="wf-a")
    recurring = await api.create(schedule={"cron": "0 9 * * *"}, workflowId="wf-b")
    done = await api.create()
    await api.clock.advance(0)
    assert (await api.get(done["id"]))["status"] == "completed"
    at = await api.create(schedule={"at": "2030-02-01T09:00"})

    async def ids(query: str) -> tuple[list[str], int]:
        status, body = await api.call("GET", "/api/jobs?" + query)
        assert status == 200, body
        return [j["id"] for j in body["items"]], body["total"]

    assert await ids("status=pending") == ([delayed["id"], recurring["id"], at["id"]], 3)
    assert await ids("status=completed") == ([done["id"]], 1)
    assert await ids("type=recurring") == ([recurring["id"]], 1)
    assert await ids("type=immediate") == ([done["id"]], 1)
    assert await ids("type=scheduled") == ([at["id"]], 1)
    assert await ids("type=delayed") == ([delayed["id"]], 1)
    assert await ids("workflowId=wf-a") == ([delayed["id"]], 1)
    assert await ids("status=pending&type=delayed&workflowId=wf-a") == ([delayed["id"]], 1)
    assert await ids("status=pending&workflowId=wf-nope") == ([], 0)
    assert await ids("status=pending&limit=1&page=2") == ([recurring["id"]], 3)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=", "limit"),
        ("status=done", "status"),
        ("type=weekly", "type"),
    ],
)
async def test_a_bad_list_parameter_is_a_400_naming_it(api: Api, query: str, field: str) -> None:
    status, body = await api.call("GET", "/api/jobs?" + query)
    assert status == 400
    assert body["error"]["field"] == field
    assert field in body["error"]["message"]


# --- create and read -------------------------------------------------------------------------


async def test_a_created_job_is_read_back_with_its_location(api: Api) -> None:
    status, body = await api.call(
        "POST", "/api/jobs", json={"task": "work", "schedule": {"delay": "90s"}}
    )
    assert status == 201
    assert body["scheduledTime"] == seoul(T0 + 90)
    assert body["type"] == "delayed"
    assert await api.get(body["id"]) == body


async def test_wait_true_answers_with_the_finished_run(api: Api) -> None:
    request = asyncio.create_task(
        api.call("POST", "/api/jobs?wait=true", json={"task": "work", "payload": {"n": 1}})
    )
    while not request.done():
        await api.clock.advance(0)
    status, body = request.result()
    assert status == 201
    assert body["status"] == "completed"
    assert body["run"]["outcome"] == "success"
    assert body["run"]["result"] == {"ok": True}
    assert api.calls == [{"n": 1}]
    assert api.sched.store.counts  # one job, run once
    assert len(api.sched.store) == 1


async def test_wait_true_answers_even_when_the_run_is_missed(api: Api) -> None:
    request = asyncio.create_task(
        api.call("POST", "/api/jobs?wait=true", json={"task": "work", "misfire": {"grace": 0}})
    )
    for _ in range(2000):  # until the request has arrived and stored the job
        if api.sched.store.jobs:
            break
        await asyncio.sleep(0.001)
    assert len(api.sched.store) == 1
    api.clock.step(5)  # the wall clock jumps before the job could start: it is 5 s late
    while not request.done():
        await api.clock.advance(0)
    status, body = request.result()
    assert status == 201
    assert body["run"]["outcome"] == "missed"
    assert body["status"] == "failed"
    assert api.calls == []
    assert api.sched.engine.waiters.pending == 0  # the request's waiter is gone


async def test_an_unknown_or_malformed_job_id_is_a_404(api: Api) -> None:
    for job_id in ("0000000000000", "nope", "!!!!!!!!!!!!!"):
        status, body = await api.call("GET", f"/api/jobs/{job_id}")
        assert status == 404
        assert body["error"]["code"] == "not_found"


# --- PATCH -----------------------------------------------------------------------------------


async def test_patching_the_schedule_recomputes_the_next_run_from_now(api: Api) -> None:
    job = await api.create(schedule={"cron": "0 9 * * *"})
    assert job["scheduledTime"] == seoul(T0 + 24 * HOUR)
    await api.clock.advance(HOUR)  # 10:00
    status, body = await api.call(
        "PATCH", f"/api/jobs/{job['id']}", json={"schedule": {"cron": "30 10 * * *"}}
    )
    assert status == 200, body
    assert body["scheduledTime"] == seoul(T0 + 1.5 * HOUR)
    assert body["schedule"] == {"cron": "30 10 * * *"}
    assert body["id"] == job["id"]
    assert body["createdAt"] == job["createdAt"]
    await api.clock.advance(0.5 * HOUR)
    assert len(api.calls) == 1


async def test_patching_the_payload_keeps_the_next_run(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"}, payload={"v": 1})
    await api.clock.advance(600)
    status, body = await api.call("PATCH", f"/api/jobs/{job['id']}", json={"payload": {"v": 2}})
    assert status == 200
    assert body["payload"] == {"v": 2}
    assert body["scheduledTime"] == job["scheduledTime"]
    await api.clock.advance(3000)
    assert api.calls == [{"v": 2}]


async def test_a_new_delay_counts_from_the_patch(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"})
    await api.clock.advance(600)
    _, body = await api.call("PATCH", f"/api/jobs/{job['id']}", json={"schedule": {"delay": "5m"}})
    assert body["scheduledTime"] == seoul(T0 + 900)


async def test_a_patched_interval_stays_on_the_engines_grid(api: Api) -> None:
    job = await api.create(schedule={"every": "1h"})
    await api.clock.advance(600)
    _, body = await api.call("PATCH", f"/api/jobs/{job['id']}", json={"schedule": {"every": "2h"}})
    assert body["scheduledTime"] == seoul(T0 + 2 * HOUR)  # anchored at creation, like the engine
    await api.clock.advance(2 * HOUR - 600)
    assert len(api.calls) == 1
    assert (await api.get(job["id"]))["scheduledTime"] == seoul(T0 + 4 * HOUR)


async def test_patch_changes_priority_and_policies(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"}, retry={"max": 5, "delay": "10s"})
    status, body = await api.call(
        "PATCH",
        f"/api/jobs/{job['id']}",
        json={"priority": "high", "retry": {"delay": "20s"}, "timeout": "5m", "overlap": "allow"},
    )
    assert status == 200, body
    assert body["priority"] == "high"
    assert body["retry"]["max"] == 5  # merged key by key
    assert body["retry"]["delay"] == "20s"
    assert body["timeout"] == "5m"
    assert body["overlap"] == "allow"
    _, body = await api.call("PATCH", f"/api/jobs/{job['id']}", json={"maxRetries": 1})
    assert body["maxRetries"] == 1
    assert body["retry"]["delay"] == "20s"
    _, body = await api.call("PATCH", f"/api/jobs/{job['id']}", json={"timeout": None})
    assert body["timeout"] is None


@pytest.mark.parametrize(
    "field", ["id", "status", "attempt", "scheduledTime", "createdAt", "runs", "workflowId"]
)
async def test_a_server_field_is_not_writable(api: Api, field: str) -> None:
    job = await api.create(schedule={"delay": "1h"})
    before = api.state()
    status, body = await api.call(
        "PATCH", f"/api/jobs/{job['id']}", json={"payload": {"x": 1}, field: "x"}
    )
    assert status == 400
    assert body["error"]["field"] == field
    assert "not writable" in body["error"]["message"]
    assert api.state() == before


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"payload": {"x": 1}, "priority": "urgent"}, "priority"),
        ({"payload": {"x": 1}, "schedule": {"cron": "61 * * * *"}}, "schedule.cron"),
        ({"payload": {"x": 1}, "schedule": {"at": "2020-01-01T00:00"}}, "schedule"),
        ({"payload": {"x": 1}, "timezone": "Mars/Base"}, "timezone"),
        ({"payload": {"x": 1}, "task": "nope"}, "task"),
        ({"payload": {"x": 1}, "retry": {"delay": "soon"}}, "retry.delay"),
        ({"payload": {"x": 1}, "retyr": {}}, "retyr"),
        ({"payload": {"x": 1}, "maxRetries": True}, "maxRetries"),
    ],
)
async def test_a_patch_is_validated_whole_before_anything_changes(
    api: Api, patch: dict[str, object], field: str
) -> None:
    job = await api.create(schedule={"delay": "1h"}, payload={"x": 0})
    before = api.state()
    status, body = await api.call("PATCH", f"/api/jobs/{job['id']}", json=patch)
    assert status == 400, body
    assert body["error"]["field"] == field
    assert api.state() == before


async def test_a_running_one_off_job_cannot_be_rescheduled(api: Api) -> None:
    job = await api.create(task="gated")
    await api.run_until_running(job["id"])
    status, body = await api.call(
        "PATCH", f"/api/jobs/{job['id']}", json={"schedule": {"delay": "1h"}}
    )
    assert status == 409
    assert body["error"]["field"] == "schedule"


# --- DELETE ----------------------------------------------------------------------------------


async def test_deleting_a_job_removes_it(api: Api) -> None:
    job = await api.create(schedule={"delay": "1h"})
    status, _ = await api.call("DELETE", f"/api/jobs/{job['id']}")
    assert status == 204
    status, _ = await api.call("GET", f"/api/jobs/{job['id']}")
    assert status == 404
    status, _ = await api.call("DELETE", f"/api/jobs/{job['id']}")
    assert status == 404
    await api.clock.advance(2 * HOUR)
    assert api.calls == []


async def test_deleting_a_running_job_stops_its_run(api: Api) -> None:
    job = await api.create(task="gated")
    await api.run_until_running(job["id"])
    status, _ = await api.call("DELETE", f"/api/jobs/{job['id']}")
    assert status == 204
    assert api.sched.engine.running == {}
    assert len(api.sched.store) == 0


async def test_a_job_defined_in_config_is_changed_in_the_file_not_over_the_api() -> None:
    static = StaticJob(
        name="nightly",
        task="work",
        timezone="Asia/Seoul",
        workflow_id="wf-config",
        schedule=Schedule(cron="0 3 * * *"),
    )
    async with running_api(static_jobs=(static,)) as api:
        (job,) = api.sched.store
        job_id = encode(job.id)
        before = api.state()
        for method, path, body in [
            ("PATCH", f"/api/jobs/{job_id}", {"payload": 1}),
            ("DELETE", f"/api/jobs/{job_id}", None),
            ("PUT", "/api/workflows/wf-config/schedule", {"task": "work"}),
            ("DELETE", "/api/workflows/wf-config/schedule", None),
        ]:
            status, answer = await api.call(method, path, json=body)
            assert status == 409, (method, path)
            assert "config.toml" in answer["error"]["message"]
        assert api.state() == before
        status, _ = await api.call("POST", f"/api/jobs/{job_id}/pause")
        assert status == 200  # operating it is fine


# --- workflows -------------------------------------------------------------------------------


async def test_putting_a_workflow_schedule_creates_then_updates_one_job(api: Api) -> None:
    path = "/api/workflows/wf-1/schedule"
    status, first = await api.call("PUT", path, json={"task": "work", "schedule": {"delay": "1h"}})
    assert status == 201
    assert first["workflowId"] == "wf-1"
    status, second = await api.call(
        "PUT", path, json={"task": "work", "schedule": {"cron": "0 12 * * *"}, "payload": [1]}
    )
    assert status == 200
    assert second["id"] == first["id"]
    assert second["type"] == "recurring"
    assert second["scheduledTime"] == seoul(T0 + 3 * HOUR)
    assert second["payload"] == [1]
    assert len(api.sched.store) == 1


async def test_concurrent_saves_of_a_workflow_never_make_a_duplicate(api: Api) -> None:
    path = "/api/workflows/wf-2/schedule"
    bodies = [{"task": "work", "schedule": {"delay": f"{i + 1}h"}} for i in range(5)]
    results = await asyncio.gather(*(api.call("PUT", path, json=b) for b in bodies))
    assert sorted(status for status, _ in results) == [200, 200, 200, 200, 201]
    assert len({body["id"] for _, body in results}) == 1
    assert len(api.sched.store) == 1


async def test_saving_a_finished_workflow_rearms_its_job(api: Api) -> None:
    path = "/api/workflows/wf-3/schedule"
    _, first = await api.call("PUT", path, json={"task": "work"})
    await api.clock.advance(0)
    assert (await api.get(first["id"]))["status"] == "completed"
    status, again = await api.call("PUT", path, json={"task": "work", "schedule": {"delay": "1m"}})
    assert status == 200
    assert again["id"] == first["id"]
    assert again["status"] == "pending"
    assert again["attempt"] == 0
    assert again["scheduledTime"] == seoul(T0 + 60)


async def test_a_different_workflow_id_in_the_body_is_a_400(api: Api) -> None:
    status, body = await api.call(
        "PUT", "/api/workflows/wf-4/schedule", json={"task": "work", "workflowId": "other"}
    )
    assert status == 400
    assert body["error"]["field"] == "workflowId"
    assert len(api.sched.store) == 0


async def test_deleting_a_workflow_schedule_removes_its_job(api: Api) -> None:
    path = "/api/workflows/wf-5/schedule"
    await api.call("PUT", path, json={"task": "work", "schedule": {"delay": "1h"}})
    other = await api.create(schedule={"delay": "1h"}, workflowId="wf-6")
    status, _ = await api.call("DELETE", path)
    assert status == 204
    assert [j.workflow_id for j in api.sched.store] == ["wf-6"]
    status, body = await api.call("DELETE", path)
    assert status == 404
    assert body["error"]["field"] == "workflowId"
    assert (await api.get(other["id"]))["status"] == "pending"
