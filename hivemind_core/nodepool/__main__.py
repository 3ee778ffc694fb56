"""``python -m hivemind_core.nodepool --listen HOST:PORT --data-dir DIR``"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from hivemind_core.logging_setup import setup_logging
from hivemind_core.nodepool.config import DEFAULT_LISTEN, PoolConfig
from hivemind_core.procwatch import exit_with_parent

log = logging.getLogger("hivemind_core.nodepool")


def build_parser() -> argparse.ArgumentParser:
    defaults = PoolConfig()
    p = argparse.ArgumentParser(prog="python -m hivemind_core.nodepool",
                                description="Run a HiveMind node pool (gRPC).")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"address to serve on (default {DEFAULT_LISTEN}; port 0 = any free port)")
    p.add_argument("--data-dir", type=Path, required=True, metavar="DIR",
                   help="SQLite database, blobs, cluster token and logs")
    p.add_argument("--lease-ttl", type=float, default=defaults.lease_ttl_s, metavar="SECONDS",
                   help=f"leases not renewed for this long expire (default {defaults.lease_ttl_s:g})")
    p.add_argument("--heartbeat-interval", type=float, default=defaults.heartbeat_interval_s, metavar="SECONDS",
                   help=f"how often workers report (default {defaults.heartbeat_interval_s:g})")
    p.add_argument("--offline-after", type=float, default=None, metavar="SECONDS",
                   help="no heartbeat for this long marks a node offline (default: 3 heartbeats + 1 s)")
    p.add_argument("--node-retention", type=float, default=defaults.node_retention_s, metavar="SECONDS",
                   help="nodes offline for longer than this are removed from the node list, with their "
                        f"metrics history (default {defaults.node_retention_s:g} = 24 h; 0 keeps them forever)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--parent-pid", type=int, default=0, help=argparse.SUPPRESS)  # embedded cluster
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from hivemind_core.nodepool.server import NodePoolServer

    setup_logging(args.data_dir / "logs", name="nodepool", level=getattr(logging, args.log_level))
    offline_after = args.offline_after or 3 * args.heartbeat_interval + 1
    config = PoolConfig(lease_ttl_s=args.lease_ttl, heartbeat_interval_s=args.heartbeat_interval,
                        offline_after_s=offline_after, node_retention_s=max(0.0, args.node_retention))
    try:
        server = NodePoolServer(args.data_dir, args.listen, config).start()
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stopping = []

    def shutdown(*_: object) -> None:
        if not stopping:
            stopping.append(True)
            server.request_stop()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    if args.parent_pid:
        exit_with_parent(args.parent_pid, shutdown)
    server.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
