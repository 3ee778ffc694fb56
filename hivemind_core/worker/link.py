"""The worker's connection to its node pool: registration, and calls that ride
out outages.

Every call goes through :meth:`PoolLink.call`. While the pool is unreachable
it retries with exponential backoff (capped), and once the pool answers again
the worker re-registers — with its node id and node token, so a restarted pool
keeps its leases. If the pool no longer knows the node (its data dir was
replaced) the worker registers as a new node and :class:`NodeReset` tells the
agent to drop the leases it held.

With an :class:`~hivemind_core.worker.identity_file.IdentityFile` the node
credentials also survive the worker's own restarts: the first registration of
a process presents the saved ones (marked ``fresh_process``, so the pool
requeues the leases the previous process held) and every new pair is saved.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

import hivemind_core
from hivemind_core.client import NodePoolClient, NodePoolError, NodePoolUnavailable
from hivemind_core.errors import HiveMindError
from hivemind_core.proto import nodepool_pb2 as pb
from hivemind_core.worker import hostinfo
from hivemind_core.worker.identity_file import IdentityFile

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_BACKOFF_S = 0.25


class NodeReset(HiveMindError):
    """The pool forgot this node; it registered anew and its old leases are void."""


class LinkClosed(HiveMindError):
    """The worker is shutting down hard and gave up on the pool."""


@dataclass
class NodeIdentity:
    name: str
    slots: int
    labels: dict[str, str] = field(default_factory=dict)


class PoolLink:
    def __init__(self, address: str, cluster_token: str, identity: NodeIdentity, closed: threading.Event,
                 rpc_timeout_s: float = 10.0, max_backoff_s: float = 30.0,
                 identity_file: IdentityFile | None = None) -> None:
        self.address = address
        self.identity = identity
        self.client = NodePoolClient(address, cluster_token, timeout=rpc_timeout_s, max_retries=0)
        self._cluster_token = cluster_token
        self._closed = closed
        self._max_backoff = max_backoff_s
        self._lock = threading.Lock()
        self._must_register = True
        self.identity_file = identity_file
        self.node_id = self.node_token = ""
        self.registered_as = ""     # resumed | adopted | new, from the last registration
        self._fresh = True          # no registration has succeeded in this process yet
        self.heartbeat_interval_s = 3.0
        self.lease_ttl_s = 30.0
        self.on_reset: Callable[[], None] = lambda: None

    def _register(self) -> None:
        reply = self.client.call(self.client.nodes_stub.Register, pb.RegisterRequest(
            name=self.identity.name, address=hostinfo.hostname(), cores=hostinfo.cores(),
            memory_mb=hostinfo.memory_mb(), gpu=hostinfo.gpu(),
            labels={**self.identity.labels, "sandbox": hostinfo.sandbox_confinement()},
            host_id=hostinfo.host_id(),
            version=hivemind_core.__version__, slots=self.identity.slots,
            node_id=self.node_id, node_token=self.node_token, fresh_process=self._fresh,
        ), retries=0, token=self._cluster_token)
        reset = bool(self.node_id) and reply.node_id != self.node_id and not self._fresh
        self.node_id, self.node_token = reply.node_id, reply.node_token
        self.registered_as, self._fresh = reply.identity, False
        if self.identity_file is not None:
            try:
                self.identity_file.save(self.node_id, self.node_token, self.identity.name)
            except OSError as exc:
                log.warning("could not save the node identity to %s (%s); a restart will be a new node",
                            self.identity_file.path, exc)
        self.heartbeat_interval_s, self.lease_ttl_s = reply.heartbeat_interval_s, reply.lease_ttl_s
        self.client.set_token(self.node_token)
        self._must_register = False
        log.info("registered with the node pool at %s as %s (%s, %s)", self.address, self.node_id,
                 self.identity.name, reply.identity or "?")
        if reset:
            log.warning("the node pool did not know this node any more; registered anew")
            self.on_reset()

    def load_identity(self) -> None:
        """Take the saved node credentials (call while holding the identity file)."""
        if self.identity_file is not None:
            self.node_id, self.node_token = self.identity_file.load()

    def register(self) -> None:
        """Register (blocking through outages)."""
        self.call(None, None)

    def call(self, method: Callable[..., T] | None, request: Any, timeout: float | None = None) -> T:
        """``method(request)`` with the node token; waits out outages with backoff."""
        delay = FIRST_BACKOFF_S
        down_since = None
        while True:
            if self._closed.is_set():
                raise LinkClosed("worker shutting down")
            try:
                with self._lock:
                    if self._must_register:
                        self._register()
                if method is None:
                    return None  # type: ignore[return-value]
                result = self.client.call(method, request, timeout=timeout, retries=0)
                if down_since is not None:
                    log.info("node pool at %s reachable again after %.1f s", self.address,
                             time.monotonic() - down_since)
                return result
            except NodePoolUnavailable as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("%s; retrying with backoff", exc)
                with self._lock:
                    self._must_register = True  # say hello again once it is back
                self._closed.wait(delay)
                delay = min(delay * 2, self._max_backoff)
            except NodePoolError as exc:
                if exc.code != grpc.StatusCode.UNAUTHENTICATED or method is None:
                    raise
                log.warning("node token refused (%s); registering again", exc)
                with self._lock:
                    self._must_register = True
                    self._register()
                raise NodeReset(str(exc)) from None

    def put_blob(self, path: Any) -> str:
        return self._blob(lambda: self.client.put_blob(path))

    def get_blob(self, sha: str, dest: Any) -> Any:
        return self._blob(lambda: self.client.get_blob(sha, dest))

    def _blob(self, attempt: Callable[[], T]) -> T:
        delay = FIRST_BACKOFF_S
        while True:
            if self._closed.is_set():
                raise LinkClosed("worker shutting down")
            try:
                return attempt()
            except NodePoolUnavailable as exc:
                log.warning("%s; retrying the blob transfer", exc)
                self._closed.wait(delay)
                delay = min(delay * 2, self._max_backoff)

    def close(self) -> None:
        self.client.close()
