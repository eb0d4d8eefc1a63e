"""The daemon's collector settings once it runs (issue 14): no full-collection stall with a
big state. In process: the real Daemon recovers a real state directory; no port is bound."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.config.load import load_config
from scheduler.daemon.process import COLLECTOR_THRESHOLDS, Daemon


@pytest.fixture
def collector() -> Iterator[None]:
    """Give the test process its collector back as it was."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def make_daemon(tmp_path: Path) -> Daemon:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[persistence]\ndir = "{tmp_path / "var"}"\nfsync = "never"\n\n'
        '[tasks.noop]\nkind = "command"\nargv = ["true"]\n'
    )
    return Daemon(load_config(str(config)), environ={})


async def test_recovered_state_is_frozen_and_young_collections_are_rarer(
    tmp_path: Path, collector: None
) -> None:
    daemon = make_daemon(tmp_path)
    assert gc.get_freeze_count() == 0
    async with asyncio.TaskGroup() as group:
        await daemon._recover(group)
    try:
        assert daemon.state.loaded
        assert daemon.sched.running  # the engine runs before the state is reported loaded
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == COLLECTOR_THRESHOLDS
        assert COLLECTOR_THRESHOLDS[0] > 700  # rarer than the interpreter's default
    finally:
        await daemon.sched.stop()


async def test_a_failed_recovery_leaves_the_collector_alone(
    tmp_path: Path, collector: None
) -> None:
    daemon = make_daemon(tmp_path)
    state = tmp_path / "var"
    state.mkdir(mode=0o700)
    (state / "snapshot-00000000000000000001.snap").write_bytes(b"not a snapshot")
    thresholds = gc.get_threshold()
    with pytest.raises(ExceptionGroup):
        async with asyncio.TaskGroup() as group:
            await daemon._recover(group)
    assert not daemon.state.loaded
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds
