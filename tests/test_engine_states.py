"""The subtask state machine (no I/O)."""

from __future__ import annotations

import pytest

from hivemind_core.nodepool import states
from hivemind_core.nodepool.states import Event, InvalidTransition, apply


def test_happy_path_counts_one_attempt() -> None:
    t = apply("s", states.PENDING, Event.LEASE, 0, 3)
    assert (t.new, t.attempts) == (states.ASSIGNED, 1)
    t = apply("s", t.new, Event.START, t.attempts, 3)
    assert (t.new, t.attempts) == (states.RUNNING, 1)
    t = apply("s", t.new, Event.COMPLETE, t.attempts, 3)
    assert (t.new, t.attempts) == (states.COMPLETED, 1)


def test_expiry_requeues_until_attempts_are_used_up() -> None:
    assert apply("s", states.RUNNING, Event.EXPIRE, 1, 3).new == states.PENDING
    assert apply("s", states.ASSIGNED, Event.EXPIRE, 2, 3).new == states.PENDING
    assert apply("s", states.RUNNING, Event.EXPIRE, 3, 3).new == states.FAILED


def test_operation_failure_is_final_but_a_worker_crash_is_retried() -> None:
    assert apply("s", states.RUNNING, Event.FAIL, 1, 3).new == states.FAILED
    assert apply("s", states.RUNNING, Event.RETRY, 1, 3).new == states.PENDING
    assert apply("s", states.RUNNING, Event.RETRY, 3, 3).new == states.FAILED


def test_unstarted_release_gives_the_attempt_back() -> None:
    t = apply("s", states.ASSIGNED, Event.UNSTARTED_RELEASE, 2, 3)
    assert (t.new, t.attempts) == (states.PENDING, 1)
    with pytest.raises(InvalidTransition):
        apply("s", states.RUNNING, Event.UNSTARTED_RELEASE, 2, 3)


@pytest.mark.parametrize("terminal", sorted(states.TERMINAL))
@pytest.mark.parametrize("event", list(Event))
def test_terminal_states_never_change(terminal: str, event: Event) -> None:
    with pytest.raises(InvalidTransition):
        apply("s", terminal, event, 1, 3)


def test_transitions_are_logged_by_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="hivemind_core.nodepool.states")
    apply("sub-7", states.RUNNING, Event.EXPIRE, 1, 3)
    assert "subtask sub-7: running -> pending (expire, attempt 1/3)" in caplog.text
