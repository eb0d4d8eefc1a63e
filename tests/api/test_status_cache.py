"""The status card is rendered once per change of the store and served from that rendering
(``scheduler.api.status._card``): these tests pin that the card served is always the one a
fresh rendering gives, the instant anything it shows changes, and that it is not re-rendered
while nothing changes."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.api import status
from scheduler.api.keys import Phase
from tests.api.harness import Api, running_api


async def served(api: Api) -> tuple[bytes, str]:
    async with api.client.get("/api/scheduler") as resp:
        assert resp.status == 200
        return await resp.read(), resp.headers["ETag"]


def fresh(api: Api) -> bytes:
    """The card as rendering it now, without any cache, gives it."""
    return msgspec.json.encode(status.status_document(api.sched, api.daemon_state.phase))


async def assert_current(api: Api) -> dict[str, Any]:
    body, etag = await served(api)
    assert body == fresh(api)
    assert etag == '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
    card: dict[str, Any] = msgspec.json.decode(body)
    return card


async def test_create_and_cancel_show_in_the_card_at_once(api: Api) -> None:
    card = await assert_current(api)
    assert (card["totalJobs"], card["pendingJobs"], card["nextJob"]) == (0, 0, None)
    job = await api.create(schedule={"delay": "1h"})
    card = await assert_current(api)
    assert (card["totalJobs"], card["pendingJobs"], card["delayedJobs"]) == (1, 1, 1)
    assert card["nextJob"]["id"] == job["id"]
    status_code, _ = await api.call("POST", f"/api/jobs/{job['id']}/cancel")
    assert status_code == 200
    card = await assert_current(api)
    assert (card["pendingJobs"], card["cancelledJobs"], card["delayedJobs"]) == (0, 1, 0)
    assert card["nextJob"] is None
    status_code, _ = await api.call("DELETE", f"/api/jobs/{job['id']}")
    assert status_code == 204
    card = await assert_current(api)
    assert (card["totalJobs"], card["cancelledJobs"]) == (0, 0)


async def test_a_job_handed_out_as_due_leaves_the_delayed_count_at_once(api: Api) -> None:
    await api.call("POST", "/api/scheduler/pause")
    await api.create(schedule={"delay": "1s"})
    card = await assert_current(api)
    assert (card["state"], card["isRunning"], card["delayedJobs"]) == ("paused", False, 1)
    await api.call("POST", "/api/scheduler/resume")
    await api.clock.advance(2)
    card = await assert_current(api)
    assert (card["state"], card["delayedJobs"], card["completedJobs"]) == ("running", 0, 1)


async def test_a_due_job_waiting_for_a_slot_leaves_the_delayed_count_at_once(api: Api) -> None:
    for _ in range(api.sched.config.scheduler.max_concurrency):
        await api.create(task="gated")
    await api.clock.advance(0)
    await api.create(schedule={"delay": "1s"})
    card = await assert_current(api)
    assert (card["pendingJobs"], card["delayedJobs"]) == (1, 1)
    await api.clock.advance(2)  # handed out as due (the store's only change), no slot to run
    card = await assert_current(api)
    assert (card["pendingJobs"], card["delayedJobs"]) == (1, 0)


async def test_a_change_of_phase_shows_in_the_card(api: Api) -> None:
    await assert_current(api)
    api.daemon_state.phase = Phase.STOPPING
    card = await assert_current(api)
    assert (card["state"], card["isRunning"]) == ("stopping", False)


async def test_an_etag_from_before_a_change_no_longer_matches(api: Api) -> None:
    _, etag = await served(api)
    async with api.client.get("/api/scheduler", headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304
    await api.create(schedule={"every": "1h"})
    async with api.client.get("/api/scheduler", headers={"If-None-Match": etag}) as resp:
        assert resp.status == 200
        assert resp.headers["ETag"] != etag


async def test_the_card_is_rendered_once_per_change(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders: list[int] = []
    render = status.status_document

    def counting(*args: Any) -> dict[str, Any]:
        renders.append(1)
        return render(*args)

    monkeypatch.setattr(status, "status_document", counting)
    await api.create(schedule={"delay": "1h"})
    for _ in range(5):
        await assert_current(api)  # that helper renders once itself, uncached
    assert len(renders) == 5 + 1
    await api.create(schedule={"delay": "2h"})
    await assert_current(api)
    assert len(renders) == 6 + 2


# One step of a random history: what it does to the scheduler through the API.
Step = tuple[str, Any]

STEPS = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(["1s", "2s", "1h", "every", "at", "now"])),
    st.tuples(st.sampled_from(["cancel", "delete", "run", "pause_job"]), st.integers(0, 7)),
    st.tuples(st.just("advance"), st.sampled_from([0, 1, 2, 3600])),
    st.tuples(st.sampled_from(["pause", "resume"]), st.none()),
)

SCHEDULES: dict[str, dict[str, str] | None] = {
    "1s": {"delay": "1s"},
    "2s": {"delay": "2s"},
    "1h": {"delay": "1h"},
    "every": {"every": "30m"},
    "at": {"at": "2030-02-01T09:00"},
    "now": None,
}


async def apply(api: Api, ids: list[str], step: Step) -> None:
    kind, arg = step
    if kind == "create":
        schedule = SCHEDULES[arg]
        job = await api.create(**({"schedule": schedule} if schedule else {}))
        ids.append(job["id"])
    elif kind == "advance":
        await api.clock.advance(arg)
    elif kind in ("pause", "resume"):
        await api.call("POST", f"/api/scheduler/{kind}")
    elif ids:
        job_id = ids[arg % len(ids)]
        if kind == "delete":
            await api.call("DELETE", f"/api/jobs/{job_id}")
        else:  # the answer may be a 409 (already finished...): the card must hold either way
            await api.call("POST", f"/api/jobs/{job_id}/{kind.removesuffix('_job')}")


async def replay(steps: list[Step]) -> None:
    async with running_api() as api:
        ids: list[str] = []
        for step in steps:
            await apply(api, ids, step)
            await assert_current(api)


@settings(max_examples=25, deadline=None)
@given(st.lists(STEPS, max_size=12))
def test_after_any_history_the_card_served_is_the_card_rendered_now(steps: list[Step]) -> None:
    asyncio.run(replay(steps))
