"""One health check for the dashboard and ``GET /health``: is the node pool
reachable, does the database answer, how many workers are online / busy / offline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hivemind_core.client import NodePoolClient
from hivemind_core.db import database_ok
from hivemind_core.errors import HiveMindError


@dataclass
class HealthReport:
    node_pool_ok: bool
    node_pool_error: str
    database_ok: bool
    database_error: str
    workers_online: int = 0
    workers_busy: int = 0
    workers_offline: int = 0
    timestamp: float = field(default_factory=time.time)

    @property
    def healthy(self) -> bool:
        """The node pool answers and the database answers."""
        return self.node_pool_ok and self.database_ok

    def reasons(self) -> list[str]:
        """What is wrong, in words for the person looking (empty when all is well)."""
        reasons = []
        if not self.node_pool_ok:
            reasons.append(f"node pool: {self.node_pool_error}")
        if not self.database_ok:
            reasons.append(f"database: {self.database_error}")
        if self.node_pool_ok and self.workers_online + self.workers_busy == 0:
            reasons.append("no worker is online: submitted jobs will wait until one joins")
        return reasons


def check_health(client: NodePoolClient | None, engine) -> HealthReport:  # noqa: ANN001 - SQLAlchemy Engine
    """Probe the node pool (health service + node list) and the master database."""
    pool_ok, pool_error = False, "no node pool configured"
    counts = {"online": 0, "busy": 0, "offline": 0}
    if client is not None:
        try:
            client.ping(retries=0)  # a probe reports, it does not wait out an outage
            for node in client.nodes():
                counts[node.status] = counts.get(node.status, 0) + 1
            pool_ok, pool_error = True, ""
        except HiveMindError as exc:
            pool_error = str(exc)
    if engine is None:
        db_ok, db_error = False, "no database configured"
    else:
        db_ok, db_message = database_ok(engine)
        db_error = "" if db_ok else db_message
    return HealthReport(node_pool_ok=pool_ok, node_pool_error=pool_error, database_ok=db_ok,
                        database_error=db_error, workers_online=counts["online"], workers_busy=counts["busy"],
                        workers_offline=counts["offline"])
