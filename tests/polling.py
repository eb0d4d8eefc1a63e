"""Waiting for real, for what the fake clock does not drive: a subprocess, a socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def until(
    check: Callable[[], Any | Awaitable[Any]],
    what: str = "the condition",
    within: float = 10.0,
    *,
    every: float = 0.01,
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; return that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
