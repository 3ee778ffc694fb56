"""Alerts for the dashboard and ``/api/system/status``: node pool or database
down, offline nodes, workers that run user code unconfined, failed tasks, low disk."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from hivemind_core.client import NodeInfo
    from hivemind_core.monitoring.health import HealthReport

LOW_DISK_PERCENT_FREE = 10.0         # alert when less than this share of the disk is free
LOW_DISK_BYTES_FREE = 1024 ** 3      # ... or less than 1 GiB
UNCONFINED = "UNCONFINED"            # a worker's ``sandbox`` label without Landlock (worker/hostinfo.py)


@dataclass(frozen=True)
class Alert:
    level: Literal["error", "warning"]
    message: str


def system_alerts(
    health: HealthReport,
    nodes: Sequence[NodeInfo],
    task_counts: Mapping[str, int],
    host: Mapping[str, Any],
    now: float | None = None,
) -> list[Alert]:
    now = time.time() if now is None else now
    alerts: list[Alert] = []
    if not health.node_pool_ok:
        alerts.append(Alert("error", health.node_pool_error))   # worded by health.pool_problem
    if not health.database_ok:
        alerts.append(Alert("error", f"Database problem: {health.database_error}"))
    for node in nodes:
        if node.status == "offline":
            ago = f"{now - node.last_heartbeat:.0f} s ago" if node.last_heartbeat else "never"
            alerts.append(Alert("warning", f"Node {node.name} ({node.address}) is offline; last heartbeat {ago}."))
        elif node.disk_percent >= 100 - LOW_DISK_PERCENT_FREE:
            alerts.append(Alert("warning", f"Node {node.name} is low on disk ({node.disk_percent:.0f}% used)."))
        if node.status != "offline" and node.labels.get("sandbox") == UNCONFINED:
            alerts.append(Alert("warning", f"Node {node.name} ({node.address}) runs user code unconfined: its "
                                           "kernel has no Landlock (Linux 5.13 or newer), so script, ML and "
                                           "simulation jobs there can read its files. Run only trusted jobs "
                                           "or move the worker to a newer kernel."))
    failed = int(task_counts.get("failed", 0))
    if failed:
        alerts.append(Alert("warning", f"{failed} task(s) failed across the system; their owners see why on "
                                       "the Tasks page (filter by 'failed')."))
    total, free = host.get("disk_total") or 0, host.get("disk_free") or 0
    if total and (free < LOW_DISK_BYTES_FREE or 100.0 * free / total < LOW_DISK_PERCENT_FREE):
        alerts.append(Alert("warning", f"This host is low on disk: {free / 1024 ** 3:.1f} GiB free "
                                       f"({100.0 * free / total:.0f}%)."))
    return alerts
