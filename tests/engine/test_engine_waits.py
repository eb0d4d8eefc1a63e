"""``?wait=true`` over HTTP: a refused request leaves nothing behind, and a wait always ends."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tests.api.harness import Api


async def test_refused_creates_with_wait_leave_no_waiter_behind(api: Api) -> None:
    body = {"task": "work", "workflowId": "wf-1"}
    status, _ = await api.call("POST", "/api/jobs", json=body)
    assert status == 201
    engine = api.sched.engine
    for _ in range(200):
        status, answer = await api.call("POST", "/api/jobs?wait=true", json=body)
        assert status == 409, answer
    assert engine.waiters.pending == 0


async def test_a_waited_run_now_answers_404_when_the_job_is_deleted_before_it_starts(
    api: Api,
) -> None:
    gated = api.sched.runtimes["gated"]
    api.sched.runtimes["gated"] = replace(gated, concurrency=1)
    blocker = await api.create(task="gated")
    await api.run_until_running(blocker["id"])  # holds the task's only slot
    target = await api.create(task="gated", schedule={"cron": "0 12 * * *"})
    request = asyncio.create_task(api.call("POST", f"/api/jobs/{target['id']}/run?wait=true"))
    await api.clock.advance(0)
    assert not request.done()  # queued behind the blocker
    status, _ = await api.call("DELETE", f"/api/jobs/{target['id']}")
    assert status == 204
    for _ in range(20):
        await api.clock.advance(0)
        if request.done():
            break
    status, answer = request.result()
    assert status == 404, answer
