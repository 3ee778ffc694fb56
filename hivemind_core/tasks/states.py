"""A task's overall status and progress, derived from its subtasks' states.

``pending -> assigned -> running -> completed | failed | cancelled``. A task is
running as soon as any shard runs or is done while others wait; it fails as
soon as one shard has failed for good (after its attempts).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

PENDING, ASSIGNED, RUNNING = "pending", "assigned", "running"
COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"
STATUSES = (PENDING, ASSIGNED, RUNNING, COMPLETED, FAILED, CANCELLED)
ACTIVE = (PENDING, ASSIGNED, RUNNING)
FINAL = (COMPLETED, FAILED, CANCELLED)


def overall_status(subtask_states: Iterable[str]) -> str:
    counts = Counter(subtask_states)
    total = sum(counts.values())
    if total == 0:
        return PENDING
    if counts[FAILED]:
        return FAILED
    if counts[COMPLETED] == total:
        return COMPLETED
    if counts[CANCELLED] and not any(counts[s] for s in ACTIVE):
        return CANCELLED
    if counts[RUNNING] or counts[COMPLETED]:
        return RUNNING
    if counts[ASSIGNED]:
        return ASSIGNED
    return PENDING


def progress(subtask_states: Iterable[str]) -> float:
    """Completed subtasks / subtasks x 100 (0 when there are none)."""
    states = list(subtask_states)
    return 100.0 * states.count(COMPLETED) / len(states) if states else 0.0
