"""Node pool and workers as separate processes: crash a worker, crash the pool,
and make sure the embedded cluster never leaves processes behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from hivemind_core.client import NodePoolClient, SubtaskSpec
from hivemind_core.cluster import EmbeddedCluster, connect_cluster
from hivemind_core.config import get_settings
from hivemind_core.db import get_engine
from hivemind_core.monitoring.health import check_health
from hivemind_core.monitoring.nodestats import cluster_totals
from tests.engine_support import (ROOT, TOKEN, free_port, pool_db, spawn_pool, spawn_worker, stop_processes,
                                  subprocess_env, wait_until)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def sleeps(task: str, n: int, seconds: float) -> list[SubtaskSpec]:
    params = json.dumps({"seconds": seconds}).encode()
    return [SubtaskSpec(f"{task}-{i:04d}", task, "sleep", params=params, max_attempts=5) for i in range(n)]


def open_leases_by_node(data_dir: Path) -> dict[str, int]:
    with pool_db(data_dir) as db:
        rows = db.execute("SELECT n.name, count(*) FROM leases l JOIN nodes n ON n.node_id = l.node_id "
                          "WHERE l.ended_at IS NULL GROUP BY n.name").fetchall()
    return {name: count for name, count in rows}


def completions_per_subtask(data_dir: Path, task: str) -> dict[str, int]:
    with pool_db(data_dir) as db:
        rows = db.execute("SELECT s.subtask_id, count(l.lease_id) FROM subtasks s LEFT JOIN leases l "
                          "ON l.subtask_id = s.subtask_id AND l.outcome = 'completed' WHERE s.task_id = ? "
                          "GROUP BY s.subtask_id", (task,)).fetchall()
    return {sid: n for sid, n in rows}


def test_worker_killed_holding_leases_its_work_finishes_once_elsewhere(tmp_path: Path) -> None:
    data = tmp_path / "pool"
    pool = spawn_pool(data, free_port(), lease_ttl=2.0)
    address = json.loads((data / "endpoint.json").read_text())["address"]
    a = spawn_worker(address, "victim", tmp_path / "victim.log")
    b = spawn_worker(address, "survivor", tmp_path / "survivor.log")
    try:
        with NodePoolClient(address, TOKEN, max_retries=0) as c:
            wait_until(lambda: len(c.nodes()) == 2, 30, "both workers to register")
            c.submit(sleeps("t", 300, 0.01))
            # the victim has finished some work of its own and holds more when it dies
            wait_until(lambda: open_leases_by_node(data).get("victim", 0) > 0
                       and any(s.node_name == "victim" and s.state == "completed" for s in c.status("t")),
                       60, "the victim to complete work and hold leases")
            a.kill()  # kill -9
            a.wait()
            summary = c.wait("t", timeout=120)
            assert summary.counts == {"completed": 300}
            states = c.status("t")
            assert {s.node_name for s in states} == {"victim", "survivor"}
            expired = [s for s in states if s.attempts > 1]
            assert expired and all(s.node_name == "survivor" for s in expired)  # the lost leases ran again
            assert set(completions_per_subtask(data, "t").values()) == {1}     # every subtask completed once
            results = c.results("t")
            assert len(results) == 300
    finally:
        stop_processes(a, b, pool)


def test_pool_killed_and_restarted_on_its_data_dir_loses_nothing(tmp_path: Path) -> None:
    data, port = tmp_path / "pool", free_port()
    pool = spawn_pool(data, port, lease_ttl=3.0)
    address = f"127.0.0.1:{port}"
    workers = [spawn_worker(address, f"w{i}", tmp_path / f"w{i}.log") for i in range(2)]
    try:
        with NodePoolClient(address, TOKEN, max_retries=0) as c:
            wait_until(lambda: len(c.nodes()) == 2, 30, "both workers to register")
            c.submit(sleeps("t", 400, 0.01))
            wait_until(lambda: c.summary("t").counts.get("completed", 0) >= 50, 60, "work to be under way")
        pool.kill()  # kill -9, mid-run
        pool.wait()
        done_before = sum(1 for n in completions_per_subtask(data, "t").values() if n)
        assert done_before < 400
        pool = spawn_pool(data, port, lease_ttl=3.0)  # same data dir, same address
        with NodePoolClient(address, TOKEN, max_retries=0) as c:
            summary = c.wait("t", timeout=120)
            assert summary.total == 400 and summary.counts == {"completed": 400}
            assert set(completions_per_subtask(data, "t").values()) == {1}
            # the workers came back by themselves: same nodes, heartbeating again
            wait_until(lambda: sorted((n.name, n.status) for n in c.nodes()) == [("w0", "online"), ("w1", "online")],
                       30, "both workers online after the restart")
        assert all(w.poll() is None for w in workers)
    finally:
        stop_processes(*workers, pool)


# ---------------------------------------------------------------- embedded cluster

PARENT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from hivemind_core.client import SubtaskSpec
    from hivemind_core.cluster import EmbeddedCluster
    cluster = EmbeddedCluster(Path(sys.argv[1]), workers=2, lease_ttl_s=3, heartbeat_interval_s=0.5).start()
    with cluster.client() as c:
        c.submit([SubtaskSpec(f"s{i}", "t", "noop") for i in range(10)])
        c.wait("t", timeout=60)
    print(json.dumps({"address": cluster.address}), flush=True)
    time.sleep(600)
""")


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _all_gone(procs: list[psutil.Process]) -> bool:
    alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return not alive


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
def test_embedded_cluster_leaves_no_orphans_when_its_parent_dies(tmp_path: Path, how: signal.Signals) -> None:
    parent_log = tmp_path / "parent.log"
    with open(parent_log, "w") as err:
        parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "pool")], cwd=ROOT,
                                  env=subprocess_env(), stdout=subprocess.PIPE, stderr=err, text=True)
    children: list[psutil.Process] = []
    try:
        assert "address" in json.loads(parent.stdout.readline())
        children = _descendants(parent.pid)
        # the node pool, 2 workers and their sandbox processes
        assert len(children) >= 4, [c.cmdline() for c in children]
        parent.send_signal(how)
        try:
            parent.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the parent did not exit after {how.name}; its log:\n"
                                 + parent_log.read_text()[-4000:]) from None
        wait_until(lambda: _all_gone(children), 30, f"every child to exit after {how.name}")
    finally:
        if parent.poll() is None:
            parent.kill()
        for child in children:
            if child.is_running():
                child.kill()


def test_embedded_cluster_stop_and_health(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVEMIND_WORKERS", "2")
    settings = get_settings()
    me = __import__("os").getpid()
    # other tests in this session may have left their own (cached) clusters running: only
    # the processes this cluster started are ours to watch
    before = {p.pid for p in _descendants(me)}
    client, cluster = connect_cluster(settings)
    assert cluster is not None
    children = [p for p in _descendants(me) if p.pid not in before]
    assert len(children) >= 3, [c.cmdline() for c in children]  # node pool + 2 workers (+ sandboxes)
    try:
        report = check_health(client, get_engine(settings))
        assert report.healthy and report.reasons() == []
        assert (report.workers_online, report.workers_busy, report.workers_offline) == (2, 0, 0)
        again, second = connect_cluster(settings)  # the running one is reused, not a second pool
        assert second is None and again.address == cluster.address
        again.close()
    finally:
        cluster.stop()
    wait_until(lambda: _all_gone(children), 30, "every child to exit after stop()")
    report = check_health(client, get_engine(settings))
    assert not report.healthy and not report.node_pool_ok and report.database_ok
    assert report.reasons()[0].startswith(f"Node pool at {cluster.address} is not reachable: ")
    assert "restarts its embedded node pool" in report.reasons()[0]
    client.close()


def test_embedded_cluster_restarts_a_killed_pool_and_worker(tmp_path: Path) -> None:
    """kill -9 of the embedded node pool: it comes back on the same address and data dir, work queued
    before survives and work submitted afterwards completes; a killed worker comes back as the same node."""
    cluster = EmbeddedCluster(tmp_path / "pool", workers=2, lease_ttl_s=3, heartbeat_interval_s=0.5).start()
    try:
        with cluster.client(max_retries=0) as c:
            nodes = c.nodes()
            # both local workers run on this host: its cores and memory count once
            assert len({n.host_id for n in nodes}) == 1 and nodes[0].host_id
            totals = cluster_totals(nodes)
            assert (totals.live, totals.hosts, totals.slots) == (2, 1, 2)
            assert (totals.cores, totals.memory_mb) == (nodes[0].cores, nodes[0].memory_mb)
            c.submit(sleeps("before", 20, 0.2))
        address, first_pool = cluster.address, cluster.pool_process
        assert first_pool is not None
        first_pool.kill()   # kill -9
        first_pool.wait()
        wait_until(lambda: cluster.pool_process is not first_pool and cluster.restarts.get("nodepool") == 1
                   and psutil.pid_exists(cluster.pool_process.pid), 30, "the supervisor to restart the pool")
        assert cluster.address == address
        with cluster.client(max_retries=8, backoff=0.25) as c:
            c.submit(sleeps("after", 4, 0.01))      # submitted after the kill
            assert c.wait("after", timeout=60).counts == {"completed": 4}
            assert c.wait("before", timeout=60).counts == {"completed": 20}
            old = {n.name: n.node_id for n in c.nodes()}
            victim = cluster.worker_processes[0]
            victim.kill()
            victim.wait()
            wait_until(lambda: cluster.restarts.get("worker-1") == 1, 30, "the supervisor to restart worker 1")
            restarted = cluster.worker_processes[0]
            assert restarted.pid != victim.pid and restarted.poll() is None
            wait_until(lambda: any(n.name == "local-1" and n.status != "offline" and n.registered_at > 0
                                   and n.last_heartbeat > time.time() - 2 for n in c.nodes())
                       and restarted.poll() is None, 30, "local-1 back online")
            assert {n.name: n.node_id for n in c.nodes()} == old   # the same nodes, none added
            c.submit(sleeps("later", 6, 0.01))
            assert c.wait("later", timeout=60).counts == {"completed": 6}
    finally:
        children = [p.pid for p in [cluster.pool_process, *cluster.worker_processes] if p is not None]
        cluster.stop()
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in children)
    assert cluster.restarts == {"nodepool": 1, "worker-1": 1}   # stop() restarts nothing
