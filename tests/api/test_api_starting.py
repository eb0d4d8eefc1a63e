"""While the daemon is still loading its state, job reads answer 503 (an empty store would
answer 404 for a job that exists, and an empty list), and the status card says "starting"."""

from __future__ import annotations

from scheduler.api.keys import Phase
from tests.api.harness import running_api


async def test_job_reads_answer_503_until_the_state_is_loaded() -> None:
    async with running_api(phase=Phase.STARTING) as api:
        api.daemon_state.loaded = False
        for path in ("/api/jobs", "/api/jobs/0000000000000001", "/api/workflows/wf/schedule"):
            method = "GET" if "workflows" not in path else "DELETE"
            status, body = await api.call(method, path)
            assert status == 503, (path, body)
            assert body["error"]["code"] == "unavailable"
        status, card = await api.call("GET", "/api/scheduler")
        assert status == 200
        assert card["state"] == "starting"
        api.daemon_state.loaded = True
        api.daemon_state.phase = Phase.RUNNING
        status, _ = await api.call("GET", "/api/jobs")
        assert status == 200
