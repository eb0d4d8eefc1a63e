"""sd_notify: messages, their order, the watchdog period and a wedged loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.daemon.sdnotify import Notifier, watchdog_interval, watchdog_loop


class Receiver:
    """A datagram socket standing in for systemd's notification socket."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.notify_socket = notify_socket

    def drain(self) -> list[str]:
        """Every datagram queued so far, without waiting."""
        messages = []
        while True:
            try:
                messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return messages


@contextlib.contextmanager
def _path_receiver() -> Iterator[Receiver]:
    # A short directory name: AF_UNIX paths are limited to 108 bytes.
    with tempfile.TemporaryDirectory(prefix="sdn") as directory:
        path = str(Path(directory) / "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.setblocking(False)
            yield Receiver(sock, path)


@contextlib.contextmanager
def _abstract_receiver() -> Iterator[Receiver]:
    name = f"scheduler-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        yield Receiver(sock, "@" + name)


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    factory = _path_receiver if request.param == "path" else _abstract_receiver
    with factory() as rec:
        yield rec


@pytest.fixture
def notifier(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Notifier]:
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.notify_socket)
    notifier = Notifier.from_environment()
    yield notifier
    notifier.close()


def test_it_sends_ready_status_reload_and_stopping_in_order(
    notifier: Notifier, receiver: Receiver
) -> None:
    assert notifier.enabled
    notifier.ready("3 pending, 0 running")
    notifier.status("7 pending, 1 running")
    notifier.reloading()
    notifier.ready()
    notifier.stopping()

    messages = receiver.drain()

    assert len(messages) == 5
    assert messages[0] == "READY=1\nSTATUS=3 pending, 0 running\n"
    assert messages[1] == "STATUS=7 pending, 1 running\n"
    assert messages[2].startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert messages[3:] == ["READY=1\n", "STOPPING=1\n"]


def test_reloading_carries_the_monotonic_clock_in_microseconds(
    notifier: Notifier, receiver: Receiver
) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    (message,) = receiver.drain()
    fields = dict(line.split("=", 1) for line in message.splitlines())

    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= after


def test_one_notify_call_is_one_datagram_with_upper_case_keys(
    notifier: Notifier, receiver: Receiver
) -> None:
    assert notifier.notify(ready=1, status="line one\nline two", errno=0)

    assert receiver.drain() == ["READY=1\nSTATUS=line one line two\nERRNO=0\n"]


def test_without_notify_socket_every_call_is_a_quiet_no_op(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier.from_environment()

    results = [notifier.ready(), notifier.status("x"), notifier.watchdog(), notifier.stopping()]

    assert not notifier.enabled
    assert results == [False, False, False, False]
    assert caplog.records == []


def test_a_missing_socket_never_raises_and_warns_only_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tempfile.TemporaryDirectory(prefix="sdn") as directory:
        notifier = Notifier(str(Path(directory) / "gone"))
        with caplog.at_level(logging.DEBUG, logger="scheduler.sdnotify"):
            results = [notifier.ready(), notifier.watchdog(), notifier.watchdog()]
        notifier.close()

    assert results == [False, False, False]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "cannot notify systemd" in warnings[0].getMessage()


def test_an_unsupported_socket_address_disables_notifications(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="scheduler.sdnotify"):
        notifier = Notifier("vsock:2:1234")

    assert not notifier.enabled
    assert not notifier.ready()
    assert "unsupported NOTIFY_SOCKET" in caplog.text


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "100000"}, 0.05),
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
    ],
    ids=["half", "our-pid", "short", "unset", "zero", "negative", "garbage", "other-pid"],
)
def test_the_watchdog_interval_is_half_of_watchdog_usec_for_our_pid(
    environ: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval(environ) == expected


def test_the_watchdog_pid_is_compared_with_the_given_pid() -> None:
    environ = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "4242"}

    assert watchdog_interval(environ, pid=4242) == 1.0
    assert watchdog_interval(environ, pid=4243) is None


async def test_the_watchdog_pings_from_the_loop_and_stops_while_the_loop_is_blocked(
    notifier: Notifier, receiver: Receiver
) -> None:
    async with asyncio.TaskGroup() as group:
        task = group.create_task(watchdog_loop(notifier, 0.05))
        await asyncio.sleep(0.2)
        assert len(receiver.drain()) >= 2

        # A wedged loop: nothing may ping while a synchronous call holds it.
        time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop is the point of this test
        during_block = receiver.drain()

        await asyncio.sleep(0.2)
        after_block = receiver.drain()
        task.cancel()

    assert during_block == []
    assert len(after_block) >= 2
    assert set(after_block) == {"WATCHDOG=1\n"}
