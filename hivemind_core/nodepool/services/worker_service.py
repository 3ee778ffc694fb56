"""WorkerService: workers lease subtasks, renew and complete their leases, release them."""

from __future__ import annotations

import time

import grpc

from hivemind_core.nodepool.auth import Authenticator, caller_of
from hivemind_core.nodepool.blobs import BlobStore
from hivemind_core.nodepool.config import PoolConfig
from hivemind_core.nodepool.services.errors import grpc_errors
from hivemind_core.nodepool.store import Outcome, Store
from hivemind_core.proto import nodepool_pb2 as pb
from hivemind_core.proto import nodepool_pb2_grpc as pb_grpc

MAX_LEASES_PER_CALL = 256


class WorkerServiceServicer(pb_grpc.WorkerServiceServicer):
    def __init__(self, store: Store, blobs: BlobStore, auth: Authenticator, config: PoolConfig) -> None:
        self.store, self.blobs, self.auth, self.config = store, blobs, auth, config

    @grpc_errors
    def Lease(self, request: pb.LeaseRequest, context: grpc.ServicerContext) -> pb.LeaseReply:
        """Up to ``max`` subtasks; with none queued, wait up to ``wait_s`` for some (long poll)."""
        node_id = caller_of(self.auth, context).node_id
        count = max(1, min(request.max or 1, MAX_LEASES_PER_CALL))
        remaining = context.time_remaining()
        wait = min(request.wait_s, self.config.max_lease_wait_s, max(0.0, (remaining or 1e9) - 0.5))
        deadline = time.monotonic() + max(0.0, wait)
        leases: list[dict] = []
        while context.is_active():
            version = self.store.work_version
            leases = self.store.lease(node_id, count, self.store.now(), self.config.lease_ttl_s)
            left = deadline - time.monotonic()
            if leases or left <= 0 or not context.is_active():
                break
            self.store.wait_for_work(version, min(left, 1.0))
        return pb.LeaseReply(lease_ttl_s=self.config.lease_ttl_s, leases=[
            pb.Lease(lease_id=x["lease_id"], subtask_id=x["subtask_id"], task_id=x["task_id"],
                     operation=x["operation"], params=x["params"], input_blob=x["input_blob"],
                     timeout_s=x["timeout_s"], memory_mb=x["memory_mb"], attempt=x["attempt"],
                     expires_at=x["expires_at"])
            for x in leases])

    @grpc_errors
    def Renew(self, request: pb.RenewRequest, context: grpc.ServicerContext) -> pb.RenewReply:
        node_id = caller_of(self.auth, context).node_id
        now = self.store.now()
        stop = self.store.renew(node_id, list(request.lease_ids),
                                [(s.lease_id, s.started_at) for s in request.started],
                                now, self.config.lease_ttl_s)
        return pb.RenewReply(stop_lease_ids=stop, expires_at=now + self.config.lease_ttl_s)

    @grpc_errors
    def Complete(self, request: pb.CompleteRequest, context: grpc.ServicerContext) -> pb.CompleteReply:
        node_id = caller_of(self.auth, context).node_id
        outcomes = []
        for o in request.outcomes:
            sha = o.result_blob
            if o.ok and not sha:
                sha = self.blobs.put_bytes(o.result)  # small results travel inline
            elif o.ok and not self.blobs.exists(sha):
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"result blob {sha} of lease {o.lease_id} was never put")
            outcomes.append(Outcome(lease_id=o.lease_id, ok=o.ok, result_blob=sha, error=o.error,
                                    retryable=o.retryable, started_at=o.started_at, finished_at=o.finished_at))
        accepted, discarded = self.store.complete(node_id, outcomes, self.store.now())
        return pb.CompleteReply(accepted=accepted, discarded=discarded)

    @grpc_errors
    def Release(self, request: pb.ReleaseRequest, context: grpc.ServicerContext) -> pb.ReleaseReply:
        node_id = caller_of(self.auth, context).node_id
        released = self.store.release(node_id, [(r.lease_id, r.started) for r in request.releases],
                                      self.store.now())
        return pb.ReleaseReply(released=released)
