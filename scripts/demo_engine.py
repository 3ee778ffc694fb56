"""Issue 2's "Must show", run for real with the documented commands.

    .venv/bin/python scripts/demo_engine.py [--tasks 2000] [--lease-ttl 5]

Starts ``python -m hivemind_core.nodepool`` and two ``python -m hivemind_core.worker``
processes, then:

1. runs N ``noop`` subtasks to completion;
2. runs N more and ``kill -9``s one worker while it holds leases: its subtasks
   finish on the other worker (time after the kill is printed next to the lease
   expiry) and no subtask is completed twice;
3. runs N more and ``kill -9``s the node pool mid-run, restarts it on the same
   data dir: nothing is lost and the workers reconnect by themselves;
4. shows the auth codes for no token, a wrong token, and another worker's lease.

Exactly-once is checked from the node pool's own lease records.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hivemind_core.client import NodePoolClient, NodePoolError, SubtaskSpec  # noqa: E402
from hivemind_core.proto import nodepool_pb2 as pb  # noqa: E402

TOKEN = "demo-" + os.urandom(8).hex()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_pool(data: Path, port: int, ttl: float) -> subprocess.Popen:
    (data / "endpoint.json").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hivemind_core.nodepool", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data),
         "--lease-ttl", str(ttl), "--heartbeat-interval", "1", "--log-level", "WARNING"],
        cwd=ROOT, env=dict(os.environ, HIVEMIND_CLUSTER_TOKEN=TOKEN), stderr=subprocess.DEVNULL)
    while not (data / "endpoint.json").exists():
        if proc.poll() is not None:
            raise SystemExit("node pool did not start")
        time.sleep(0.05)
    return proc


def start_worker(address: str, name: str, log_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hivemind_core.worker", "--pool", address, "--token", TOKEN, "--name", name,
         "--max-backoff", "1"],
        cwd=ROOT, stdout=open(log_dir / f"{name}.log", "wb"), stderr=subprocess.STDOUT)


def db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{data / 'nodepool.db'}?mode=ro", uri=True, timeout=30)


def completed_twice(data: Path, task: str) -> int:
    with db(data) as c:
        return c.execute("SELECT count(*) FROM (SELECT l.subtask_id FROM leases l JOIN subtasks s USING "
                         "(subtask_id) WHERE s.task_id=? AND l.outcome='completed' GROUP BY l.subtask_id "
                         "HAVING count(*) > 1)", (task,)).fetchone()[0]


def held_by(data: Path, name: str, task: str) -> list[str]:
    with db(data) as c:
        return [r[0] for r in c.execute(
            "SELECT l.subtask_id FROM leases l JOIN nodes n USING (node_id) JOIN subtasks s USING (subtask_id) "
            "WHERE n.name=? AND s.task_id=? AND l.ended_at IS NULL", (name, task))]


def noops(task: str, n: int) -> list[SubtaskSpec]:
    return [SubtaskSpec(f"{task}-{i}", task, "noop", params=str(i).encode()) for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--lease-ttl", type=float, default=5.0)
    args = parser.parse_args(argv)
    n, ttl = args.tasks, args.lease_ttl
    tmp = Path(tempfile.mkdtemp(prefix="hivemind-demo-"))
    data, port = tmp / "pool", free_port()
    address = f"127.0.0.1:{port}"
    pool = start_pool(data, port, ttl)
    workers = {name: start_worker(address, name, tmp) for name in ("worker-a", "worker-b")}
    c = NodePoolClient(address, TOKEN, max_retries=8, backoff=0.25)
    try:
        while len([x for x in c.nodes() if x.status != "offline"]) < 2:
            time.sleep(0.1)
        print(f"node pool {address}, workers {sorted(workers)}, lease ttl {ttl:g} s, data {data}, "
              f"load average {os.getloadavg()[0]:.1f}")

        # 1 -------------------------------------------------------------
        c.submit(noops("warm-up", 50))  # sandboxes start on first use
        c.wait("warm-up", timeout=120)
        t0 = time.perf_counter()
        c.submit(noops("plain", n))
        s = c.wait("plain", timeout=300, poll=0.01)
        took = time.perf_counter() - t0
        print(f"[1] {n} noop subtasks: {s.counts} in {took:.2f} s = {n / took:.0f} tasks/s; "
              f"completed twice: {completed_twice(data, 'plain')}")

        # 2 -------------------------------------------------------------
        c.submit(noops("kill-worker", n))
        while not (victim_held := held_by(data, "worker-a", "kill-worker")):
            time.sleep(0.002)
        workers["worker-a"].kill()
        killed_at = time.monotonic()
        workers["worker-a"].wait()
        victim_held = held_by(data, "worker-a", "kill-worker")
        pending = set(victim_held)
        while pending:
            done = {x.subtask_id for x in c.status("kill-worker") if x.state == "completed"}
            pending -= done
            time.sleep(0.05)
        recovered = time.monotonic() - killed_at
        s = c.wait("kill-worker", timeout=300)
        states = {x.subtask_id: x for x in c.status("kill-worker")}
        on_b = sum(1 for sid in victim_held if states[sid].node_name == "worker-b")
        print(f"[2] kill -9 worker-a holding {len(victim_held)} leases: those finished on worker-b ({on_b}/"
              f"{len(victim_held)}) {recovered:.2f} s after the kill (lease ttl {ttl:g} s); all: {s.counts}; "
              f"completed twice: {completed_twice(data, 'kill-worker')}")
        workers["worker-a"] = start_worker(address, "worker-a", tmp)

        # 3 -------------------------------------------------------------
        while len([x for x in c.nodes() if x.status != "offline"]) < 2:
            time.sleep(0.1)
        node_ids = sorted(x.node_id for x in c.nodes() if x.status != "offline")
        c.submit(noops("kill-pool", n))
        while (c.summary("kill-pool").counts.get("completed", 0)) < n // 4:
            time.sleep(0.005)
        pool.kill()
        pool.wait()
        with db(data) as conn:
            done_at_kill = conn.execute("SELECT count(*) FROM subtasks WHERE task_id='kill-pool' "
                                        "AND state='completed'").fetchone()[0]
        time.sleep(1.0)
        restarted = time.monotonic()
        pool = start_pool(data, port, ttl)
        s = c.wait("kill-pool", timeout=300)
        took = time.monotonic() - restarted
        online = sorted(x.node_id for x in c.nodes() if x.status != "offline")
        print(f"[3] kill -9 node pool with {done_at_kill}/{n} done, restart on the same data dir: {s.counts} "
              f"{took:.2f} s after the restart; total {s.total}; completed twice: "
              f"{completed_twice(data, 'kill-pool')}; workers reconnected as the same nodes: {online == node_ids}")

        # 4 -------------------------------------------------------------
        codes = []
        for token in ("", "wrong"):
            try:
                NodePoolClient(address, token, max_retries=0).nodes()
            except NodePoolError as exc:
                codes.append(exc.code.name)
        r1 = c.call(c.nodes_stub.Register, pb.RegisterRequest(name="probe-1", cores=1))
        r2 = c.call(c.nodes_stub.Register, pb.RegisterRequest(name="probe-2", cores=1))
        p1, p2 = (NodePoolClient(address, r.node_token, max_retries=0) for r in (r1, r2))
        for w in workers.values():  # keep the probe's subtask away from real workers
            w.terminate()
            w.wait()
        c.submit([SubtaskSpec("auth-0", "auth", "noop")])
        lease = p1.call(p1.worker_stub.Lease, pb.LeaseRequest(max=1, wait_s=2)).leases[0]
        try:
            p2.call(p2.worker_stub.Complete, pb.CompleteRequest(outcomes=[pb.Outcome(lease_id=lease.lease_id, ok=True)]))
        except NodePoolError as exc:
            codes.append(exc.code.name)
        print(f"[4] no token: {codes[0]}; wrong token: {codes[1]}; another worker's lease: {codes[2]}")
    finally:
        for w in workers.values():
            if w.poll() is None:
                w.terminate()
        for w in workers.values():
            w.wait(30)
        pool.terminate()
        pool.wait(30)
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
