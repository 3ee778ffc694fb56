"""The node pool's durable state in one SQLite file.

Tables: ``nodes`` (registry + latest heartbeat), ``subtasks`` (the queue and
every subtask's state), ``leases`` (who holds what until when, and how each
lease ended), ``cancellations`` (task ids that must never run again: cancelled,
or failed — a subtask that fails for good stops the rest of its task),
``metrics`` (node history, downsampled as it ages) and ``client_tokens``.

One connection per process, guarded by a lock: the pool is a single process,
and batching (many subtasks per statement) matters more than concurrency.
Every write runs in ``BEGIN IMMEDIATE`` (:func:`hivemind_core.sqlite.immediate`)
with ``synchronous=NORMAL``: a committed change survives ``kill -9`` of the pool.
State changes go through :mod:`hivemind_core.nodepool.states`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hivemind_core.errors import HiveMindError, NotFoundError, PermissionDeniedError, ValidationError
from hivemind_core.nodepool import identity, states
from hivemind_core.nodepool.specs import SubtaskSpec
from hivemind_core.nodepool.states import Event
from hivemind_core.sqlite import connect, immediate

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    cores INTEGER NOT NULL DEFAULT 1,
    memory_mb INTEGER NOT NULL DEFAULT 0,
    gpu TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    version TEXT NOT NULL DEFAULT '',
    slots INTEGER NOT NULL DEFAULT 1,
    token_hash TEXT NOT NULL UNIQUE,
    registered_at REAL NOT NULL,
    last_heartbeat REAL NOT NULL,
    running INTEGER NOT NULL DEFAULT 0,
    cpu_percent REAL NOT NULL DEFAULT 0,
    memory_percent REAL NOT NULL DEFAULT 0,
    disk_percent REAL NOT NULL DEFAULT 0,
    net_in_bps REAL NOT NULL DEFAULT 0,
    net_out_bps REAL NOT NULL DEFAULT 0,
    peer_host TEXT NOT NULL DEFAULT '',
    host_id TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS subtasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    subtask_id TEXT NOT NULL UNIQUE,
    task_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    params BLOB NOT NULL,
    input_blob TEXT NOT NULL DEFAULT '',
    priority INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    cores REAL NOT NULL,
    memory_mb INTEGER NOT NULL,
    timeout_s REAL NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_id TEXT,
    node_id TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT NOT NULL DEFAULT '',
    result_blob TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS subtasks_queue ON subtasks (priority DESC, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS subtasks_task ON subtasks (task_id);
CREATE TABLE IF NOT EXISTS leases (
    lease_id TEXT PRIMARY KEY,
    subtask_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    leased_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    ended_at REAL,
    outcome TEXT
);
CREATE INDEX IF NOT EXISTS leases_open ON leases (expires_at) WHERE ended_at IS NULL;
CREATE INDEX IF NOT EXISTS leases_subtask ON leases (subtask_id);
CREATE TABLE IF NOT EXISTS cancellations (
    task_id TEXT PRIMARY KEY,
    cancelled_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    node_id TEXT NOT NULL,
    ts REAL NOT NULL,
    resolution INTEGER NOT NULL DEFAULT 0,
    cpu_percent REAL NOT NULL,
    memory_percent REAL NOT NULL,
    disk_percent REAL NOT NULL,
    net_in_bps REAL NOT NULL,
    net_out_bps REAL NOT NULL,
    running REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_node_ts ON metrics (node_id, ts);
CREATE TABLE IF NOT EXISTS client_tokens (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
"""

# columns added after the first release: (table, column, definition), added to older files at open
MIGRATIONS = (("nodes", "peer_host", "TEXT NOT NULL DEFAULT ''"), ("nodes", "host_id", "TEXT NOT NULL DEFAULT ''"))

METRIC_FIELDS = ("cpu_percent", "memory_percent", "disk_percent", "net_in_bps", "net_out_bps", "running")
_SQL_CHUNK = 500  # ids per "IN (...)" (SQLite's variable limit is far above)


class NoNodeCanRunError(ValidationError):
    """A subtask needs more cores or memory than any registered node has."""


class LeaseOwnershipError(PermissionDeniedError):
    """A worker tried to renew, complete or release another worker's lease."""


class PoolShuttingDown(HiveMindError):
    """The store was closed (the server is stopping)."""


class UnknownNodeError(HiveMindError):
    """A node id the pool does not know (e.g. its data dir was replaced)."""


@dataclass(frozen=True)
class RetentionPolicy:
    """Node metrics: raw points for ``raw_s``, then one point per ``mid_bucket_s``
    until ``mid_s``, then one per ``old_bucket_s`` until ``keep_s``, then gone."""

    raw_s: float = 3600.0
    mid_bucket_s: int = 60
    mid_s: float = 24 * 3600.0
    old_bucket_s: int = 600
    keep_s: float = 30 * 24 * 3600.0


@dataclass
class Outcome:
    lease_id: str
    ok: bool
    result_blob: str = ""
    error: str = ""
    retryable: bool = False
    started_at: float = 0.0
    finished_at: float = 0.0


@dataclass
class NodeRecord:
    node_id: str
    name: str
    address: str = ""
    cores: int = 1
    memory_mb: int = 0
    gpu: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    version: str = ""
    slots: int = 1
    host_id: str = ""      # the machine it runs on ("" = unknown)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _chunks(items: Sequence[Any], size: int = _SQL_CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class Store:
    def __init__(self, path: Path, retention: RetentionPolicy | None = None) -> None:
        self.path = Path(path)
        self.retention = retention or RetentionPolicy()
        self._conn: sqlite3.Connection | None = connect(self.path)
        self._lock = threading.RLock()
        self.work_available = threading.Condition(threading.Lock())
        self._work_version = 0
        with self._lock:
            self._db.executescript(SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        """Add the columns a node pool file from an older version lacks."""
        for table, column, definition in MIGRATIONS:
            have = {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                with immediate(self._db) as c:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                log.info("node pool database: added %s.%s", table, column)

    @property
    def _db(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise PoolShuttingDown("the node pool is shutting down; retry shortly")
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self._notify_work()

    # ------------------------------------------------------------ wake-ups

    def _notify_work(self) -> None:
        with self.work_available:
            self._work_version += 1
            self.work_available.notify_all()

    def wait_for_work(self, seen_version: int, timeout: float) -> int:
        """Block until work may have arrived after ``seen_version`` (or ``timeout``)."""
        with self.work_available:
            if self._work_version == seen_version:
                self.work_available.wait(timeout)
            return self._work_version

    @property
    def work_version(self) -> int:
        with self.work_available:
            return self._work_version

    # ------------------------------------------------------------ nodes

    def register_node(self, node: NodeRecord, token: str, now: float, peer_host: str = "") -> None:
        """Insert a node, or update the one with this id; ``token`` becomes its node token."""
        with self._lock, immediate(self._db) as c:
            self._upsert_node(c, node, token, now, peer_host, reset_running=False)

    @staticmethod
    def _upsert_node(c: Any, node: NodeRecord, token: str, now: float, peer_host: str,
                     reset_running: bool) -> None:
        c.execute(
            """INSERT INTO nodes (node_id, name, address, cores, memory_mb, gpu, labels, version,
                                  slots, token_hash, registered_at, last_heartbeat, peer_host, host_id)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT(node_id) DO UPDATE SET name=excluded.name, address=excluded.address,
                 cores=excluded.cores, memory_mb=excluded.memory_mb, gpu=excluded.gpu,
                 labels=excluded.labels, version=excluded.version, slots=excluded.slots,
                 token_hash=excluded.token_hash, last_heartbeat=excluded.last_heartbeat,
                 peer_host=excluded.peer_host, host_id=excluded.host_id,
                 running=CASE WHEN ? THEN 0 ELSE running END""",
            (node.node_id, node.name, node.address, node.cores, node.memory_mb, node.gpu,
             json.dumps(node.labels, sort_keys=True), node.version, node.slots,
             hash_token(token), now, now, peer_host, node.host_id, reset_running),
        )

    def register(self, node: NodeRecord, claim: identity.Claim, now: float, offline_after_s: float,
                 new_token: str) -> tuple[identity.Decision, str]:
        """Register a worker under the identity rules of :mod:`~hivemind_core.nodepool.identity`
        (one transaction); returns the decision and the node token it must use from now on.
        ``node.node_id`` is the id a *new* node gets."""
        with self._lock, immediate(self._db) as c:
            row = None
            if claim.node_id and claim.node_token:
                row = c.execute("SELECT token_hash FROM nodes WHERE node_id=?", (claim.node_id,)).fetchone()
            valid = row is not None and hmac.compare_digest(row["token_hash"], hash_token(claim.node_token))
            same = []
            if not valid and claim.peer_host:
                same = [dict(r) for r in c.execute(
                    "SELECT node_id, last_heartbeat FROM nodes WHERE name=? AND peer_host=?",
                    (claim.name, claim.peer_host))]
            decision = identity.decide(claim, valid, same, now, offline_after_s, node.node_id)
            token = new_token if decision.new_token else claim.node_token
            node = replace(node, node_id=decision.node_id)
            self._upsert_node(c, node, token, now, claim.peer_host, reset_running=decision.void_leases)
            voided = 0
            if decision.void_leases:
                why = ("the worker restarted" if decision.how == identity.RESUMED
                       else "a new worker process took the node over")
                voided = self._expire(c, self._open_lease_rows(c, "l.node_id=?", (decision.node_id,)), now,
                                      f"lease lost: node {claim.name} stopped ({why}) while holding it")
        log.info("node %s (%s) registered (%s) from %s: %d cores, %d MB, %d slots%s",
                 node.node_id, node.name, decision.how, claim.peer_host or "?", node.cores, node.memory_mb,
                 node.slots, f"; {voided} leases it held are requeued" if voided else "")
        if voided:
            self._notify_work()
        return decision, token

    def node_token_hashes(self) -> dict[str, tuple[str, str]]:
        """token hash -> (node_id, name), for the auth cache."""
        with self._lock:
            rows = self._db.execute("SELECT node_id, name, token_hash FROM nodes").fetchall()
        return {r["token_hash"]: (r["node_id"], r["name"]) for r in rows}

    def heartbeat(self, node_id: str, metrics: dict[str, float], now: float) -> None:
        values = [float(metrics.get(k, 0.0)) for k in METRIC_FIELDS]
        with self._lock, immediate(self._db) as c:
            cur = c.execute(
                f"""UPDATE nodes SET last_heartbeat=?, {", ".join(f"{k}=?" for k in METRIC_FIELDS)}
                    WHERE node_id=?""",
                (now, *values, node_id),
            )
            if cur.rowcount == 0:
                raise UnknownNodeError(f"node {node_id} is not registered with this node pool; register again")
            c.execute(
                f"INSERT INTO metrics (node_id, ts, resolution, {', '.join(METRIC_FIELDS)}) "
                f"VALUES (?,?,0,{_marks(len(METRIC_FIELDS))})",
                (node_id, float(metrics.get("timestamp") or now), *values),
            )

    def list_nodes(self) -> list[dict[str, Any]]:
        """Every node, with ``running`` as last reported and ``running_leases``: the subtasks
        the pool itself counts as running on the node (open leases, started)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM nodes ORDER BY name, node_id").fetchall()
            held = dict(self._db.execute(
                """SELECT l.node_id, count(*) FROM leases l JOIN subtasks s ON s.subtask_id = l.subtask_id
                   WHERE l.ended_at IS NULL AND l.expires_at > -1 AND s.lease_id = l.lease_id
                     AND s.state = 'running' GROUP BY l.node_id""").fetchall())
        nodes = []
        for r in rows:
            node = dict(r)
            node.pop("token_hash")
            node["labels"] = json.loads(node["labels"] or "{}")
            node["running_leases"] = held.get(node["node_id"], 0)
            nodes.append(node)
        return nodes

    def prune_nodes(self, now: float, retention_s: float) -> list[tuple[str, str]]:
        """Forget nodes silent for longer than ``retention_s`` that hold no open lease, with
        their metrics history (it is only reachable by node id); returns their (id, name).
        Subtasks they ran keep the node id; the pool no longer knows its name."""
        if retention_s <= 0:
            return []
        with self._lock:
            gone = [(r[0], r[1]) for r in self._db.execute(
                """SELECT node_id, name FROM nodes WHERE last_heartbeat < ? AND NOT EXISTS (
                       SELECT 1 FROM leases l WHERE l.node_id = nodes.node_id AND l.ended_at IS NULL
                       AND l.expires_at > -1)""", (now - retention_s,)).fetchall()]
            if not gone:
                return []
            with immediate(self._db) as c:
                for chunk in _chunks([node_id for node_id, _ in gone]):
                    marks = _marks(len(chunk))
                    c.execute(f"DELETE FROM metrics WHERE node_id IN ({marks})", chunk)
                    c.execute(f"DELETE FROM nodes WHERE node_id IN ({marks}) AND last_heartbeat < ?",
                              (*chunk, now - retention_s))
        log.info("forgot %d nodes offline for more than %.0f s: %s", len(gone), retention_s,
                 ", ".join(f"{name} ({node_id})" for node_id, name in gone[:10]) + (" ..." if len(gone) > 10 else ""))
        return gone

    def node_history(self, node_id: str, since: float, until: float) -> list[dict[str, float]]:
        with self._lock:
            known = self._db.execute("SELECT 1 FROM nodes WHERE node_id=?", (node_id,)).fetchone()
            if not known:
                raise NotFoundError(f"node {node_id} is not known to the node pool")
            rows = self._db.execute(
                f"SELECT ts, {', '.join(METRIC_FIELDS)} FROM metrics "
                "WHERE node_id=? AND ts>=? AND ts<=? ORDER BY ts",
                (node_id, since, until),
            ).fetchall()
        return [dict(r) for r in rows]

    def compact_metrics(self, now: float) -> int:
        """Downsample aged metric points and drop expired ones; returns rows removed."""
        p = self.retention
        removed = 0
        cols = ", ".join(METRIC_FIELDS)
        avgs = ", ".join(f"avg({k})" for k in METRIC_FIELDS)
        with self._lock, immediate(self._db) as c:
            for src, bucket, age in ((0, p.mid_bucket_s, p.raw_s), (p.mid_bucket_s, p.old_bucket_s, p.mid_s)):
                # align to a bucket edge so no bucket is ever split across two passes
                cutoff = int((now - age) // bucket) * bucket
                c.execute(
                    f"""INSERT INTO metrics (node_id, ts, resolution, {cols})
                        SELECT node_id, CAST(ts / ? AS INTEGER) * ? + ? / 2.0, ?, {avgs}
                        FROM metrics WHERE resolution=? AND ts<? GROUP BY node_id, CAST(ts / ? AS INTEGER)""",
                    (bucket, bucket, bucket, bucket, src, cutoff, bucket),
                )
                removed += c.execute("DELETE FROM metrics WHERE resolution=? AND ts<?", (src, cutoff)).rowcount
            removed += c.execute("DELETE FROM metrics WHERE ts<?", (now - p.keep_s,)).rowcount
        return removed

    # ------------------------------------------------------------ client tokens

    def create_client_token(self, name: str, token: str, now: float) -> None:
        with self._lock, immediate(self._db) as c:
            c.execute(
                "INSERT INTO client_tokens (name, token_hash, created_at) VALUES (?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET token_hash=excluded.token_hash, created_at=excluded.created_at",
                (name, hash_token(token), now),
            )

    def revoke_client_token(self, name: str) -> bool:
        with self._lock, immediate(self._db) as c:
            return c.execute("DELETE FROM client_tokens WHERE name=?", (name,)).rowcount > 0

    def client_tokens(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT name, token_hash, created_at FROM client_tokens ORDER BY name")
            return [dict(r) for r in rows.fetchall()]

    # ------------------------------------------------------------ submit

    def _check_resources(self, specs: Sequence[SubtaskSpec]) -> None:
        nodes = self._db.execute("SELECT name, cores, memory_mb FROM nodes").fetchall()
        if not nodes:
            return  # no worker has joined yet: nothing proves the needs impossible
        for spec in specs:
            if any(spec.cores <= n["cores"] and (spec.memory_mb <= n["memory_mb"]) for n in nodes):
                continue
            biggest = max(nodes, key=lambda n: (n["cores"], n["memory_mb"]))
            raise NoNodeCanRunError(
                f"subtask {spec.subtask_id} needs {spec.cores:g} cores and {spec.memory_mb} MB of memory, "
                f"but no node in the pool has that much (the largest, {biggest['name']}, has "
                f"{biggest['cores']} cores and {biggest['memory_mb']} MB). Lower the needs or add a "
                "bigger worker.",
                field="resources",
            )

    @staticmethod
    def _validate(spec: SubtaskSpec) -> None:
        if not spec.subtask_id or not spec.task_id:
            raise ValidationError("every subtask needs a subtask_id and a task_id", field="subtask_id")
        if not spec.operation:
            raise ValidationError(f"subtask {spec.subtask_id} names no operation", field="operation")
        if not 0 <= spec.priority <= 9:
            raise ValidationError(f"priority must be 0-9, got {spec.priority}", field="priority")
        if spec.max_attempts < 1:
            raise ValidationError(f"max_attempts must be at least 1, got {spec.max_attempts}",
                                  field="max_attempts")
        if spec.cores < 0 or spec.memory_mb < 0 or spec.timeout_s <= 0:
            raise ValidationError(
                f"subtask {spec.subtask_id}: cores and memory_mb must not be negative and timeout_s "
                "must be positive", field="resources")

    def submit(self, specs: Sequence[SubtaskSpec], now: float) -> tuple[int, int]:
        """Queue ``specs`` atomically; returns (created, already existing).

        Subtasks of a cancelled task are recorded as cancelled and never run.
        """
        for spec in specs:
            self._validate(spec)
        with self._lock, immediate(self._db) as c:
            self._check_resources(specs)
            task_ids = sorted({s.task_id for s in specs})
            cancelled: set[str] = set()
            for chunk in _chunks(task_ids):
                rows = c.execute(f"SELECT task_id FROM cancellations WHERE task_id IN ({_marks(len(chunk))})", chunk)
                cancelled.update(r[0] for r in rows)
            cur = c.executemany(
                """INSERT INTO subtasks (subtask_id, task_id, operation, params, input_blob, priority,
                       max_attempts, cores, memory_mb, timeout_s, state, created_at, finished_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(subtask_id) DO NOTHING""",
                [
                    (s.subtask_id, s.task_id, s.operation, bytes(s.params), s.input_blob, s.priority,
                     s.max_attempts, s.cores, s.memory_mb, s.timeout_s,
                     states.CANCELLED if s.task_id in cancelled else states.PENDING, now,
                     now if s.task_id in cancelled else None)
                    for s in specs
                ],
            )
            created = cur.rowcount
        if created:
            log.info("queued %d subtasks (%d already known) for %s", created, len(specs) - created,
                     ", ".join(task_ids[:5]) + (" ..." if len(task_ids) > 5 else ""))
            self._notify_work()
        return created, len(specs) - created

    # ------------------------------------------------------------ leases

    def lease(self, node_id: str, max_count: int, now: float, ttl: float) -> list[dict[str, Any]]:
        """Hand up to ``max_count`` pending subtasks the node can hold to ``node_id``:
        highest priority first, submission order within a priority."""
        with self._lock, immediate(self._db) as c:
            node = c.execute("SELECT cores, memory_mb FROM nodes WHERE node_id=?", (node_id,)).fetchone()
            if node is None:
                raise UnknownNodeError(f"node {node_id} is not registered with this node pool; register again")
            mem_cap = node["memory_mb"] if node["memory_mb"] > 0 else 2**62
            rows = c.execute(
                """SELECT subtask_id, task_id, operation, params, input_blob, timeout_s, memory_mb,
                          attempts, max_attempts, state
                   FROM subtasks WHERE state='pending' AND cores<=? AND memory_mb<=?
                   ORDER BY priority DESC, seq LIMIT ?""",
                (node["cores"], mem_cap, max_count),
            ).fetchall()
            leases, sub_updates, lease_rows = [], [], []
            expires = now + ttl
            for r in rows:
                t = states.apply(r["subtask_id"], r["state"], Event.LEASE, r["attempts"], r["max_attempts"])
                lease_id = os.urandom(12).hex()
                sub_updates.append((t.new, t.attempts, lease_id, node_id, r["subtask_id"]))
                lease_rows.append((lease_id, r["subtask_id"], node_id, t.attempts, now, expires))
                leases.append({**dict(r), "lease_id": lease_id, "attempt": t.attempts, "expires_at": expires})
            if rows:
                c.executemany(
                    "UPDATE subtasks SET state=?, attempts=?, lease_id=?, node_id=? WHERE subtask_id=?",
                    sub_updates)
                c.executemany(
                    "INSERT INTO leases (lease_id, subtask_id, node_id, attempt, leased_at, expires_at) "
                    "VALUES (?,?,?,?,?,?)", lease_rows)
        return leases

    def _lease_rows(self, lease_ids: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for chunk in _chunks(list(lease_ids)):
            rows = self._db.execute(
                f"""SELECT l.lease_id, l.node_id, l.ended_at, s.subtask_id, s.task_id, s.state, s.attempts,
                           s.max_attempts, s.lease_id AS current_lease, s.error, s.started_at
                    FROM leases l JOIN subtasks s ON s.subtask_id = l.subtask_id
                    WHERE l.lease_id IN ({_marks(len(chunk))})""", chunk).fetchall()
            found.update((r["lease_id"], r) for r in rows)
        return found

    @staticmethod
    def _check_owner(rows: dict[str, Any], node_id: str) -> None:
        foreign = [lid for lid, r in rows.items() if r["node_id"] != node_id]
        if foreign:
            raise LeaseOwnershipError(
                f"lease {foreign[0]} belongs to another node; a worker may only renew, complete or "
                "release its own leases")

    @staticmethod
    def _is_live(row: Any) -> bool:
        return row["ended_at"] is None and row["current_lease"] == row["lease_id"] and row["state"] in states.ACTIVE

    def renew(self, node_id: str, lease_ids: Sequence[str], started: Sequence[tuple[str, float]],
              now: float, ttl: float) -> list[str]:
        """Extend the node's live leases, record starts; returns leases the worker must stop
        (cancelled, expired and handed elsewhere, or unknown)."""
        ids = list(dict.fromkeys([*lease_ids, *(lid for lid, _ in started)]))
        with self._lock, immediate(self._db) as c:
            rows = self._lease_rows(ids)
            self._check_owner(rows, node_id)
            live = [lid for lid in ids if lid in rows and self._is_live(rows[lid])]
            stop = [lid for lid in lease_ids if lid not in live]
            c.executemany("UPDATE leases SET expires_at=? WHERE lease_id=?", [(now + ttl, lid) for lid in live])
            starts = []
            for lid, at in started:
                r = rows.get(lid)
                if r is not None and lid in live and r["state"] == states.ASSIGNED:
                    t = states.apply(r["subtask_id"], r["state"], Event.START, r["attempts"], r["max_attempts"])
                    starts.append((t.new, at or now, r["subtask_id"]))
            c.executemany("UPDATE subtasks SET state=?, started_at=? WHERE subtask_id=?", starts)
        return stop

    def complete(self, node_id: str, outcomes: Sequence[Outcome], now: float) -> tuple[int, int]:
        """Record finished leases; returns (accepted, discarded). A result for a lease that
        is no longer current (cancelled, expired and re-leased) is discarded."""
        accepted = discarded = 0
        requeued = False
        failed: dict[str, str] = {}   # task id -> its subtask that failed for good in this batch
        with self._lock, immediate(self._db) as c:
            rows = self._lease_rows([o.lease_id for o in outcomes])
            self._check_owner(rows, node_id)
            sub_updates, lease_updates = [], []
            for o in outcomes:
                r = rows.get(o.lease_id)
                if r is None or not self._is_live(r):
                    discarded += 1
                    if r is not None:
                        log.info("subtask %s: late result of lease %s discarded (%s)",
                                 r["subtask_id"], o.lease_id, r["state"])
                    continue
                if o.ok:
                    event = Event.COMPLETE
                else:
                    event = Event.RETRY if o.retryable else Event.FAIL
                t = states.apply(r["subtask_id"], r["state"], event, r["attempts"], r["max_attempts"])
                started_at = r["started_at"] or o.started_at or now
                finished = now if t.new in states.TERMINAL else None
                error = r["error"] if o.ok else o.error
                sub_updates.append((t.new, t.attempts, started_at if t.new != states.PENDING else None,
                                    finished, error, o.result_blob if o.ok else "",
                                    None if t.new == states.PENDING else r["current_lease"], r["subtask_id"]))
                lease_updates.append((now, "completed" if o.ok else ("retry" if t.new == states.PENDING else "failed"),
                                      o.lease_id))
                requeued |= t.new == states.PENDING
                if t.new == states.FAILED:
                    failed.setdefault(r["task_id"], r["subtask_id"])
                accepted += 1
            c.executemany(
                """UPDATE subtasks SET state=?, attempts=?, started_at=?, finished_at=?, error=?,
                       result_blob=?, lease_id=? WHERE subtask_id=?""", sub_updates)
            c.executemany("UPDATE leases SET ended_at=?, outcome=? WHERE lease_id=?", lease_updates)
            self._fail_fast(c, failed, now)
        if requeued:
            self._notify_work()
        return accepted, discarded

    def release(self, node_id: str, releases: Sequence[tuple[str, bool]], now: float) -> int:
        """The node gives leases back (shutting down); unstarted ones do not use up an attempt."""
        count = 0
        failed: dict[str, str] = {}
        with self._lock, immediate(self._db) as c:
            rows = self._lease_rows([lid for lid, _ in releases])
            self._check_owner(rows, node_id)
            for lid, started in releases:
                r = rows.get(lid)
                if r is None or not self._is_live(r):
                    continue
                event = Event.RELEASE if started or r["state"] == states.RUNNING else Event.UNSTARTED_RELEASE
                t = states.apply(r["subtask_id"], r["state"], event, r["attempts"], r["max_attempts"])
                self._end_lease(c, r, t, now, "released",
                                error=f"worker released the lease after {t.attempts} attempts")
                if t.new == states.FAILED:
                    failed.setdefault(r["task_id"], r["subtask_id"])
                count += 1
            self._fail_fast(c, failed, now)
        if count:
            self._notify_work()
        return count

    def _end_lease(self, c: Any, r: Any, t: states.Transition, now: float, outcome: str, error: str) -> None:
        terminal = t.new in states.TERMINAL
        c.execute(
            "UPDATE subtasks SET state=?, attempts=?, lease_id=?, started_at=?, finished_at=?, "
            "error=CASE WHEN ? THEN ? ELSE error END WHERE subtask_id=?",
            (t.new, t.attempts, r["current_lease"] if terminal else None,
             r["started_at"] if terminal else None, now if terminal else None,
             t.new == states.FAILED, error, r["subtask_id"]))
        c.execute("UPDATE leases SET ended_at=?, outcome=? WHERE lease_id=?", (now, outcome, r["lease_id"]))

    @staticmethod
    def _open_lease_rows(c: Any, where: str, args: tuple[Any, ...]) -> list[Any]:
        """Open leases (``l``) matching ``where``, with their subtask (``s``) and node name."""
        return c.execute(
            f"""SELECT l.lease_id, l.node_id, l.ended_at, s.subtask_id, s.task_id, s.state, s.attempts,
                       s.max_attempts, s.lease_id AS current_lease, s.error, s.started_at,
                       n.name AS node_name
                FROM leases l JOIN subtasks s ON s.subtask_id = l.subtask_id
                LEFT JOIN nodes n ON n.node_id = l.node_id
                WHERE l.ended_at IS NULL AND l.expires_at > -1 AND {where}""", args).fetchall()

    def _expire(self, c: Any, rows: Sequence[Any], now: float, reason: str | None = None) -> int:
        """End ``rows`` (open leases) as expired: requeue their subtasks, or fail them when out
        of attempts (which stops the rest of their task: :meth:`_fail_fast`). ``reason`` replaces
        the default "stopped renewing" message."""
        failed: dict[str, str] = {}
        for r in rows:
            if not self._is_live(r):
                c.execute("UPDATE leases SET ended_at=?, outcome='stale' WHERE lease_id=?", (now, r["lease_id"]))
                continue
            t = states.apply(r["subtask_id"], r["state"], Event.EXPIRE, r["attempts"], r["max_attempts"])
            error = reason or f"lease expired: node {r['node_name'] or r['node_id']} stopped renewing it"
            error += f" (attempt {t.attempts} of {r['max_attempts']})"
            if r["error"]:
                error += f"; previous error: {r['error']}"
            self._end_lease(c, r, t, now, "expired", error)
            if t.new == states.FAILED:
                failed.setdefault(r["task_id"], r["subtask_id"])
        self._fail_fast(c, failed, now)
        return len(rows)

    def expire_leases(self, now: float) -> int:
        """Requeue (or fail, when out of attempts) every subtask whose lease ran out."""
        with self._lock, immediate(self._db) as c:
            expired = self._expire(c, self._open_lease_rows(c, "l.expires_at < ?", (now,)), now)
        if expired:
            log.info("%d leases expired", expired)
            self._notify_work()
        return expired

    def extend_open_leases(self, now: float, ttl: float) -> int:
        """After a restart: give workers one full lease period to reconnect and renew."""
        with self._lock, immediate(self._db) as c:
            return c.execute("UPDATE leases SET expires_at=? WHERE ended_at IS NULL AND expires_at<?",
                             (now + ttl, now + ttl)).rowcount

    # ------------------------------------------------------------ tasks

    def cancel(self, task_id: str, now: float) -> int:
        """Cancel every unfinished subtask of ``task_id``, now and for any later submit."""
        with self._lock, immediate(self._db) as c:
            count = self._cancel_unfinished(c, task_id, now)
        log.info("task %s cancelled (%d subtasks stopped)", task_id, count)
        return count

    @staticmethod
    def _cancel_unfinished(c: Any, task_id: str, now: float, error: str | None = None) -> int:
        """The cancel path, inside the caller's transaction: record the task as cancelled (a
        later submit of it is cancelled too), cancel its pending/assigned/running subtasks
        (``error``, if given, says why) and end their leases, so holders are told to stop at
        their next renewal and a late result is discarded."""
        c.execute("INSERT INTO cancellations (task_id, cancelled_at) VALUES (?,?) "
                  "ON CONFLICT(task_id) DO NOTHING", (task_id, now))
        rows = c.execute(
            "SELECT subtask_id, state, attempts, max_attempts, lease_id FROM subtasks "
            "WHERE task_id=? AND state IN ('pending','assigned','running')", (task_id,)).fetchall()
        for r in rows:
            states.apply(r["subtask_id"], r["state"], Event.CANCEL, r["attempts"], r["max_attempts"])
        c.executemany("UPDATE subtasks SET state='cancelled', finished_at=?, error=COALESCE(?, error) "
                      "WHERE subtask_id=?", [(now, error, r["subtask_id"]) for r in rows])
        c.executemany("UPDATE leases SET ended_at=?, outcome='cancelled' WHERE lease_id=? AND ended_at IS NULL",
                      [(now, r["lease_id"]) for r in rows if r["lease_id"]])
        return len(rows)

    def _fail_fast(self, c: Any, failed: dict[str, str], now: float) -> None:
        """A subtask that failed for good fails its task: stop the task's other subtasks
        (``failed``: task id -> the subtask that failed) the way :meth:`cancel` does, so no
        worker starts or keeps running work whose task can no longer complete."""
        for task_id, subtask_id in failed.items():
            stopped = self._cancel_unfinished(
                c, task_id, now, error=f"cancelled: subtask {subtask_id} of the same task failed")
            log.info("task %s failed (subtask %s failed for good): %d unfinished subtasks cancelled",
                     task_id, subtask_id, stopped)

    def status(self, task_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                """SELECT s.subtask_id, s.task_id, s.state, s.attempts, s.max_attempts, s.priority,
                          s.operation, s.node_id, COALESCE(n.name, '') AS node_name, s.created_at,
                          s.started_at, s.finished_at, s.error, s.result_blob
                   FROM subtasks s LEFT JOIN nodes n ON n.node_id = s.node_id
                   WHERE s.task_id=? ORDER BY s.seq""", (task_id,)).fetchall()
        return [dict(r) for r in rows]

    def summary(self, task_id: str) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, count(*) FROM subtasks WHERE task_id=? GROUP BY state",
                                      (task_id,)).fetchall()
        return {r[0]: r[1] for r in rows}

    def list_tasks(self) -> dict[str, dict[str, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT task_id, state, count(*) FROM subtasks GROUP BY task_id, state "
                "ORDER BY min(seq)").fetchall()
        tasks: dict[str, dict[str, int]] = {}
        for task_id, state, n in rows:
            tasks.setdefault(task_id, {})[state] = n
        return tasks

    def results(self, task_id: str) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT subtask_id, result_blob FROM subtasks WHERE task_id=? AND state='completed'",
                (task_id,)).fetchall()
        return {r[0]: r[1] for r in rows}

    def delete_task(self, task_id: str) -> tuple[int, list[str]]:
        """Remove the task's subtasks and leases; returns (count, blobs no longer referenced)."""
        with self._lock, immediate(self._db) as c:
            rows = c.execute("SELECT subtask_id, input_blob, result_blob FROM subtasks WHERE task_id=?",
                             (task_id,)).fetchall()
            shas = sorted({sha for r in rows for sha in (r["input_blob"], r["result_blob"]) if sha})
            c.execute("DELETE FROM leases WHERE subtask_id IN (SELECT subtask_id FROM subtasks WHERE task_id=?)",
                      (task_id,))
            c.execute("DELETE FROM subtasks WHERE task_id=?", (task_id,))
            still_used: set[str] = set()
            for chunk in _chunks(shas):
                marks = _marks(len(chunk))
                rows = c.execute(f"SELECT input_blob, result_blob FROM subtasks WHERE input_blob IN ({marks}) "
                                 f"OR result_blob IN ({marks})", (*chunk, *chunk)).fetchall()
                still_used.update(sha for r in rows for sha in r)
            orphaned = [sha for sha in shas if sha not in still_used]
        log.info("task %s deleted (%d subtasks, %d blobs)", task_id, len(rows), len(orphaned))
        return len(rows), orphaned

    def ping(self) -> None:
        """Raise if the database cannot answer (health probe)."""
        with self._lock:
            self._db.execute("SELECT count(*) FROM nodes").fetchone()

    def now(self) -> float:  # one clock for the servicers
        return time.time()
