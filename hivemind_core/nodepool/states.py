"""Subtask state machine: the only place that decides what an event does to a subtask.

``pending → assigned → running → completed | failed | cancelled``; an expired
or released lease and a retryable failure put the subtask back to ``pending``
(``attempts`` counts leases handed out, so a requeue keeps it and the next
lease adds one), until ``max_attempts`` is used up — then it fails with the
last error. Terminal states never change again (a cancelled subtask never
runs again; a late result for it is discarded).

Only a failure that may be the machine's (the worker's child crashed, its input
could not be fetched, a lost or released lease) is retried. The operation's own
error, a time-out and a memory overrun are ``FAIL``: final at once, because the
same code on the same shard would do it again.

Fail fast: a subtask that fails for good (``FAIL``, or out of attempts) fails
its task, so the store cancels the task's other unfinished subtasks with a
``CANCEL`` (error "cancelled: subtask <id> of the same task failed"), the path a
user's cancel takes: their holders are told to stop, nothing more of it starts.

Each applied transition is logged as ``subtask <id>: <from> -> <to> (<event>)``
so "why is this subtask stuck" can be answered from the node pool's log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from hivemind_core.errors import HiveMindError

log = logging.getLogger(__name__)

PENDING, ASSIGNED, RUNNING = "pending", "assigned", "running"
COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"
STATES = (PENDING, ASSIGNED, RUNNING, COMPLETED, FAILED, CANCELLED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
ACTIVE = frozenset({ASSIGNED, RUNNING})  # a lease is held


class Event(str, Enum):
    LEASE = "lease"          # a worker takes the subtask
    START = "start"          # the worker began running it
    COMPLETE = "complete"    # it finished with a result
    FAIL = "fail"            # the operation failed (not retried)
    RETRY = "retry"          # a failure that was the worker's, not the operation's
    EXPIRE = "expire"        # the lease was not renewed in time
    RELEASE = "release"      # the worker gave the lease back (shutting down)
    UNSTARTED_RELEASE = "release-unstarted"  # ... before it began: the attempt does not count
    CANCEL = "cancel"        # the task was cancelled


class InvalidTransition(HiveMindError):
    """An event that does not apply to the subtask's current state."""


@dataclass(frozen=True)
class Transition:
    old: str
    new: str
    attempts: int
    event: Event


# event -> states it applies in
_ALLOWED: dict[Event, frozenset[str]] = {
    Event.LEASE: frozenset({PENDING}),
    Event.START: frozenset({ASSIGNED}),
    Event.COMPLETE: frozenset({ASSIGNED, RUNNING}),
    Event.FAIL: frozenset({ASSIGNED, RUNNING}),
    Event.RETRY: frozenset({ASSIGNED, RUNNING}),
    Event.EXPIRE: frozenset({ASSIGNED, RUNNING}),
    Event.RELEASE: frozenset({ASSIGNED, RUNNING}),
    Event.UNSTARTED_RELEASE: frozenset({ASSIGNED}),
    Event.CANCEL: frozenset({PENDING, ASSIGNED, RUNNING}),
}


def can_apply(state: str, event: Event) -> bool:
    return state in _ALLOWED[event]


def apply(subtask_id: str, state: str, event: Event, attempts: int, max_attempts: int) -> Transition:
    """The state and attempt count after ``event``; raises :class:`InvalidTransition`.

    ``COMPLETE`` from ``assigned`` means the worker's start report and its
    result arrived together (fast subtasks): it passes through ``running``.
    """
    if state not in _ALLOWED[event]:
        raise InvalidTransition(f"subtask {subtask_id}: cannot {event.value} while {state}")
    if event is Event.LEASE:
        new, attempts = ASSIGNED, attempts + 1
    elif event is Event.START:
        new = RUNNING
    elif event is Event.COMPLETE:
        new = COMPLETED
    elif event is Event.FAIL:
        new = FAILED
    elif event in (Event.RETRY, Event.EXPIRE, Event.RELEASE):
        new = PENDING if attempts < max_attempts else FAILED
    elif event is Event.UNSTARTED_RELEASE:
        new, attempts = PENDING, max(0, attempts - 1)
    else:  # CANCEL
        new = CANCELLED
    hot = event in (Event.LEASE, Event.START, Event.COMPLETE)
    log.log(
        logging.DEBUG if hot else logging.INFO,
        "subtask %s: %s -> %s (%s, attempt %d/%d)",
        subtask_id, state, new, event.value, attempts, max_attempts,
    )
    return Transition(old=state, new=new, attempts=attempts, event=event)
