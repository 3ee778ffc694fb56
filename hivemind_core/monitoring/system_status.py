"""One snapshot of the whole system — health, this host's metrics, nodes, task
counts, alerts — for the dashboard and ``GET /api/system/status``.

Task numbers are system-wide for every role (counts only: no names, owners or
ids), so a viewer's "system dashboard" shows the system; an analyst also gets
their own counts beside them (admins see everything anyway).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hivemind_core.errors import HiveMindError
from hivemind_core.monitoring.alerts import Alert, system_alerts
from hivemind_core.monitoring.health import UI_CALL, HealthReport, check_health
from hivemind_core.monitoring.host import system_metrics
from hivemind_core.monitoring.nodestats import ClusterTotals, cluster_totals
from hivemind_core.principal import Principal

if TYPE_CHECKING:
    from hivemind_core.client import NodeInfo
    from hivemind_core.runtime import MasterRuntime

log = logging.getLogger(__name__)


@dataclass
class SystemStatus:
    health: HealthReport
    host: dict[str, Any]
    nodes: list[NodeInfo]
    totals: ClusterTotals
    task_counts: dict[str, int]                       # every user's tasks by status
    finished_per_hour: list[tuple[datetime, int]]     # every user's tasks finished per hour (UTC), last 24 h
    own_task_counts: dict[str, int] | None            # the analyst's own tasks by status (None: viewer, admin)
    alerts: list[Alert]
    timestamp: float = field(default_factory=time.time)


def system_status(rt: MasterRuntime, who: Principal) -> SystemStatus:
    """Everything the dashboard shows; a down node pool gives an empty node list and an alert, not an error."""
    health = check_health(rt.client, rt.engine, settings=rt.settings)
    host = system_metrics(str(rt.settings.data_dir if rt.settings.data_dir.exists() else "/"))
    nodes: list[NodeInfo] = []
    if health.node_pool_ok:
        try:
            nodes = rt.client.nodes(**UI_CALL)
        except HiveMindError as exc:  # the pool went away between the two calls
            log.warning("node list unavailable: %s", exc)
    counts = rt.tasks.system_counts_by_status()
    own = rt.tasks.counts_by_status(who) if who.can_submit and not who.is_admin else None
    return SystemStatus(health, host, nodes, cluster_totals(nodes), counts, rt.tasks.system_finished_per_hour(24),
                        own, system_alerts(health, nodes, counts, host))
