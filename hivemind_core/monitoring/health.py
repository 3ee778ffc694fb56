"""One health check for the dashboard and ``GET /health``: is the node pool
reachable, does the database answer, how many workers are online / busy / offline.

Everything here answers within :data:`PROBE_TIMEOUT_S` per call even while the
node pool is down or hung: a person (or a load balancer) is waiting, so an
outage is reported in words (:func:`pool_problem`), never waited out with retries."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hivemind_core.client import NodePoolClient, NodePoolUnavailable
from hivemind_core.config import Settings, get_settings
from hivemind_core.db import database_ok
from hivemind_core.errors import HiveMindError

PROBE_TIMEOUT_S = 2.0   # deadline of one node pool call made for a page, /health or /api/nodes (no retries)
UI_CALL: dict = {"timeout": PROBE_TIMEOUT_S, "retries": 0}   # keyword arguments for such a client call


def pool_problem(exc: HiveMindError, settings: Settings | None = None) -> str:
    """What to tell a person about a failed node pool call: where, why, and what happens next.

    Unreachable: "Node pool at HOST:PORT is not reachable: REASON; " + for the embedded
    pool that the app restarts it, for a configured one what to check. Other refusals
    (e.g. a rejected token) are worded by the client already."""
    if not isinstance(exc, NodePoolUnavailable):
        return str(exc)
    settings = settings or get_settings()
    where = exc.address or settings.node_pool or "the embedded address"
    if settings.embedded:
        log_file = settings.data_dir / "nodepool" / "logs" / "nodepool.out"
        hint = ("the app restarts its embedded node pool by itself when it stops, so this should clear "
                f"within seconds; if it does not, see the pool's log {log_file}")
    else:
        hint = (f"check that the node pool is running there (python -m hivemind_core.nodepool --listen {where}), "
                "that this machine can reach it (VPN up, no firewall in between) and that HIVEMIND_NODE_POOL "
                "names it")
    return f"Node pool at {where} is not reachable: {exc.reason}; {hint}."


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
            reasons.append(self.node_pool_error)
        if not self.database_ok:
            reasons.append(f"database: {self.database_error}")
        if self.node_pool_ok and self.workers_online + self.workers_busy == 0:
            reasons.append("no worker is online: submitted jobs will wait until one joins")
        return reasons


def check_health(client: NodePoolClient | None, engine, *,  # noqa: ANN001 - SQLAlchemy Engine
                 settings: Settings | None = None) -> HealthReport:
    """Probe the node pool (health service + node list, each within PROBE_TIMEOUT_S, no
    retries) and the master database."""
    pool_ok = False
    pool_error = "Node pool: not connected (the master is starting up or shutting down)."
    counts = {"online": 0, "busy": 0, "offline": 0}
    if client is not None:
        try:
            client.ping(retries=0, timeout=PROBE_TIMEOUT_S)
            for node in client.nodes(**UI_CALL):
                counts[node.status] = counts.get(node.status, 0) + 1
            pool_ok, pool_error = True, ""
        except HiveMindError as exc:
            pool_error = pool_problem(exc, settings)
    if engine is None:
        db_ok, db_error = False, "no database configured"
    else:
        db_ok, db_message = database_ok(engine)
        db_error = "" if db_ok else db_message
    return HealthReport(node_pool_ok=pool_ok, node_pool_error=pool_error, database_ok=db_ok,
                        database_error=db_error, workers_online=counts["online"], workers_busy=counts["busy"],
                        workers_offline=counts["offline"])
