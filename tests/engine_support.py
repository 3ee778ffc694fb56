"""Helpers for the engine tests: in-process node pools, node pool and worker
processes, and bounded waiting. Everything runs for real on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hivemind_core.client import NodePoolClient
from hivemind_core.nodepool.config import PoolConfig
from hivemind_core.nodepool.server import NodePoolServer, read_endpoint
from hivemind_core.proto import nodepool_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
TOKEN = "test-cluster-token"


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def start_server(data_dir: Path, lease_ttl_s: float = 30.0, **config: float) -> NodePoolServer:
    return NodePoolServer(data_dir, "127.0.0.1:0", PoolConfig(lease_ttl_s=lease_ttl_s, **config),
                          cluster_token=TOKEN).start()


def register(client: NodePoolClient, name: str, cores: int = 2, memory_mb: int = 4096,
             slots: int = 1) -> tuple[str, NodePoolClient]:
    """Register a node by hand; returns (node_id, a client holding its node token)."""
    reply = client.call(client.nodes_stub.Register,
                        pb.RegisterRequest(name=name, cores=cores, memory_mb=memory_mb, slots=slots))
    return reply.node_id, NodePoolClient(client.address, reply.node_token, max_retries=0)


def lease(node: NodePoolClient, count: int, wait_s: float = 0.0) -> list[pb.Lease]:
    return list(node.call(node.worker_stub.Lease, pb.LeaseRequest(max=count, wait_s=wait_s)).leases)


def complete(node: NodePoolClient, leases: list[pb.Lease], ok: bool = True, **fields: object) -> pb.CompleteReply:
    return node.call(node.worker_stub.Complete, pb.CompleteRequest(outcomes=[
        pb.Outcome(lease_id=x.lease_id, ok=ok, result=x.subtask_id.encode() if ok else b"", **fields)
        for x in leases]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["HIVEMIND_CLUSTER_TOKEN"] = TOKEN
    return env


def spawn_pool(data_dir: Path, port: int, lease_ttl: float = 2.0, heartbeat: float = 0.5,
               extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """``python -m hivemind_core.nodepool`` as a process; returns once it serves."""
    (data_dir / "endpoint.json").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hivemind_core.nodepool", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(data_dir), "--lease-ttl", str(lease_ttl), "--heartbeat-interval", str(heartbeat),
         "--log-level", "WARNING", *extra],
        env=subprocess_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: (read_endpoint(data_dir) or {}).get("pid") == proc.pid or proc.poll() is not None,
               30, "the node pool to start")
    assert proc.poll() is None, f"node pool exited with {proc.returncode}"
    return proc


def spawn_worker(address: str, name: str, log_path: Path, slots: int = 1,
                 extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """``python -m hivemind_core.worker`` as a process (token on the command line, as documented)."""
    return subprocess.Popen(
        [sys.executable, "-m", "hivemind_core.worker", "--pool", address, "--token", TOKEN,
         "--slots", str(slots), "--name", name, "--max-backoff", "0.5", "--drain-timeout", "5", *extra],
        env=subprocess_env(), cwd=ROOT, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)


def stop_processes(*procs: subprocess.Popen | None) -> None:
    for p in procs:
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        if p is None:
            continue
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def pool_db(data_dir: Path) -> sqlite3.Connection:
    """The node pool's own SQLite file, read-only (to check what really happened)."""
    conn = sqlite3.connect(f"file:{data_dir / 'nodepool.db'}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def endpoint_address(data_dir: Path) -> str:
    return json.loads((data_dir / "endpoint.json").read_text())["address"]
