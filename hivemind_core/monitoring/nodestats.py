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
    nodes: int
    online: int
    busy: int
    offline: int
    cores: int          # of the nodes that are not offline
    memory_mb: int      # of the nodes that are not offline
    slots: int
    running: int        # subtasks running now
    cpu_percent: float  # mean over the nodes that are not offline (0 if none)
    memory_percent: float


def cluster_totals(nodes: Sequence[NodeInfo]) -> ClusterTotals:
    live = [n for n in nodes if n.status != "offline"]
    return ClusterTotals(
        nodes=len(nodes),
        online=sum(n.status == "online" for n in nodes),
        busy=sum(n.status == "busy" for n in nodes),
        offline=sum(n.status == "offline" for n in nodes),
        cores=sum(n.cores for n in live),
        memory_mb=sum(n.memory_mb for n in live),
        slots=sum(n.slots for n in live),
        running=sum(n.running for n in live),
        cpu_percent=sum(n.cpu_percent for n in live) / len(live) if live else 0.0,
        memory_percent=sum(n.memory_percent for n in live) / len(live) if live else 0.0,
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
            "last_heartbeat_s_ago": round(max(0.0, now - n.last_heartbeat), 1) if n.last_heartbeat else None,
            "node_id": n.node_id,
        }
        for n in sorted(nodes, key=lambda n: (n.name, n.node_id))
    ]


def history_columns(points: Sequence[MetricPoint]) -> dict[str, list[float]]:
    """Metric history as columns (timestamp, cpu_percent, ...), oldest first."""
    ordered = sorted(points, key=lambda p: p.timestamp)
    fields = ("timestamp", "cpu_percent", "memory_percent", "disk_percent", "net_in_bps", "net_out_bps", "running")
    return {f: [getattr(p, f) for p in ordered] for f in fields}
