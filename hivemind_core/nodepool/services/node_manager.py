"""NodeManager: workers register and heartbeat; the master lists nodes and their history."""

from __future__ import annotations

import secrets

import grpc

from hivemind_core.nodepool.auth import Authenticator, caller_of
from hivemind_core.nodepool.config import PoolConfig
from hivemind_core.nodepool.identity import Claim, peer_host
from hivemind_core.nodepool.services.errors import grpc_errors
from hivemind_core.nodepool.store import METRIC_FIELDS, NodeRecord, Store
from hivemind_core.proto import nodepool_pb2 as pb
from hivemind_core.proto import nodepool_pb2_grpc as pb_grpc


def node_status(node: dict, now: float, offline_after_s: float) -> str:
    """offline: no heartbeat for ``offline_after_s``; busy: every slot running; else online."""
    if now - node["last_heartbeat"] > offline_after_s:
        return "offline"
    return "busy" if node["running"] >= max(1, node["slots"]) else "online"


def node_running(node: dict, status: str) -> int:
    """Subtasks running on the node: its own last report while it is alive; once it is
    offline that report is stale, so the pool's count of leases it still holds (0 once they
    expired and were requeued)."""
    return node["running_leases"] if status == "offline" else node["running"]


class NodeManagerServicer(pb_grpc.NodeManagerServicer):
    def __init__(self, store: Store, auth: Authenticator, config: PoolConfig) -> None:
        self.store, self.auth, self.config = store, auth, config

    @grpc_errors
    def Register(self, request: pb.RegisterRequest, context: grpc.ServicerContext) -> pb.RegisterReply:
        """A node joins or comes back; who it is follows :mod:`hivemind_core.nodepool.identity`."""
        if not request.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a node needs a name")
        claim = Claim(name=request.name, peer_host=peer_host(context.peer()), node_id=request.node_id,
                      node_token=request.node_token, fresh_process=request.fresh_process)
        record = NodeRecord(node_id="node-" + secrets.token_hex(6), name=request.name,
                            address=request.address or context.peer(), cores=max(1, request.cores),
                            memory_mb=max(0, request.memory_mb), gpu=request.gpu, labels=dict(request.labels),
                            version=request.version, slots=max(1, request.slots), host_id=request.host_id)
        decision, token = self.store.register(record, claim, self.store.now(), self.config.offline_after_s,
                                              new_token=secrets.token_urlsafe(32))
        self.auth.refresh()
        return pb.RegisterReply(node_id=decision.node_id, node_token=token, identity=decision.how,
                                heartbeat_interval_s=self.config.heartbeat_interval_s,
                                lease_ttl_s=self.config.lease_ttl_s)

    @grpc_errors
    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatReply:
        caller = caller_of(self.auth, context)
        m = request.metrics
        self.store.heartbeat(caller.node_id, {k: getattr(m, k) for k in ("timestamp", *METRIC_FIELDS)},
                             self.store.now())
        return pb.HeartbeatReply(heartbeat_interval_s=self.config.heartbeat_interval_s)

    @grpc_errors
    def ListNodes(self, request: pb.NodeListRequest, context: grpc.ServicerContext) -> pb.NodeListReply:
        now = self.store.now()
        nodes = []
        for n in self.store.list_nodes():
            status = node_status(n, now, self.config.offline_after_s)
            nodes.append(pb.NodeInfo(
                node_id=n["node_id"], name=n["name"], address=n["address"], cores=n["cores"],
                memory_mb=n["memory_mb"], gpu=n["gpu"], labels=n["labels"], version=n["version"],
                status=status, last_heartbeat=n["last_heartbeat"], running=node_running(n, status),
                slots=n["slots"], registered_at=n["registered_at"], host_id=n["host_id"],
                metrics=pb.Metrics(timestamp=n["last_heartbeat"],
                                   **{k: n[k] for k in METRIC_FIELDS if k != "running"},
                                   running=node_running(n, status))))
        return pb.NodeListReply(nodes=nodes)

    @grpc_errors
    def NodeHistory(self, request: pb.NodeHistoryRequest, context: grpc.ServicerContext) -> pb.NodeHistoryReply:
        until = request.until or self.store.now()
        points = self.store.node_history(request.node_id, request.since, until)
        return pb.NodeHistoryReply(points=[
            pb.Metrics(timestamp=p["ts"], **{k: (int(round(p[k])) if k == "running" else p[k])
                                             for k in METRIC_FIELDS})
            for p in points])
