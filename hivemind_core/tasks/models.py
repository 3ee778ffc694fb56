"""Task and Subtask tables (SQLModel, in the master's database).

Times are timezone-aware UTC datetimes. A task's subtasks are
the shards of its input; ``pool_task`` names the node-pool task a subtask was
queued under — a retry queues the unfinished shards again under a new one,
because a cancellation in the node pool is durable for its task id.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(when: datetime) -> datetime:
    """``when`` as an aware UTC datetime: SQLite hands stored times back naive (they are UTC)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_owner_created", "owner", "created_at"),
        Index("ix_tasks_status_created", "status", "created_at"),
        Index("ix_tasks_owner_status_created", "owner", "status", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=32)
    owner: str = Field(index=True)
    name: str = ""
    type: str = "data_processing"
    spec: str = ""                                 # the job spec, JSON (v1)
    status: str = Field(default="pending", index=True)
    priority: int = 5
    progress: float = 0.0                          # completed subtasks / subtasks x 100
    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime | None = None
    finished_at: datetime | None = Field(default=None, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    error: str = ""
    input_name: str = ""
    input_size: int = 0                            # bytes
    input_rows: int | None = None
    result_path: str | None = None                 # result location (a file in the results dir)
    result_rows: int | None = None
    result_format: str = "csv"
    subtasks_total: int = 0
    subtasks_done: int = 0
    plan: str = ""                                 # JobPlan JSON: what the workers run, how results combine
    round: int = 0                                 # retries so far (node-pool task of this round: pool_task_id)
    cancel_pending: bool = False                   # cancelled here, node pool not told yet
    combine_claim: str | None = None               # which process is combining the results
    combine_claimed_at: float | None = None


class Subtask(SQLModel, table=True):
    __tablename__ = "subtasks"

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(foreign_key="tasks.id", index=True, ondelete="CASCADE")
    pool_id: str = Field(index=True, unique=True)  # the node pool's subtask id
    pool_task: str = ""                            # the node pool's task id it is queued under
    shard: int = 0
    status: str = "pending"
    attempts: int = 0
    node_id: str = ""
    node_name: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str = ""
    input_blob: str = ""
    result_blob: str = ""
    rows: int = 0                                  # rows in this shard
    bytes: int = 0                                 # shard size (Arrow IPC)
