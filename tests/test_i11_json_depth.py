"""Issue 11 (sibling): ``json_deeper`` reads the nesting of a mebibyte of brackets 8 brackets at
a time; its answer is that of the running sum taken one bracket at a time, which it replaced
(~55 ms of CPU on the loop for such a body)."""

from __future__ import annotations

import itertools
import operator

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.checks import json_deeper

_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_OPEN_TWO = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def one_at_a_time(raw: bytes, limit: int) -> bool:
    """The running sum of +1 per opening and -1 per closing bracket outside strings."""
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(unescaped.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
    levels = map(
        operator.sub, itertools.accumulate(brackets.translate(_OPEN_TWO)), itertools.count(1)
    )
    return max(levels, default=0) > limit


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    st.binary(max_size=0)
    | st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b'"', b"\\", b"a,"]), max_size=90).map(
        b"".join
    ),
    st.integers(0, 9),
    st.integers(0, 12),
)
def test_the_depth_is_that_of_the_running_sum_one_bracket_at_a_time(
    text: bytes, limit: int, wrap: int
) -> None:
    raw = b"[" * wrap + text + b"]" * wrap  # nesting across the 8-bracket groups
    assert json_deeper(raw, limit) == one_at_a_time(raw, limit)


def test_the_level_counts_from_the_first_bracket_to_the_last() -> None:
    for size in range(1, 20):  # every length around the groups of 8
        deep = b"[" * size + b"]" * size
        assert json_deeper(deep, size - 1)
        assert not json_deeper(deep, size)
        assert json_deeper(b"[]" * 40 + deep, size - 1)
        assert not json_deeper(b"]" * size + deep, 0)  # closing first: the level goes below 0
    assert json_deeper(b"", -1) == one_at_a_time(b"", -1)  # no bracket: level 0


def test_a_mebibyte_of_brackets() -> None:
    deep = b"[" * 500_000 + b"]" * 500_000
    flat = b"[]" * 500_000
    assert json_deeper(deep, 64)
    assert json_deeper(deep, 499_999)
    assert not json_deeper(deep, 500_000)
    assert not json_deeper(flat, 1)
    assert json_deeper(flat, 0)
    assert json_deeper(b"[" * 64 + flat + b"]" * 64, 64)
    assert not json_deeper(b"[" * 63 + flat + b"]" * 63, 64)
