"""Task definitions live with the executors, and loading them (or the config) stays light:
nothing below the runtime pulls in aiohttp and the http executor."""

from __future__ import annotations

import subprocess
import sys

import pytest

import scheduler.config
import scheduler.config.load
import scheduler.executors
from scheduler.executors import tasks
from scheduler.executors.command import CommandExecutor
from scheduler.executors.factory import build_executor, task_secrets
from scheduler.executors.http import HttpExecutor


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after ``statement``."""
    program = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=30
    )
    return set(out.stdout.split())


@pytest.mark.integration
@pytest.mark.parametrize(
    "statement",
    [
        "import scheduler.config",
        "from scheduler.config import Config, TaskConfig, load_config",
        "import scheduler.executors.tasks",
        "import scheduler.executors",
    ],
)
def test_loading_the_config_or_the_task_definitions_does_not_load_aiohttp(statement: str) -> None:
    loaded = loaded_after(statement)
    assert "aiohttp" not in loaded
    assert "scheduler.executors.http" not in loaded


@pytest.mark.integration
def test_the_executors_package_loads_a_module_only_when_one_of_its_names_is_used() -> None:
    loaded = loaded_after("from scheduler.executors import CommandExecutor")
    assert "scheduler.executors.command" in loaded
    assert "scheduler.executors.http" not in loaded
    assert "aiohttp" in loaded_after("from scheduler.executors import HttpExecutor")


def test_the_config_names_the_task_records_the_executors_define() -> None:
    for name in ("TaskConfig", "TaskKind", "RateLimit"):
        assert getattr(scheduler.config, name) is getattr(tasks, name)
        assert getattr(scheduler.config.load, name) is getattr(tasks, name)


def test_the_package_names_are_the_modules_own() -> None:
    assert scheduler.executors.HttpExecutor is HttpExecutor
    assert scheduler.executors.CommandExecutor is CommandExecutor
    assert scheduler.executors.build_executor is build_executor
    assert scheduler.executors.task_secrets is task_secrets
    for name in scheduler.executors.__all__:  # each one resolves
        assert getattr(scheduler.executors, name).__name__ == name


def test_an_unknown_name_of_the_package_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = scheduler.executors.Nope


def test_a_task_is_built_from_its_definition() -> None:
    task = tasks.TaskConfig(kind=tasks.TaskKind.COMMAND, argv=("true",), env={"API_KEY": "k3y-k3y"})
    executor = build_executor("cmd", task, session=lambda: pytest.fail("no session"), env_base={})
    assert isinstance(executor, CommandExecutor)
    assert task_secrets({"cmd": task}, {}) == frozenset({"k3y-k3y"})
