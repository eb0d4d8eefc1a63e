"""A model-based test of durability: random creates, modifications, cancels and deletes, with
graceful restarts (final snapshot), kill -9 restarts and periodic snapshots in between. After
every restart the real daemon holds exactly what the model says: every job document as it was
last acknowledged, and nothing else.

The jobs never come due during the test (the earliest is a day away), so every change to them
comes from a rule and the model can predict the whole document: the answer to the last change.
Daemon starts dominate the cost, so the examples share one daemon (each begins by deleting
what the previous one left, so that every example starts from the same empty model) and a
restart comes only after a few changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from tests.daemon_proc import DaemonProcess
from tests.persistence.harness import NOOP_TASK, all_jobs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]  # ~25 daemon starts

T = TypeVar("T")

SCHEDULES = st.sampled_from(
    [
        {"delay": "1d"},
        {"delay": "36h"},
        {"at": "2031-01-01T09:00"},
        {"every": "1d"},
        {"cron": "30 9 1 1 *"},
        {"rrule": "FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=2;BYHOUR=9;BYMINUTE=0"},
    ]
)
PRIORITIES = st.sampled_from(["critical", "high", "normal", "low"])
PAYLOADS = st.one_of(
    st.none(), st.integers(-5, 5), st.dictionaries(st.sampled_from("abc"), st.integers(0, 9))
)
#: Changes between two restarts: keeps each example to a few daemon starts.
CHANGES_PER_RESTART = 5
SHARED: list[DaemonProcess] = []  # the daemon of this module's test, set by ``shared_daemon``


@pytest.fixture(scope="module", autouse=True)
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    daemon = DaemonProcess(tmp_path_factory.mktemp("machine"), NOOP_TASK, fsync="always")
    daemon.configure("persistence", 'snapshot_interval = "250ms"')
    SHARED.append(daemon)
    yield
    SHARED.remove(daemon)
    if daemon.proc is not None and daemon.proc.poll() is None:
        daemon.proc.kill()
        daemon.proc.wait()


class DaemonMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        [self.daemon] = SHARED
        self.changes = 0
        self.touched: set[str] = set()
        proc = self.daemon.proc
        if proc is None or proc.poll() is not None:
            self.run(self.daemon.start())
        for job_id in self.run(all_jobs(self.daemon)):
            status, body = self.request("DELETE", f"/api/jobs/{job_id}")
            assert status == 204, body
        self.model: dict[str, dict[str, Any]] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, body, _ = self.run(self.daemon.request(method, path, **kwargs))
        return status, body

    def pending(self) -> list[str]:
        return sorted(i for i, job in self.model.items() if job["status"] == "pending")

    def teardown(self) -> None:
        self.loop.close()

    # --- changes ---------------------------------------------------------------------------

    @rule(schedule=SCHEDULES, priority=PRIORITIES, payload=PAYLOADS)
    def create(self, schedule: dict[str, Any], priority: str, payload: Any) -> None:
        body = {"task": "noop", "schedule": schedule, "priority": priority, "payload": payload}
        status, job = self.request("POST", "/api/jobs", json=body)
        assert status == 201, job
        self.changed(job["id"], job)

    @precondition(lambda self: self.pending())
    @rule(data=st.data(), priority=PRIORITIES, payload=PAYLOADS, schedule=SCHEDULES)
    def modify(
        self, data: st.DataObject, priority: str, payload: Any, schedule: dict[str, Any]
    ) -> None:
        job_id = data.draw(st.sampled_from(self.pending()))
        patch = data.draw(
            st.sampled_from([{"priority": priority}, {"payload": payload}, {"schedule": schedule}])
        )
        status, job = self.request("PATCH", f"/api/jobs/{job_id}", json=patch)
        assert status == 200, job
        self.changed(job_id, job)

    @precondition(lambda self: self.pending())
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.pending()))
        status, job = self.request("POST", f"/api/jobs/{job_id}/cancel")
        assert status == 200, job
        assert job["status"] == "cancelled"
        self.changed(job_id, job)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.model)))
        status, body = self.request("DELETE", f"/api/jobs/{job_id}")
        assert status == 204, body
        self.changed(job_id, None)

    def changed(self, job_id: str, job: dict[str, Any] | None) -> None:
        if job is None:
            del self.model[job_id]
        else:
            self.model[job_id] = job
        self.touched.add(job_id)
        self.changes += 1

    # --- restarts ----------------------------------------------------------------------------

    @precondition(lambda self: self.changes >= CHANGES_PER_RESTART)
    @rule()
    def restart_with_a_final_snapshot(self) -> None:
        assert self.run(self.daemon.stop()) == 0
        self.restart()

    @precondition(lambda self: self.changes >= CHANGES_PER_RESTART)
    @rule()
    def crash_and_restart(self) -> None:
        self.run(self.daemon.kill())
        self.restart()

    def restart(self) -> None:
        self.run(self.daemon.start())
        self.changes = 0
        jobs = self.run(all_jobs(self.daemon))
        assert jobs == self.model
        for job_id in sorted(self.touched):  # by id, too: the route a client uses
            status, job = self.request("GET", f"/api/jobs/{job_id}")
            expected = self.model.get(job_id)
            assert (status, job) == (200, expected) if expected else status == 404
        self.touched.clear()
        status, card = self.request("GET", "/api/scheduler")
        assert card["totalJobs"] == len(self.model)
        assert card["pendingJobs"] == len(self.pending())


TestAfterEveryRestartTheDaemonHoldsWhatWasAcknowledged = DaemonMachine.TestCase
TestAfterEveryRestartTheDaemonHoldsWhatWasAcknowledged.settings = settings(
    max_examples=15,
    stateful_step_count=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
