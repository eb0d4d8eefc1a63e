"""The check behind ``make test-fast``: a test that starts a subprocess without the
``integration`` (or ``browser``) marker fails, naming the command and the marker to add."""

from __future__ import annotations

import asyncio
import os
import subprocess
import textwrap

import pytest

from tests.spawning import SubprocessRefused, refusing_subprocesses


def test_subprocess_run_is_refused_and_recorded() -> None:
    with refusing_subprocesses("t::x") as started, pytest.raises(SubprocessRefused) as caught:
        subprocess.run(["true"], check=False)
    assert started == ["_execute_child(['true'])"]
    assert str(caught.value).startswith("t::x started a subprocess (_execute_child(['true']))")
    assert "@pytest.mark.integration" in str(caught.value)


async def test_an_asyncio_subprocess_is_refused() -> None:
    with refusing_subprocesses("t::x") as started, pytest.raises(SubprocessRefused):
        await asyncio.create_subprocess_exec("sleep", "30")
    assert started == ["_execute_child(('sleep', '30'))"]


def test_os_system_is_refused() -> None:
    with refusing_subprocesses("t::x") as started, pytest.raises(SubprocessRefused):
        os.system("true")
    assert started == ["system(('true',))"]


def test_after_the_block_everything_is_as_it_was() -> None:
    before = (os.system, os.fork, os.posix_spawn)
    with refusing_subprocesses("t::x"):
        assert (os.system, os.fork, os.posix_spawn) != before
    assert (os.system, os.fork, os.posix_spawn) == before


UNMARKED = """
import subprocess
import pytest

def test_runs_a_command():
    subprocess.run(["true"], check=False)

def test_swallows_the_refusal():
    try:
        subprocess.run(["true"], check=False)
    except Exception:
        pass  # as an executor does: the spawn failure becomes a run's error

def test_starts_nothing():
    assert True
"""


def test_an_unmarked_test_starting_a_subprocess_fails_even_if_it_swallows_the_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        "from tests.conftest import _subprocesses_need_a_marker, pytest_runtest_makereport\n"
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_unmarked=textwrap.dedent(UNMARKED))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:xdist")
    # The first fails where it starts the command; the second passed, and fails at teardown.
    result.assert_outcomes(passed=2, failed=1, errors=1)
    out = result.stdout.str()
    assert (
        "SubprocessRefused: test_unmarked.py::test_runs_a_command started a subprocess"
        " (_execute_child(['true'])) without a marker: mark it @pytest.mark.integration"
    ) in out
    assert (
        "test_unmarked.py::test_swallows_the_refusal started a subprocess without a marker:"
        " _execute_child(['true']); mark it @pytest.mark.integration"
    ) in out
