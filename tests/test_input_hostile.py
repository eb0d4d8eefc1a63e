"""Input checking costs the same whatever a client sends (issue 11: 60,000 unknown keys froze
the loop for 4.4 s, a 500 KB zone name cost 208 ms): suggestions are made for a few keys only,
every string is bounded before a parser or a fuzzy match sees it, and no message quotes a huge
value back."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler import jobspec
from scheduler.api.inputs import decode_body
from scheduler.checks import MAX_UNKNOWN_REPORTED, json_deeper, nested_deeper
from scheduler.config import load_config
from scheduler.errors import ConfigError, InvalidInput
from scheduler.jobspec import JobDefaults, parse_job_input

DEFAULTS = JobDefaults()
HUGE = "A" * 500_000
#: The longest message any rejection may have: enough to name the field and what was expected.
MAX_MESSAGE = 400


@pytest.fixture
def fuzzy_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every fuzzy match made, by the word it was made for (jobspec's and the zones')."""
    calls: list[str] = []
    real = difflib.get_close_matches

    def counting(word: str, *args: Any, **kwargs: Any) -> list[str]:
        calls.append(word)
        return real(word, *args, **kwargs)

    # checks and triggers.zones call ``difflib.get_close_matches`` through the module.
    monkeypatch.setattr(difflib, "get_close_matches", counting)
    return calls


def refuse(raw: object, style: jobspec.Style = "camel") -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_job_input(raw, defaults=DEFAULTS, style=style, tasks=["work"])  # type: ignore[arg-type]
    return caught.value


def cpu_seconds(action: Callable[[], object]) -> float:
    """CPU time of ``action`` in this process (other processes on the machine do not count)."""
    start = time.process_time()
    action()
    return time.process_time() - start


def test_sixty_thousand_unknown_keys_are_refused_in_bounded_work(fuzzy_calls: list[str]) -> None:
    keys = {f"{i:x}": 1 for i in range(60_000)}
    raw = msgspec.json.encode({"task": "work", **keys})
    assert len(raw) < 1024 * 1024  # fits the API's body limit, so a client can send it

    def server_side() -> None:
        with pytest.raises(InvalidInput) as caught:
            parse_job_input(decode_body(raw), defaults=DEFAULTS, style="camel", tasks=["work"])
        assert caught.value.field == "0"

    assert cpu_seconds(server_side) < 0.05
    assert len(fuzzy_calls) == MAX_UNKNOWN_REPORTED


def test_all_problems_of_a_job_stay_few_with_one_line_counting_the_rest() -> None:
    spec, problems = jobspec.validate_job_input(
        {f"k{i}": 1 for i in range(1000)}, defaults=DEFAULTS, style="camel"
    )
    assert spec is None
    assert len(problems) == MAX_UNKNOWN_REPORTED + 1
    assert (
        problems[-1].message
        == f"body: {1000 - MAX_UNKNOWN_REPORTED} more unknown keys (not listed)"
    )


@pytest.mark.parametrize("table", ["retry", "misfire"])
def test_a_policy_table_of_many_unknown_keys_is_bounded_too(
    fuzzy_calls: list[str], table: str
) -> None:
    error = refuse({"task": "work", table: {f"{i:x}": 1 for i in range(60_000)}})
    assert error.field == f"{table}.0"
    assert len(fuzzy_calls) <= MAX_UNKNOWN_REPORTED


def test_a_huge_key_gets_no_fuzzy_match_and_is_cut_where_it_is_named(
    fuzzy_calls: list[str],
) -> None:
    error = refuse({"task": "work", HUGE: 1})
    assert fuzzy_calls == []
    assert error.field == "A" * 61 + "..."
    assert len(error.message) < MAX_MESSAGE


def test_a_near_miss_still_gets_its_suggestion() -> None:
    assert "did you mean 'workflowId'" in refuse({"task": "work", "workflowID": "x"}).message
    assert "did you mean 'timezone'" in refuse({"task": "work", "timezone_": "x"}).message


def test_a_huge_zone_name_costs_no_fuzzy_match(fuzzy_calls: list[str]) -> None:
    def check() -> None:
        error = refuse({"task": "work", "timezone": HUGE})
        assert error.field == "timezone"
        assert len(error.message) < MAX_MESSAGE

    assert cpu_seconds(check) < 0.02
    assert fuzzy_calls == []
    assert "did you mean 'Asia/Seoul'" in refuse({"task": "work", "timezone": "Asia/Seol"}).message


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ({"timezone": HUGE}, "schedule.timezone"),
        ({"cron": HUGE}, "schedule.cron"),
        ({"cron": "1," * 250_000 + "1 * * * *"}, "schedule.cron"),
        ({"rrule": "FREQ=DAILY;BYSETPOS=" + "1," * 100_000 + "1"}, "schedule.rrule"),
        ({"at": HUGE}, "schedule.at"),
        ({"every": "1h", "start": HUGE}, "schedule.start"),
        ({"delay": "1s" * 250_000}, "schedule.delay"),
        ({"every": "1s" * 250_000}, "schedule.every"),
        ({"repeat": {"freq": "weekly", "weekdays": ["mon"] * 100_000}}, "schedule.repeat.weekdays"),
        ({"repeat": {"freq": "monthly", "monthDays": [1] * 100_000}}, "schedule.repeat.monthDays"),
        ({"repeat": {"freq": "daily", "time": HUGE}}, "schedule.repeat.time"),
        ({"repeat": {"freq": "daily", "until": HUGE}}, "schedule.repeat.until"),
        ({"at": "2030-01-01T00:00", "dst": {"gap": HUGE}}, "schedule.dst.gap"),
        ({HUGE: 1}, "schedule." + "A" * 61 + "..."),
    ],
)
def test_a_huge_schedule_value_is_refused_at_once_with_a_short_message(
    schedule: dict[str, Any], field: str
) -> None:
    def check() -> None:
        error = refuse({"task": "work", "schedule": schedule})
        assert error.field == field
        assert len(error.message) < MAX_MESSAGE

    assert cpu_seconds(check) < 0.02


@pytest.mark.parametrize(
    ("job", "field"),
    [({"task": HUGE}, "task"), ({"task": "work", "priority": HUGE}, "priority")],
)
def test_a_huge_value_is_not_quoted_back_whole(job: dict[str, Any], field: str) -> None:
    error = refuse(job)
    assert error.field == field
    assert len(error.message) < MAX_MESSAGE


def test_a_config_file_with_many_unknown_keys_is_bounded_too(
    tmp_path: Path, fuzzy_calls: list[str]
) -> None:
    lines = ["[scheduler]", *(f"k{i} = 1" for i in range(5000))]
    lines += [
        "[tasks.t]",
        'kind = "command"',
        'argv = ["true"]',
        *(f"x{i} = 1" for i in range(5000)),
    ]
    path = tmp_path / "cfg.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert len(problems) == 2 * (MAX_UNKNOWN_REPORTED + 1)
    assert problems[MAX_UNKNOWN_REPORTED].endswith("scheduler: 4995 more unknown keys (not listed)")
    assert problems[-1].endswith("tasks.t: 4995 more unknown keys (not listed)")
    assert len(fuzzy_calls) == 2 * MAX_UNKNOWN_REPORTED


def test_config_nested_too_deep_for_the_toml_reader_is_a_problem_not_a_crash(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cfg.toml"
    path.write_text("[[jobs]]\npayload = " + "[" * 2000 + "]" * 2000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: expected arrays and tables nested a few levels deep, got too many"
    ]


# --- properties ----------------------------------------------------------------------------

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=200),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=80), inner, max_size=4)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(["task", "schedule", "timezone", "retry", "misfire", "payload"]) | st.text(
    max_size=300
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=8), st.sampled_from(["camel", "snake"]))
def test_any_job_input_is_accepted_or_refused_with_a_short_message(
    raw: dict[str, Any], style: jobspec.Style
) -> None:
    try:
        parse_job_input(raw, defaults=DEFAULTS, style=style, tasks=["work"])
    except InvalidInput as error:
        problem: InvalidInput | None = error
    else:
        problem = None
    if problem is not None:
        assert problem.field
        assert len(problem.message) < 1000, problem.message


_nested = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\a', max_size=4), inner, max_size=3)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(_nested, st.integers(min_value=0, max_value=8))
def test_the_nesting_read_from_json_text_is_that_of_the_value(value: Any, limit: int) -> None:
    # Strings full of brackets, quotes and backslashes must not count.
    assert json_deeper(msgspec.json.encode(value), limit) == nested_deeper(value, limit)


@pytest.mark.parametrize(
    "payload",
    [
        b",".join([b"[]"] * 300_000),
        b",".join([b"[" * 60 + b"]" * 60] * 7_000),
        b",".join([b'"[[[[\\"[[["'] * 80_000),
    ],
)
def test_a_mebibyte_of_brackets_costs_little_beside_decoding_it(payload: bytes) -> None:
    raw = b'{"task": "work", "payload": [' + payload + b"]}"
    assert len(raw) < 1024 * 1024
    decode_only = cpu_seconds(lambda: msgspec.json.decode(raw))
    checked = cpu_seconds(
        lambda: parse_job_input(decode_body(raw), defaults=DEFAULTS, style="camel", tasks=["work"])
    )
    assert checked < 3 * decode_only + 0.1
