"""Cluster-wide figures over the node list (the Nodes page, the dashboard and
``GET /api/nodes`` show the same numbers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hivemind_core.client import MetricPoint, NodeInfo

HISTORY_WINDOWS: dict[str, float] = {  # label -> seconds, for the history charts
    "last 15 min": 15 * 60,
    "last hour": 60 * 60,
    "last day": 24 * 60 * 60,
}


@dataclass
class ClusterTotals:
    nodes: int          # worker nodes (processes), every state
    online: int
    busy: int
    offline: int
    cores: int          # of the hosts with a node that is not offline, each host counted once
    memory_mb: int      # likewise
    slots: int          # of the live nodes: every worker's own
    running: int        # subtasks running now
    cpu_percent: float  # mean over the live hosts (0 if none)
    memory_percent: float
    hosts: int = 0      # machines with a live node
    live: int = 0       # nodes that are not offline


def host_key(node: NodeInfo) -> str:
    """Which machine a node runs on: its host id; a node of an older worker (none sent) is its own."""
    return f"host:{node.host_id}" if node.host_id else f"node:{node.node_id}"


def cluster_totals(nodes: Sequence[NodeInfo]) -> ClusterTotals:
    """Totals over the node list. Several workers on one machine each report the machine's
    cores and memory: those count once per host (the largest report of its live nodes),
    while slots and running subtasks are every worker's own."""
    live = [n for n in nodes if n.status != "offline"]
    hosts: dict[str, list[NodeInfo]] = {}
    for n in live:
        hosts.setdefault(host_key(n), []).append(n)
    per_host = [(max(n.cores for n in group), max(n.memory_mb for n in group),
                 sum(n.cpu_percent for n in group) / len(group), sum(n.memory_percent for n in group) / len(group))
                for group in hosts.values()]
    return ClusterTotals(
        nodes=len(nodes),
        online=sum(n.status == "online" for n in nodes),
        busy=sum(n.status == "busy" for n in nodes),
        offline=sum(n.status == "offline" for n in nodes),
        cores=sum(h[0] for h in per_host),
        memory_mb=sum(h[1] for h in per_host),
        slots=sum(n.slots for n in live),
        running=sum(n.running for n in live),
        cpu_percent=sum(h[2] for h in per_host) / len(per_host) if per_host else 0.0,
        memory_percent=sum(h[3] for h in per_host) / len(per_host) if per_host else 0.0,
        hosts=len(hosts),
        live=len(live),
    )


def node_rows(nodes: Sequence[NodeInfo], now: float) -> list[dict[str, Any]]:
    """One row per node for a table, sorted by name."""
    return [
        {
            "name": n.name,
            "address": n.address,
            "status": n.status,
            "cores": n.cores,
            "memory_mb": n.memory_mb,
            "running": n.running,
            "slots": n.slots,
            "cpu_percent": round(n.cpu_percent, 1),
            "memory_percent": round(n.memory_percent, 1),
            "sandbox": n.labels.get("sandbox", "unknown"),
            "last_heartbeat_s_ago": round(max(0.0, now - n.last_heartbeat), 1) if n.last_heartbeat else None,
            "node_id": n.node_id,
            "host_id": n.host_id,
        }
        for n in sorted(nodes, key=lambda n: (n.name, n.node_id))
    ]


def history_columns(points: Sequence[MetricPoint]) -> dict[str, list[float]]:
    """Metric history as columns (timestamp, cpu_percent, ...), oldest first."""
    ordered = sorted(points, key=lambda p: p.timestamp)
    fields = ("timestamp", "cpu_percent", "memory_percent", "disk_percent", "net_in_bps", "net_out_bps", "running")
    return {f: [getattr(p, f) for p in ordered] for f in fields}
