"""Fixtures shared by the whole suite, and the check that keeps ``make test-fast`` honest.

Helpers live in plain modules, never in a ``test_*.py``: ``fakes`` (FakeClock, recording
executors, systemd's notify socket, sample records), ``daemon_proc`` (the real daemon as a
subprocess), ``polling`` (waiting for real), ``spawning`` (the subprocess check below), and a
folder's own ``harness.py`` (``api``: the in-process HTTP API; ``persistence``: durability;
``observability``: a scheduler rig) or ``files.py`` (``config``). A fixture that one folder
uses lives in that folder's conftest.py.

``make test-fast`` runs the tests that start no subprocess and drive no browser: it deselects
the markers ``integration`` and ``browser``. A test that starts a subprocess must carry one of
them, and that is checked rather than trusted: in a test without one, starting a subprocess
(``subprocess``, ``asyncio.create_subprocess_*``, ``os.fork``, ``os.posix_spawn``,
``os.system``) raises, and the test fails naming what it started and the marker to add
(``spawning.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Generator, Iterator

import pytest

from tests.api.harness import Api, ApiOptions, running_api
from tests.daemon_proc import Daemons
from tests.fakes import NotifySocket, notify_socket
from tests.spawning import SLOW_MARKERS, refusing_subprocesses

pytest_plugins = ["pytester"]  # tests/test_markers.py runs pytest on small test files

_CALL_REPORT = pytest.StashKey[pytest.TestReport]()
#: The locale variables that choose the command line's language (scheduler/i18n.py).
_LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES")


def pytest_configure(config: pytest.Config) -> None:
    """English messages whatever language the developer's shell speaks: the tests expect
    English unless they ask for another (``LANG=ko_KR.UTF-8`` in a command's environment).
    Set before any test, so the processes they start inherit it too."""
    os.environ["LANG"] = "C.UTF-8"
    for name in _LOCALE_VARIABLES:
        os.environ.pop(name, None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep the report of a test's call, for the subprocess check in its teardown."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_REPORT] = report
    return report


@pytest.fixture(autouse=True)
def _subprocesses_need_a_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    if any(request.node.get_closest_marker(name) for name in SLOW_MARKERS):
        yield
        return
    with refusing_subprocesses(request.node.nodeid) as started:
        yield
    # Checked here as well: the code under test may have caught the exception (an executor
    # reports a spawn failure as the run's error), and the test may even have passed. (A test
    # that failed already says why.)
    call = request.node.stash.get(_CALL_REPORT, None)
    if started and (call is None or call.passed):
        pytest.fail(
            f"{request.node.nodeid} started a subprocess without a marker: "
            f"{', '.join(started)}; mark it @pytest.mark.integration",
            pytrace=False,
        )


# --- the in-process API ------------------------------------------------------------------------


@pytest.fixture
def api_options() -> ApiOptions:
    """How ``api`` is built (see ``running_api``); a module overrides this fixture to change it,
    as in ``def api_options() -> ApiOptions: return {"token": TOKEN}``."""
    return {}


@pytest.fixture
async def api(api_options: ApiOptions) -> AsyncIterator[Api]:
    async with running_api(**api_options) as api:
        yield api


# --- the real daemon ---------------------------------------------------------------------------


@pytest.fixture
async def daemons() -> AsyncIterator[Daemons]:
    """The daemons a test starts (``await daemons.start(DaemonProcess(...))``); each one still
    running at the end is stopped."""
    started = Daemons()
    yield started
    await started.stop_all()


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    """A socket in place of systemd's, for ``NOTIFY_SOCKET``."""
    with notify_socket() as sock:
        yield sock


# --- logging -----------------------------------------------------------------------------------


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    """Undo what ``setup_logging`` does to the root logger (its handlers and level)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
