"""A worker's node credentials on disk, so that a restarted worker is the same node.

The file (JSON, mode 0600, written atomically) holds the node id and node token
the pool issued, plus a hash of the cluster token they were issued under: the
credentials are only ever shown to a pool reached with that same cluster token,
never to some other pool the worker is pointed at. Whoever holds the file *is*
the node (see :mod:`hivemind_core.nodepool.identity`), so it is a secret like
the cluster token.

One worker process at a time may use a file: :meth:`IdentityFile.acquire` takes
an exclusive lock for the life of the process (waiting a little for a previous
worker that is still shutting down), so two workers never share a node.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import IO

from hivemind_core.errors import ConfigError
from hivemind_core.fileutil import atomic_write

log = logging.getLogger(__name__)

FILE_NAME = "node-identity.json"
LOCK_POLL_S = 0.2


class IdentityInUse(ConfigError):
    """Another running worker holds this identity file."""


def _cluster_hash(cluster_token: str) -> str:
    return hashlib.sha256(b"hivemind-cluster:" + cluster_token.encode()).hexdigest()


class IdentityFile:
    def __init__(self, path: Path, cluster_token: str) -> None:
        self.path = Path(path)
        self._cluster = _cluster_hash(cluster_token)
        self._lock: IO[str] | None = None

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.lock")

    def acquire(self, wait_s: float = 30.0, give_up: threading.Event | None = None) -> bool:
        """Hold the file for this process: True once held, False if ``give_up`` was set while
        waiting; raises :class:`IdentityInUse` after ``wait_s``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # held open (and locked) until release(); 0600 like the file it guards
        fh = os.fdopen(os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600), "r+")
        deadline = time.monotonic() + wait_s
        waited = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if give_up is not None and give_up.is_set():
                    fh.close()
                    return False
                if time.monotonic() >= deadline:
                    fh.close()
                    raise IdentityInUse(
                        f"another worker is running with the identity file {self.path}; give every worker "
                        "its own --identity-file (or --work-dir), or stop the other one first") from None
                if not waited:
                    log.info("waiting for the worker still using %s to exit", self.path)
                    waited = True
                time.sleep(LOCK_POLL_S)
        self._lock = fh
        return True

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing drops the lock
            self._lock = None

    def _saved(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable identity file %s (%s)", self.path, exc)
            return None
        return data if isinstance(data, dict) else None

    def load(self) -> tuple[str, str]:
        """(node id, node token) saved for this cluster, or ("", "") if there are none."""
        data = self._saved()
        if data is None:
            return "", ""
        if data.get("cluster") != self._cluster:
            log.warning("identity file %s belongs to another cluster (a different cluster token); "
                        "it is not shown to this pool", self.path)
            return "", ""
        return str(data.get("node_id", "")), str(data.get("node_token", ""))

    def save(self, node_id: str, node_token: str, name: str) -> None:
        data = self._saved() or {}
        if (data.get("cluster"), data.get("node_id"), data.get("node_token")) == (self._cluster, node_id, node_token):
            return
        atomic_write(self.path, json.dumps({"node_id": node_id, "node_token": node_token, "name": name,
                                            "cluster": self._cluster, "saved_at": time.time()}, indent=1))
        log.info("node identity %s saved to %s", node_id, self.path)
