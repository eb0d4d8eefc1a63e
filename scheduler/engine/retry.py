"""Retry delays: pure, so the spacing is tested exactly."""

from __future__ import annotations

import random

from scheduler.model import Backoff, RetryPolicy


def delay_for(policy: RetryPolicy, retry: int, rng: random.Random) -> float:
    """Seconds to wait before retry number ``retry`` (1 for the first retry).

    Exponential: ``delay * 2**(retry-1)`` (2 s, 4 s, 8 s by default); fixed: ``delay``. The result
    is spread by ``±jitter`` (a fraction of it) so that many jobs failing together do not retry
    together, and is never above ``max_delay``.
    """
    base = policy.delay
    if policy.backoff is Backoff.EXPONENTIAL:
        base = policy.delay * 2 ** min(retry - 1, 62)
    base = min(base, policy.max_delay)
    if policy.jitter:
        base *= 1.0 + policy.jitter * (2.0 * rng.random() - 1.0)
    return max(0.0, min(base, policy.max_delay))
