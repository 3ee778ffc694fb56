"""SQLite shared by several processes, done right.

* WAL so readers never block the writer,
* a busy timeout so a writer waits for the lock instead of failing at once,
* ``BEGIN IMMEDIATE`` for write transactions: pysqlite's default deferred
  transaction takes the write lock only at the first write, so two processes
  doing read-modify-write can both read the old value and one update is lost
  (or fails with "database is locked" mid-transaction).

Two entry points: :func:`make_engine` for SQLAlchemy/SQLModel users (the
master), :func:`connect` + :func:`immediate` for plain ``sqlite3`` users (the
node pool's hot path).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

BUSY_TIMEOUT_MS = 30_000
_IMMEDIATE = "hivemind_begin_immediate"


def _apply_pragmas(dbapi_connection: sqlite3.Connection) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str, **kwargs) -> Engine:  # noqa: ANN003 - passed to create_engine
    """A SQLAlchemy engine; for SQLite URLs, with WAL, busy timeout and explicit BEGINs."""
    if not url.startswith("sqlite"):
        return create_engine(url, **kwargs)
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}, **kwargs
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        _apply_pragmas(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def write_session(engine: Engine) -> Session:
    """A session whose transactions start with ``BEGIN IMMEDIATE``.

    Use for every read-modify-write::

        with write_session(engine) as s:
            task = s.get(Task, task_id)
            task.status = "cancelled"
            s.commit()
    """
    return Session(engine.execution_options(**{_IMMEDIATE: True}), expire_on_commit=False)


def read_session(engine: Engine) -> Session:
    """A session for reads (deferred transactions, never takes the write lock first)."""
    return Session(engine, expire_on_commit=False)


def connect(path: str | Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the same pragmas, in autocommit mode.

    Wrap writes in :func:`immediate`.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    _apply_pragmas(conn)
    return conn


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")
