"""Node pool timing settings (flags of ``python -m hivemind_core.nodepool``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hivemind_core.nodepool.store import RetentionPolicy

DEFAULT_LISTEN = "localhost:50051"


@dataclass(frozen=True)
class PoolConfig:
    lease_ttl_s: float = 30.0           # a lease not renewed for this long expires
    heartbeat_interval_s: float = 3.0   # what workers are told to use
    offline_after_s: float = 10.0       # no heartbeat for this long: the node is offline
    max_lease_wait_s: float = 10.0      # cap on a Lease long poll
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)

    @property
    def reaper_interval_s(self) -> float:
        return max(0.05, min(1.0, self.lease_ttl_s / 4))
