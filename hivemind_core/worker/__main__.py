"""``python -m hivemind_core.worker --pool HOST:PORT --token TOKEN [--slots N] [--name NAME]``"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from hivemind_core.logging_setup import LOG_FORMAT
from hivemind_core.procwatch import exit_with_parent
from hivemind_core.worker import hostinfo
from hivemind_core.worker.agent import WorkerAgent, WorkerConfig
from hivemind_core.worker.identity_file import FILE_NAME

TOKEN_ENV = "HIVEMIND_CLUSTER_TOKEN"


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"labels look like key=value, got {text!r}")
    return key.strip(), value.strip()


def build_parser() -> argparse.ArgumentParser:
    defaults = WorkerConfig(pool="", token="")
    p = argparse.ArgumentParser(prog="python -m hivemind_core.worker",
                                description="Run a HiveMind worker: lease subtasks from a node pool and run them.")
    p.add_argument("--pool", required=True, metavar="HOST:PORT", help="the node pool's address")
    p.add_argument("--token", default=None, metavar="TOKEN",
                   help=f"the cluster token (default: ${TOKEN_ENV}); it is printed nowhere, keep it secret")
    p.add_argument("--slots", type=int, default=1, metavar="N", help="subtasks run at once (default 1)")
    p.add_argument("--name", default=None, metavar="NAME", help="node name (default: the host name)")
    p.add_argument("--label", action="append", type=_label, default=[], metavar="KEY=VALUE",
                   help="node label, e.g. location=lab-2 (repeatable)")
    p.add_argument("--memory-mb", type=int, default=defaults.memory_mb, metavar="MB",
                   help=f"memory limit of a subtask that asks for none (default {defaults.memory_mb})")
    p.add_argument("--work-dir", type=Path, default=None, metavar="DIR",
                   help="scratch space for sandboxes (default: a temporary dir)")
    p.add_argument("--identity-file", type=Path, default=None, metavar="FILE",
                   help="keeps this worker's node id and node token (mode 0600) so a restart is the same "
                        "node; a secret like the token (default: <work-dir>/node-identity.json with "
                        "--work-dir, else none: a new node each start)")
    p.add_argument("--drain-timeout", type=float, default=defaults.drain_timeout_s, metavar="SECONDS",
                   help="on SIGTERM, how long running subtasks may finish before their leases are released")
    p.add_argument("--max-backoff", type=float, default=defaults.max_backoff_s, metavar="SECONDS",
                   help="longest wait between reconnection attempts when the pool is unreachable")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--parent-pid", type=int, default=0, help=argparse.SUPPRESS)  # embedded cluster
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), format=LOG_FORMAT)
    token = args.token or os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        print(f"error: no cluster token: pass --token or set {TOKEN_ENV}", file=sys.stderr)
        return 2
    if args.slots < 1:
        print("error: --slots must be at least 1", file=sys.stderr)
        return 2
    agent = WorkerAgent(WorkerConfig(
        pool=args.pool, token=token, slots=args.slots, name=args.name or hostinfo.hostname(),
        labels=dict(args.label), memory_mb=args.memory_mb, work_dir=args.work_dir,
        identity_file=args.identity_file or (args.work_dir / FILE_NAME if args.work_dir else None),
        drain_timeout_s=args.drain_timeout, max_backoff_s=args.max_backoff))
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    signal.signal(signal.SIGINT, lambda *_: agent.stop())
    if args.parent_pid:
        exit_with_parent(args.parent_pid, lambda: (agent.stop(), agent.stop()))
    return agent.run()


if __name__ == "__main__":
    sys.exit(main())
