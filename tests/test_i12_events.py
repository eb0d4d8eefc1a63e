"""Issue 12, item 4: events are frozen msgspec records, and there is one way to hear them,
by type (:meth:`Hub.subscribe`); logs, metrics and alerts use it, streams read the same hub.

What this pins: every record is a frozen Struct (a subscriber cannot change what the next one
sees), a subscription gets exactly the types it named (a subclass or a sibling is another
type), unsubscribing stops it, and :meth:`Hub.wants` says whether a producer should build a
record at all.
"""

from __future__ import annotations

import msgspec
import pytest

from scheduler.events import (
    Event,
    Hub,
    JobCompleted,
    JobFailed,
    RunProgress,
    RunStarted,
    SchedulerStatus,
    Settled,
)


def all_event_types() -> list[type[Event]]:
    found: list[type[Event]] = []
    todo: list[type[Event]] = [Event]
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return found


@pytest.mark.parametrize("kind", all_event_types(), ids=lambda kind: kind.__name__)
def test_every_event_record_is_a_frozen_struct(kind: type[Event]) -> None:
    assert issubclass(kind, msgspec.Struct)
    assert kind.__struct_config__.frozen, f"{kind.__name__} is not frozen"


def test_a_record_cannot_be_changed_by_a_subscriber() -> None:
    event = RunStarted(job_id=1, attempt=1, fire=10.0)
    with pytest.raises(AttributeError):
        event.attempt = 2  # type: ignore[misc]  # the point: frozen records refuse this


def test_a_subscriber_gets_exactly_the_types_it_named() -> None:
    hub = Hub()
    heard: list[Event] = []
    hub.subscribe([JobFailed, SchedulerStatus], heard.append)
    failed = JobFailed(job_id=1, outcome="error", attempt=1)
    status = SchedulerStatus(paused=True)
    for event in (
        RunStarted(job_id=1, attempt=1, fire=0.0),
        failed,
        JobCompleted(job_id=1, outcome="success", attempt=1),  # a sibling of JobFailed
        RunProgress(job_id=1, percent=50.0, message=None),
        status,
    ):
        hub.publish(event)
    assert heard == [failed, status]


def test_subscribing_to_a_base_type_is_not_subscribing_to_its_subclasses() -> None:
    hub = Hub()
    heard: list[Settled] = []
    hub.subscribe([Settled], heard.append)
    hub.publish(JobFailed(job_id=1, outcome="error", attempt=1))
    assert heard == []
    assert not hub.wants(JobFailed)


def test_unsubscribing_stops_the_calls_and_the_wanting() -> None:
    hub = Hub()
    heard: list[RunStarted] = []
    assert not hub.wants(RunStarted)  # nobody listens: producers build nothing
    unsubscribe = hub.subscribe([RunStarted], heard.append)
    assert hub.wants(RunStarted)
    hub.publish(RunStarted(job_id=1, attempt=1, fire=0.0))
    unsubscribe()
    hub.publish(RunStarted(job_id=2, attempt=1, fire=0.0))
    assert [event.job_id for event in heard] == [1]
    assert not hub.wants(RunStarted)


def test_two_subscribers_of_one_type_both_hear_it_in_the_order_they_subscribed() -> None:
    hub = Hub()
    heard: list[str] = []
    hub.subscribe([SchedulerStatus], lambda _event: heard.append("first"))
    hub.subscribe([SchedulerStatus], lambda _event: heard.append("second"))
    hub.publish(SchedulerStatus(paused=False))
    assert heard == ["first", "second"]
