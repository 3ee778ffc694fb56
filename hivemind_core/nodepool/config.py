"""Node pool timing settings (flags of ``python -m hivemind_core.nodepool``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hivemind_core.nodepool.store import RetentionPolicy

DEFAULT_LISTEN = "localhost:50051"
DEFAULT_NODE_RETENTION_S = 24 * 3600.0


@dataclass(frozen=True)
class PoolConfig:
    lease_ttl_s: float = 30.0           # a lease not renewed for this long expires
    heartbeat_interval_s: float = 3.0   # what workers are told to use
    offline_after_s: float = 10.0       # no heartbeat for this long: the node is offline
    max_lease_wait_s: float = 10.0      # cap on a Lease long poll
    node_retention_s: float = DEFAULT_NODE_RETENTION_S  # offline longer: forgotten (0 = never)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)

    @property
    def reaper_interval_s(self) -> float:
        return max(0.05, min(1.0, self.lease_ttl_s / 4))

    @property
    def forget_after_s(self) -> float:
        """Heartbeat age after which a node is forgotten (0 = never); never before it is offline."""
        return max(self.node_retention_s, self.offline_after_s) if self.node_retention_s > 0 else 0.0

    @property
    def prune_interval_s(self) -> float:
        """How often to look for nodes to forget: a minute, or sooner for a short retention."""
        return max(self.reaper_interval_s, min(60.0, self.forget_after_s / 4))
