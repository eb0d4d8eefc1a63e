"""``retry.delay_for``: the documented spacing of retries, as named vectors and a property.

Exponential: ``delay * 2**(retry-1)``; fixed: ``delay``; either capped at ``max_delay``, then
spread by ``±jitter`` (a fraction of it) and capped again, never below zero.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.engine.retry import delay_for
from scheduler.model import Backoff, RetryPolicy

EXP, FIXED = Backoff.EXPONENTIAL, Backoff.FIXED


class Draw(random.Random):
    """A generator whose ``random()`` is fixed: 0.0 is the low end of the jitter, 0.5 none,
    and just under 1.0 the high end."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


HIGH = 1.0 - 2**-53  # the largest value random() returns

# (backoff, delay, max_delay, jitter), retry, draw -> seconds
VECTORS = [
    pytest.param((EXP, 2.0, 600.0, 0.0), 1, 0.5, 2.0, id="exponential_first_retry_is_delay"),
    pytest.param((EXP, 2.0, 600.0, 0.0), 2, 0.5, 4.0, id="exponential_second_doubles"),
    pytest.param((EXP, 2.0, 600.0, 0.0), 3, 0.5, 8.0, id="exponential_third_doubles_again"),
    pytest.param((EXP, 2.0, 600.0, 0.0), 9, 0.5, 512.0, id="exponential_under_max_delay"),
    pytest.param((EXP, 2.0, 600.0, 0.0), 10, 0.5, 600.0, id="exponential_capped_at_max_delay"),
    pytest.param((EXP, 2.0, 600.0, 0.0), 10**6, 0.5, 600.0, id="a_huge_retry_number_is_capped"),
    pytest.param((FIXED, 5.0, 600.0, 0.0), 1, 0.5, 5.0, id="fixed_first_retry_is_delay"),
    pytest.param((FIXED, 5.0, 600.0, 0.0), 7, 0.5, 5.0, id="fixed_stays_at_delay"),
    pytest.param((FIXED, 900.0, 600.0, 0.0), 1, 0.5, 600.0, id="fixed_capped_at_max_delay"),
    pytest.param((EXP, 2.0, 600.0, 0.2), 3, 0.5, 8.0, id="jitter_drawn_at_its_middle_is_none"),
    pytest.param((EXP, 2.0, 600.0, 0.2), 3, 0.0, 6.4, id="jitter_low_end_is_minus_a_fraction"),
    pytest.param((EXP, 2.0, 600.0, 0.2), 3, HIGH, 9.6, id="jitter_high_end_is_plus_a_fraction"),
    pytest.param((EXP, 2.0, 600.0, 0.2), 10, 0.0, 480.0, id="jitter_spreads_a_capped_delay_down"),
    pytest.param((EXP, 2.0, 600.0, 0.2), 10, HIGH, 600.0, id="jitter_never_passes_max_delay"),
    pytest.param((FIXED, 10.0, 600.0, 1.5), 1, 0.0, 0.0, id="jitter_past_100_percent_stops_at_0"),
]


@pytest.mark.parametrize(("policy", "retry", "draw", "seconds"), VECTORS)
def test_delay_for_vectors(
    policy: tuple[Backoff, float, float, float], retry: int, draw: float, seconds: float
) -> None:
    backoff, delay, max_delay, jitter = policy
    rule = RetryPolicy(backoff=backoff, delay=delay, max_delay=max_delay, jitter=jitter)
    assert delay_for(rule, retry, Draw(draw)) == pytest.approx(seconds, abs=1e-9)


def test_the_default_policy_waits_2_4_8_seconds_before_jitter() -> None:
    assert [delay_for(RetryPolicy(), n, Draw(0.5)) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]


@settings(max_examples=200, deadline=None)
@given(
    backoff=st.sampled_from(Backoff),
    delay=st.floats(0.0, 3600.0),
    max_delay=st.floats(0.0, 86400.0),
    jitter=st.floats(0.0, 1.0),
    retry=st.integers(1, 200),
    seed=st.integers(0, 2**32),
)
def test_a_delay_is_within_the_jitter_of_its_base_and_never_past_max_delay(
    backoff: Backoff,
    delay: float,
    max_delay: float,
    jitter: float,
    retry: int,
    seed: int,
) -> None:
    rule = RetryPolicy(backoff=backoff, delay=delay, max_delay=max_delay, jitter=jitter)
    base = min(delay * 2 ** min(retry - 1, 62) if backoff is EXP else delay, max_delay)
    seconds = delay_for(rule, retry, random.Random(seed))
    assert 0.0 <= seconds <= max_delay
    assert base * (1 - jitter) - 1e-9 <= seconds <= base * (1 + jitter) + 1e-9
