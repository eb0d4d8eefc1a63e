"""Fixtures of the executor tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from scheduler.executors import make_session


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The http executor's client session, as the daemon makes it."""
    client = make_session()
    yield client
    await client.close()
