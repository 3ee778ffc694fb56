"""NodePoolClient: the one way the master (and tools) talk to a node pool.

One channel, one stub per service (the seed's ``NodeManager``,
``UserManager``, ``MasterNodeService``, plus ``WorkerService`` and
``BlobService``). Every call has a deadline; ``UNAVAILABLE`` is retried with
exponential backoff (``backoff`` s, then 2×, 4× … — the seed's 1 s, 2 s, 4 s by
default); when the pool still cannot be reached the call raises
:class:`NodePoolUnavailable`. Calls a person is waiting for (pages, ``/health``,
``/api/nodes``) pass ``timeout=`` and ``retries=0`` instead: an outage is
reported at once rather than waited out. Refusals by the pool raise :class:`NodePoolError`
carrying the pool's message and the gRPC code.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hivemind_core.errors import HiveMindError
from hivemind_core.nodepool.auth import bearer
from hivemind_core.nodepool.blobs import CHUNK_SIZE
from hivemind_core.nodepool.specs import SubtaskSpec
from hivemind_core.proto import nodepool_pb2 as pb
from hivemind_core.proto import nodepool_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_ADDRESS = "localhost:50051"
SUBMIT_BATCH_BYTES = 2 * 1024 * 1024   # keep each Submit message well under the 4 MiB gRPC limit
SUBMIT_BATCH_COUNT = 5000
TERMINAL = ("completed", "failed", "cancelled")


class NodePoolUnavailable(HiveMindError):
    """The node pool cannot be reached (after retries). ``address``: the pool's;
    ``reason``: what gRPC said (e.g. "failed to connect", "Deadline Exceeded")."""

    def __init__(self, message: str, address: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.address = address
        self.reason = reason or message


class NodePoolError(HiveMindError):
    """The node pool refused the call (bad token, needs no node can meet, unknown blob …)."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class SubtaskState:
    subtask_id: str
    task_id: str
    state: str                 # pending|assigned|running|completed|failed|cancelled
    attempts: int
    node_id: str
    node_name: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str
    result_blob: str
    max_attempts: int = 0
    priority: int = 0
    operation: str = ""


@dataclass
class TaskSummary:
    task_id: str
    total: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """Every subtask reached a final state."""
        return sum(self.counts.get(s, 0) for s in TERMINAL) >= self.total


@dataclass
class NodeInfo:
    node_id: str
    name: str
    address: str
    cores: int
    memory_mb: int
    gpu: str
    labels: dict[str, str]
    version: str
    status: str                # online|busy|offline
    last_heartbeat: float
    running: int
    slots: int
    cpu_percent: float
    memory_percent: float
    disk_percent: float
    net_in_bps: float
    net_out_bps: float
    registered_at: float = 0.0
    host_id: str = ""          # the machine it runs on; "" = unknown (an older worker)


@dataclass
class MetricPoint:
    timestamp: float
    cpu_percent: float
    memory_percent: float
    disk_percent: float
    net_in_bps: float
    net_out_bps: float
    running: int


def _spec_message(s: SubtaskSpec) -> pb.SubtaskSpec:
    return pb.SubtaskSpec(subtask_id=s.subtask_id, task_id=s.task_id, operation=s.operation, params=s.params,
                          input_blob=s.input_blob, priority=s.priority, max_attempts=s.max_attempts,
                          cores=s.cores, memory_mb=s.memory_mb, timeout_s=s.timeout_s)


def _batches(specs: Sequence[SubtaskSpec]) -> Iterator[list[pb.SubtaskSpec]]:
    batch: list[pb.SubtaskSpec] = []
    size = 0
    for spec in specs:
        message = _spec_message(spec)
        n = message.ByteSize()
        if batch and (size + n > SUBMIT_BATCH_BYTES or len(batch) >= SUBMIT_BATCH_COUNT):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += n
    if batch:
        yield batch


def _file_chunks(path: Path, digest: Any) -> Iterator[pb.BlobChunk]:
    with open(path, "rb") as fh:
        while data := fh.read(CHUNK_SIZE):
            digest.update(data)
            yield pb.BlobChunk(data=data)
    yield pb.BlobChunk(sha256=digest.hexdigest())


def _iter_chunks(pieces: Iterable[bytes], digest: Any) -> Iterator[pb.BlobChunk]:
    for piece in pieces:
        for i in range(0, len(piece), CHUNK_SIZE):
            data = piece[i:i + CHUNK_SIZE]
            digest.update(data)
            yield pb.BlobChunk(data=data)
    yield pb.BlobChunk(sha256=digest.hexdigest())


class NodePoolClient:
    def __init__(self, address: str, token: str, *, timeout: float = 10.0, max_retries: int = 4,
                 backoff: float = 1.0, blob_timeout: float = 600.0) -> None:
        self.address = address
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.blob_timeout = blob_timeout
        self._metadata = bearer(token)
        self.channel = grpc.insecure_channel(address, options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.enable_retries", 0),  # we retry ourselves, with backoff the caller controls
            # reconnect soon after a pool restart (gRPC's own backoff grows to 2 minutes)
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.min_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ])
        self.nodes_stub = pb_grpc.NodeManagerStub(self.channel)
        self.users_stub = pb_grpc.UserManagerStub(self.channel)
        self.master_stub = pb_grpc.MasterNodeServiceStub(self.channel)
        self.worker_stub = pb_grpc.WorkerServiceStub(self.channel)
        self.blob_stub = pb_grpc.BlobServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    # ------------------------------------------------------------ plumbing

    def set_token(self, token: str) -> None:
        """Use ``token`` from now on (a worker switches to its node token after registering)."""
        self._metadata = bearer(token)

    def call(self, method: Callable[..., T], request: Any, *, timeout: float | None = None,
             retries: int | None = None, token: str | None = None) -> T:
        """Call a stub ``method`` with the token (or ``token``), a deadline, and retries on UNAVAILABLE."""
        metadata = bearer(token) if token else self._metadata
        return self._retrying(lambda: method(request, timeout=timeout or self.timeout, metadata=metadata),
                              retries)

    def _retrying(self, attempt: Callable[[], T], retries: int | None = None) -> T:
        retries = self.max_retries if retries is None else retries
        delay = self.backoff
        for n in range(retries + 1):
            try:
                return attempt()
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                if code == grpc.StatusCode.UNAVAILABLE and n < retries:
                    log.info("node pool at %s unavailable (%s); retrying in %.2g s",
                             self.address, exc.details(), delay)
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise self._translate(exc) from None
        raise AssertionError("unreachable")

    def _translate(self, exc: grpc.RpcError) -> HiveMindError:
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return NodePoolUnavailable(
                f"cannot reach the node pool at {self.address} ({details}). Check that it is running "
                "(python -m hivemind_core.nodepool) and that HIVEMIND_NODE_POOL names it.",
                address=self.address, reason=details or (code.name.lower() if code else "unreachable"))
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return NodePoolError(f"the node pool at {self.address} rejected the token: {details}. "
                                 "Set HIVEMIND_CLUSTER_TOKEN to the pool's cluster token.", code)
        return NodePoolError(f"node pool: {details}", code)

    # ------------------------------------------------------------ work

    def submit(self, subtasks: Sequence[SubtaskSpec]) -> None:
        """Queue ``subtasks`` (idempotent per subtask id). Raises NodePoolError with the reason
        when the pool refuses them, e.g. needs that no node can ever meet."""
        for batch in _batches(subtasks):
            self.call(self.master_stub.Submit, pb.SubmitRequest(subtasks=batch))

    def status(self, task_id: str) -> list[SubtaskState]:
        reply = self.call(self.master_stub.Status, pb.TaskRequest(task_id=task_id))
        return [SubtaskState(subtask_id=s.subtask_id, task_id=s.task_id, state=s.state, attempts=s.attempts,
                             node_id=s.node_id, node_name=s.node_name, created_at=s.created_at,
                             started_at=s.started_at or None, finished_at=s.finished_at or None,
                             error=s.error, result_blob=s.result_blob, max_attempts=s.max_attempts,
                             priority=s.priority, operation=s.operation)
                for s in reply.subtasks]

    def summary(self, task_id: str) -> TaskSummary:
        """Counts per state of one task (cheap: no per-subtask rows)."""
        r = self.call(self.master_stub.Summary, pb.TaskRequest(task_id=task_id))
        return TaskSummary(task_id=r.task_id, total=r.total, counts=dict(r.counts))

    def list_tasks(self) -> list[TaskSummary]:
        reply = self.call(self.master_stub.ListTasks, pb.ListTasksRequest())
        return [TaskSummary(task_id=t.task_id, total=t.total, counts=dict(t.counts)) for t in reply.tasks]

    def wait(self, task_id: str, timeout: float, poll: float = 0.05) -> TaskSummary:
        """Poll until every subtask of ``task_id`` is final; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            summary = self.summary(task_id)
            if summary.total and summary.done:
                return summary
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} not finished after {timeout:g} s: {summary.counts}")
            time.sleep(poll)

    def cancel(self, task_id: str) -> int:
        return self.call(self.master_stub.Cancel, pb.TaskRequest(task_id=task_id)).cancelled

    def results(self, task_id: str) -> dict[str, str]:
        return dict(self.call(self.master_stub.Results, pb.TaskRequest(task_id=task_id)).results)

    def delete_task(self, task_id: str) -> None:
        self.call(self.master_stub.DeleteTask, pb.TaskRequest(task_id=task_id))

    # ------------------------------------------------------------ nodes and identities

    def nodes(self, *, timeout: float | None = None, retries: int | None = None) -> list[NodeInfo]:
        """Every node the pool knows (``timeout``/``retries``: see :meth:`call`)."""
        reply = self.call(self.nodes_stub.ListNodes, pb.NodeListRequest(), timeout=timeout, retries=retries)
        return [NodeInfo(node_id=n.node_id, name=n.name, address=n.address, cores=n.cores,
                         memory_mb=n.memory_mb, gpu=n.gpu, labels=dict(n.labels), version=n.version,
                         status=n.status, last_heartbeat=n.last_heartbeat, running=n.running, slots=n.slots,
                         cpu_percent=n.metrics.cpu_percent, memory_percent=n.metrics.memory_percent,
                         disk_percent=n.metrics.disk_percent, net_in_bps=n.metrics.net_in_bps,
                         net_out_bps=n.metrics.net_out_bps, registered_at=n.registered_at, host_id=n.host_id)
                for n in reply.nodes]

    def node_history(self, node_id: str, since: float, until: float | None = None, *,
                     timeout: float | None = None, retries: int | None = None) -> list[MetricPoint]:
        reply = self.call(self.nodes_stub.NodeHistory,
                          pb.NodeHistoryRequest(node_id=node_id, since=since, until=until or 0.0),
                          timeout=timeout, retries=retries)
        return [MetricPoint(timestamp=p.timestamp, cpu_percent=p.cpu_percent, memory_percent=p.memory_percent,
                            disk_percent=p.disk_percent, net_in_bps=p.net_in_bps, net_out_bps=p.net_out_bps,
                            running=p.running) for p in reply.points]

    def create_token(self, name: str) -> str:
        """A client token named ``name`` (cluster token required); shown only here."""
        return self.call(self.users_stub.CreateToken, pb.CreateTokenRequest(name=name)).token

    def revoke_token(self, name: str) -> bool:
        return self.call(self.users_stub.RevokeToken, pb.RevokeTokenRequest(name=name)).revoked

    def whoami(self) -> tuple[str, str]:
        r = self.call(self.users_stub.WhoAmI, pb.WhoAmIRequest())
        return r.kind, r.name

    # ------------------------------------------------------------ blobs

    def put_blob(self, source: bytes | Path | Iterable[bytes]) -> str:
        """Stream ``source`` to the pool in chunks of at most 1 MiB; returns its sha256.
        The pool verifies the digest. Bytes and files are retried on UNAVAILABLE;
        a one-shot iterable is sent once."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            make = lambda: _iter_chunks([bytes(source)], hashlib.sha256())  # noqa: E731
        elif isinstance(source, (str, os.PathLike)):
            make = lambda: _file_chunks(Path(source), hashlib.sha256())  # noqa: E731
        else:
            pieces = iter(source)
            return self._retrying(lambda: self.blob_stub.Put(
                _iter_chunks(pieces, hashlib.sha256()), timeout=self.blob_timeout, metadata=self._metadata
            ).sha256, retries=0)
        return self._retrying(lambda: self.blob_stub.Put(make(), timeout=self.blob_timeout,
                                                         metadata=self._metadata).sha256)

    def get_blob(self, sha: str, dest: Path | None = None) -> bytes | Path:
        """The blob's bytes, or (``dest`` given) the path it was streamed to, checked against ``sha``."""
        return self._retrying(lambda: self._get_blob_once(sha, dest))

    def _get_blob_once(self, sha: str, dest: Path | None) -> bytes | Path:
        stream = self.blob_stub.Get(pb.BlobRef(sha256=sha), timeout=self.blob_timeout, metadata=self._metadata)
        digest = hashlib.sha256()
        if dest is None:
            parts = []
            for chunk in stream:
                digest.update(chunk.data)
                parts.append(chunk.data)
            self._check_digest(sha, digest)
            return b"".join(parts)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in stream:
                    digest.update(chunk.data)
                    fh.write(chunk.data)
            self._check_digest(sha, digest)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    @staticmethod
    def _check_digest(sha: str, digest: Any) -> None:
        if digest.hexdigest() != sha:
            raise NodePoolError(f"blob {sha} arrived corrupted (got {digest.hexdigest()}); fetch it again")

    # ------------------------------------------------------------ health

    def ping(self, retries: int | None = None, timeout: float | None = None) -> None:
        """Raise NodePoolUnavailable unless the pool answers its health check as SERVING."""
        reply = self._retrying(lambda: self._health.Check(health_pb2.HealthCheckRequest(service=""),
                                                          timeout=timeout or self.timeout), retries)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            raise NodePoolUnavailable(
                f"the node pool at {self.address} is up but not serving ({status}); see its log",
                address=self.address, reason=f"up but not serving ({status})")

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> NodePoolClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
