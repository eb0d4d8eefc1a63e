"""Issue 11 (sibling): a 404 for an absurd job id quotes the id cut short at its cause,
``JobNotFound``, as every value quoted back in a message is (``describe``)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.errors import SHOWN_CHARS, JobNotFound
from scheduler.service.base import WorkflowNotFound


def test_a_normal_id_is_quoted_whole() -> None:
    error = JobNotFound("01JD0000000000000000000000")
    assert error.message == "no job with id '01JD0000000000000000000000'"
    assert error.field == "id"


def test_a_five_thousand_character_id_is_quoted_cut_short_and_kept_whole() -> None:
    job_id = "x" * 5_000
    error = JobNotFound(job_id)
    assert error.message.startswith("no job with id 'xxxxx")
    assert error.message.endswith("...'")
    assert len(error.message) < 100
    assert error.job_id == job_id


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=10_000) | st.integers(0, 10_000).map("\x00é".__mul__))
def test_any_id_gives_a_short_message_that_begins_with_it(job_id: str) -> None:
    message = JobNotFound(job_id).message
    assert len(message) <= len("no job with id ") + 10 * SHOWN_CHARS + 2  # \U escapes: 10 each
    shown = job_id if len(job_id) <= SHOWN_CHARS else job_id[: SHOWN_CHARS - 3]
    assert message.startswith(f"no job with id {repr(shown)[:-1]}")


def test_an_absurd_workflow_id_is_quoted_short() -> None:
    error = WorkflowNotFound("w" * 5000)
    assert len(error.message) < 120
    assert error.job_id == "w" * 5000
    assert error.field == "workflowId"
