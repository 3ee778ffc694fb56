"""Node identity, running counts of dead nodes and node retention, on real node
pools (in-process gRPC servers and ``python -m hivemind_core.nodepool``
processes) with real worker processes and the embedded cluster."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from hivemind_core.client import NodePoolClient, NodePoolError, SubtaskSpec
from hivemind_core.cluster import EmbeddedCluster
from hivemind_core.nodepool.identity import ADOPTED, NEW, RESUMED, Claim, peer_host
from hivemind_core.nodepool.server import NodePoolServer
from hivemind_core.nodepool.store import NodeRecord, Store, hash_token
from hivemind_core.proto import nodepool_pb2 as pb
from tests.engine_support import (TOKEN, endpoint_address, free_port, lease, pool_db, register, spawn_pool,
                                  spawn_worker, start_server, stop_processes, wait_until)

pytestmark = pytest.mark.timeout(180)


def sleeps(task: str, n: int, seconds: float, max_attempts: int = 5) -> list[SubtaskSpec]:
    params = json.dumps({"seconds": seconds}).encode()
    return [SubtaskSpec(f"{task}-{i}", task, "sleep", params=params, max_attempts=max_attempts) for i in range(n)]


def beat(node: NodePoolClient, running: int = 0) -> None:
    node.call(node.nodes_stub.Heartbeat, pb.HeartbeatRequest(metrics=pb.Metrics(cpu_percent=5.0, running=running)))


def register_as(client: NodePoolClient, name: str, node_id: str = "", node_token: str = "",
                fresh: bool = False) -> pb.RegisterReply:
    return client.call(client.nodes_stub.Register, pb.RegisterRequest(
        name=name, cores=2, memory_mb=4096, slots=1, node_id=node_id, node_token=node_token, fresh_process=fresh))


def ended_leases(data_dir: Path, subtask_ids: list[str]) -> list[dict]:
    """The ended leases of these subtasks, from the pool's own SQLite file."""
    with pool_db(data_dir) as db:
        rows = db.execute(f"SELECT * FROM leases WHERE ended_at IS NOT NULL AND subtask_id IN "
                          f"({','.join('?' * len(subtask_ids))}) ORDER BY subtask_id, attempt", subtask_ids).fetchall()
    return [dict(r) for r in rows]


def by_name(client: NodePoolClient) -> dict[str, list]:
    nodes: dict[str, list] = {}
    for n in client.nodes():
        nodes.setdefault(n.name, []).append(n)
    return nodes


@pytest.fixture
def quick_pool(tmp_path: Path) -> Iterator[NodePoolServer]:
    """A node pool that calls a node offline after 0.4 s of silence."""
    server = start_server(tmp_path / "pool", lease_ttl_s=30.0, heartbeat_interval_s=0.1, offline_after_s=0.4)
    try:
        yield server
    finally:
        server.stop(0)


# ---------------------------------------------------------------- identity

def test_peer_host_is_the_address_the_pool_saw() -> None:
    assert peer_host("ipv4:10.0.0.7:5123") == "10.0.0.7"
    assert peer_host("ipv6:[::1]:5123") == "::1"
    assert peer_host("unix:/tmp/sock") == ""


def test_credentials_are_the_identity_and_a_name_alone_takes_nothing_live(quick_pool: NodePoolServer) -> None:
    with NodePoolClient(quick_pool.address, TOKEN, max_retries=0) as c:
        first = register_as(c, "w")
        assert first.identity == NEW
        again = register_as(c, "w", first.node_id, first.node_token)
        assert (again.identity, again.node_id, again.node_token) == (RESUMED, first.node_id, first.node_token)
        # same name, same host, wrong token, while the node is alive: a separate node
        intruder = register_as(c, "w", first.node_id, "guessed-token")
        assert intruder.identity == NEW and intruder.node_id != first.node_id
        with NodePoolClient(c.address, first.node_token, max_retries=0) as owner:
            beat(owner)  # the real node's token still works
        assert sorted(n.node_id for n in c.nodes()) == sorted([first.node_id, intruder.node_id])


def test_an_offline_node_is_taken_over_only_from_its_own_host(tmp_path: Path) -> None:
    """The same-host rule on the real store (a second machine cannot be faked over loopback)."""
    store = Store(tmp_path / "nodepool.db")
    try:
        record = NodeRecord(node_id="node-new", name="lab-pc-3")
        first, token = store.register(record, Claim("lab-pc-3", "10.0.0.7"), now=1000.0, offline_after_s=10,
                                      new_token="t1")
        assert (first.how, first.node_id, token) == (NEW, "node-new", "t1")
        elsewhere, _ = store.register(NodeRecord(node_id="node-other", name="lab-pc-3"),
                                      Claim("lab-pc-3", "10.0.0.99"), now=2000.0, offline_after_s=10, new_token="t2")
        assert (elsewhere.how, elsewhere.node_id) == (NEW, "node-other")   # offline, but another machine
        alive, _ = store.register(NodeRecord(node_id="node-third", name="lab-pc-3"),
                                  Claim("lab-pc-3", "10.0.0.99"), now=2005.0, offline_after_s=10, new_token="t3")
        assert (alive.how, alive.node_id) == (NEW, "node-third")           # node-other is still online
        back, token = store.register(NodeRecord(node_id="node-unused", name="lab-pc-3"),
                                     Claim("lab-pc-3", "10.0.0.7"), now=3000.0, offline_after_s=10, new_token="t4")
        assert (back.how, back.node_id, token) == (ADOPTED, "node-new", "t4")
        hashes = store.node_token_hashes()
        assert len(hashes) == 3 and hash_token("t1") not in hashes and hash_token("t4") in hashes
        assert sorted(n["node_id"] for n in store.list_nodes()) == ["node-new", "node-other", "node-third"]
    finally:
        store.close()


def test_worker_restart_is_the_same_node_and_requeues_what_it_held(tmp_path: Path) -> None:
    """kill -9, restart on the same work dir: same node id, no duplicate, and the leases the
    dead process held are requeued at once (the lease TTL is far longer than the test)."""
    data, port = tmp_path / "pool", free_port()
    pool = spawn_pool(data, port, lease_ttl=120.0, heartbeat=0.5)
    address = endpoint_address(data)
    work = tmp_path / "work-w"
    worker = spawn_worker(address, "w", tmp_path / "w1.log", extra=("--work-dir", str(work)))
    other = None
    try:
        with NodePoolClient(address, TOKEN, max_retries=0) as c:
            [node] = wait_until(lambda: c.nodes(), 30, "the worker to register")
            ident = work / "node-identity.json"
            assert stat.S_IMODE(ident.stat().st_mode) == 0o600
            saved = json.loads(ident.read_text())
            assert saved["node_id"] == node.node_id and saved["node_token"] and TOKEN not in ident.read_text()
            c.submit(sleeps("t", 2, 2.0))
            wait_until(lambda: any(s.state == "running" for s in c.status("t")), 30, "a subtask to run")
            worker.kill()
            worker.wait()
            worker = spawn_worker(address, "w", tmp_path / "w2.log", extra=("--work-dir", str(work)))
            assert c.wait("t", timeout=60).counts == {"completed": 2}
            [again] = c.nodes()
            assert again.node_id == node.node_id and again.registered_at == node.registered_at
            lost = [s.subtask_id for s in c.status("t") if s.attempts == 2]
            ended = ended_leases(data, lost)
            # voided when the new process registered, long before their 120 s expiry
            assert lost and [(r["subtask_id"], r["attempt"], r["outcome"]) for r in ended] == [
                x for sid in lost for x in ((sid, 1, "expired"), (sid, 2, "completed"))]
            assert all(r["ended_at"] < r["expires_at"] - 60 for r in ended if r["outcome"] == "expired")
            # a second worker of the same name without the identity, while "w" is alive: its own node
            other = spawn_worker(address, "w", tmp_path / "w3.log")
            wait_until(lambda: len(c.nodes()) == 2, 30, "the second worker to register")
            assert {n.node_id for n in c.nodes()} >= {node.node_id}
    finally:
        stop_processes(worker, other, pool)


def test_embedded_cluster_restarts_keep_their_nodes(tmp_path: Path) -> None:
    """Start, stop, start, stop, start on one data dir: the same two nodes every time."""
    data = tmp_path / "embedded"
    seen: list[dict[str, str]] = []
    for round_ in range(3):
        with EmbeddedCluster(data, workers=2, lease_ttl_s=5, heartbeat_interval_s=0.5,
                             log_level="WARNING") as cluster, cluster.client(max_retries=0) as c:
            c.submit([SubtaskSpec(f"r{round_}-{i}", f"r{round_}", "noop") for i in range(20)])
            assert c.wait(f"r{round_}", timeout=60).counts == {"completed": 20}
            nodes = c.nodes()
            assert sorted(n.name for n in nodes) == ["local-1", "local-2"]       # no duplicates, none offline
            assert all(n.status != "offline" for n in nodes)
            seen.append({n.name: n.node_id for n in nodes})
            for i in (1, 2):
                assert stat.S_IMODE(cluster.identity_file(i).stat().st_mode) == 0o600
    assert seen[0] == seen[1] == seen[2]
    with pool_db(data) as db:
        assert db.execute("SELECT count(*) FROM nodes").fetchone()[0] == 2


# ---------------------------------------------------------------- running count of a dead node

def test_offline_node_counts_only_leases_it_still_holds(quick_pool: NodePoolServer) -> None:
    with NodePoolClient(quick_pool.address, TOKEN, max_retries=0) as c:
        node_id, node = register(c, "dying", slots=2)
        c.submit(sleeps("t", 2, 60.0))
        held = lease(node, 2)
        node.call(node.worker_stub.Renew, pb.RenewRequest(
            lease_ids=[x.lease_id for x in held],
            started=[pb.Started(lease_id=x.lease_id, started_at=time.time()) for x in held]))
        beat(node, running=2)
        assert c.nodes()[0].running == 2
        wait_until(lambda: c.nodes()[0].status == "offline", 10, "the silent node to go offline")
        assert c.nodes()[0].running == 2            # the pool still counts its two unexpired leases
        node.call(node.worker_stub.Complete, pb.CompleteRequest(outcomes=[
            pb.Outcome(lease_id=held[0].lease_id, ok=True, result=b"x")]))
        assert c.nodes()[0].running == 1
        quick_pool.store.expire_leases(time.time() + 60)   # the second lease runs out
        [info] = c.nodes()
        assert (info.status, info.running) == ("offline", 0)
        assert [s.state for s in c.status("t")] == ["completed", "pending"]
        node.close()


def test_worker_killed_holding_leases_shows_running_zero_after_expiry(tmp_path: Path) -> None:
    data = tmp_path / "pool"
    pool = spawn_pool(data, free_port(), lease_ttl=3.0, heartbeat=0.5)
    address = endpoint_address(data)
    worker = spawn_worker(address, "victim", tmp_path / "victim.log", slots=2)
    try:
        with NodePoolClient(address, TOKEN, max_retries=0) as c:
            wait_until(lambda: c.nodes(), 30, "the worker to register")
            c.submit(sleeps("t", 2, 120.0))
            wait_until(lambda: c.nodes()[0].running == 2, 30, "the worker to report both subtasks running")
            worker.kill()  # kill -9
            worker.wait()
            wait_until(lambda: [s.state for s in c.status("t")] == ["pending", "pending"], 30,
                       "the dead worker's leases to expire")
            [victim] = c.nodes()
            assert (victim.status, victim.running) == ("offline", 0)
            assert all(s.attempts == 1 for s in c.status("t"))
            assert [r["outcome"] for r in ended_leases(data, ["t-0", "t-1"])] == ["expired", "expired"]
            with pool_db(data) as db:  # its last heartbeat still said 2: the list does not repeat it
                assert db.execute("SELECT running FROM nodes").fetchone()[0] == 2
    finally:
        stop_processes(worker, pool)


# ---------------------------------------------------------------- retention

def test_nodes_offline_past_the_retention_are_forgotten_with_their_history(tmp_path: Path) -> None:
    server = start_server(tmp_path / "pool", lease_ttl_s=30.0, heartbeat_interval_s=0.1, offline_after_s=0.3,
                          node_retention_s=1.0)
    try:
        with NodePoolClient(server.address, TOKEN, max_retries=0) as c:
            live_id, live = register(c, "live")
            gone_id, gone = register(c, "gone")
            busy_id, busy = register(c, "busy")
            for node in (live, gone, busy):
                beat(node)
            c.submit(sleeps("t", 1, 60.0))
            assert len(lease(busy, 1)) == 1

            def gone_is_forgotten() -> bool:
                beat(live)
                return "gone" not in by_name(c)

            wait_until(gone_is_forgotten, 20, "the silent node to be forgotten")
            assert sorted(by_name(c)) == ["busy", "live"]       # silent as long, but holds a lease
            assert len(c.node_history(live_id, since=0)) >= 2
            with pytest.raises(NodePoolError) as info:
                c.node_history(gone_id, since=0)
            assert info.value.code == grpc.StatusCode.NOT_FOUND
            with pytest.raises(NodePoolError) as info:
                beat(gone)                                      # its node token is dead
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
            with pool_db(tmp_path / "pool") as db:
                assert db.execute("SELECT count(*) FROM metrics WHERE node_id=?", (gone_id,)).fetchone()[0] == 0
                assert db.execute("SELECT count(*) FROM metrics WHERE node_id=?", (busy_id,)).fetchone()[0] == 1

            server.store.expire_leases(time.time() + 60)        # its lease ends: now it goes too

            def busy_is_forgotten() -> bool:
                beat(live)
                return sorted(by_name(c)) == ["live"]

            wait_until(busy_is_forgotten, 20, "the node whose lease ended to be forgotten")
        for node in (live, gone, busy):
            node.close()
    finally:
        server.stop(0)


def test_node_retention_flag_on_the_pool_process(tmp_path: Path) -> None:
    """``--node-retention 2``: a worker that stopped is gone from the list; a running one stays."""
    data = tmp_path / "pool"
    pool = spawn_pool(data, free_port(), lease_ttl=3.0, heartbeat=0.5, extra=("--node-retention", "2"))
    address = endpoint_address(data)
    keep = spawn_worker(address, "keep", tmp_path / "keep.log")
    leave = spawn_worker(address, "leave", tmp_path / "leave.log")
    try:
        with NodePoolClient(address, TOKEN, max_retries=0) as c:
            wait_until(lambda: sorted(by_name(c)) == ["keep", "leave"], 30, "both workers to register")
            leave_id = by_name(c)["leave"][0].node_id
            stop_processes(leave)                                # SIGTERM: a clean exit
            assert leave.returncode == 0
            wait_until(lambda: sorted(by_name(c)) == ["keep"], 30, "the stopped worker to be forgotten")
            with pool_db(data) as db:
                assert db.execute("SELECT count(*) FROM metrics WHERE node_id=?", (leave_id,)).fetchone()[0] == 0
            assert by_name(c)["keep"][0].status != "offline"
    finally:
        stop_processes(keep, leave, pool)


def test_identity_file_is_shown_only_to_its_own_cluster(tmp_path: Path) -> None:
    from hivemind_core.worker.identity_file import IdentityFile, IdentityInUse

    path = tmp_path / "id" / "node-identity.json"
    mine = IdentityFile(path, "cluster-a")
    assert mine.acquire(wait_s=0)
    mine.save("node-1", "secret-1", "w")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert mine.load() == ("node-1", "secret-1")
    assert IdentityFile(path, "cluster-b").load() == ("", "")   # another cluster's pool never sees it
    with pytest.raises(IdentityInUse):                          # a second holder in this process: refused
        IdentityFile(path, "cluster-a").acquire(wait_s=0.3)
    mine.release()
    other = IdentityFile(path, "cluster-a")
    assert other.acquire(wait_s=0)
    other.release()
    assert os.path.exists(path)
