"""The node pool over real gRPC on 127.0.0.1: auth, queue order, resources,
idempotency, leases, cancellation, blobs, node history."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from hivemind_core.client import NodePoolClient, NodePoolError, NodePoolUnavailable, SubtaskSpec
from hivemind_core.nodepool.auth import cluster_token_for
from hivemind_core.nodepool.blobs import CHUNK_SIZE
from hivemind_core.nodepool.server import NodePoolServer
from hivemind_core.nodepool.store import RetentionPolicy, Store
from hivemind_core.proto import nodepool_pb2 as pb
from tests.engine_support import TOKEN, complete, lease, register, start_server, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[NodePoolServer]:
    server = start_server(tmp_path / "pool", lease_ttl_s=30.0)
    try:
        yield server
    finally:
        server.stop(0)


@pytest.fixture
def client(pool: NodePoolServer) -> Iterator[NodePoolClient]:
    with NodePoolClient(pool.address, TOKEN, max_retries=0) as c:
        yield c


def specs(task: str, n: int, **kw: object) -> list[SubtaskSpec]:
    return [SubtaskSpec(f"{task}-{i}", task, "noop", params=str(i).encode(), **kw) for i in range(n)]


# ---------------------------------------------------------------- auth

def _code(fn) -> grpc.StatusCode:  # noqa: ANN001
    with pytest.raises(NodePoolError) as info:
        fn()
    return info.value.code


def test_calls_without_or_with_a_wrong_token_are_unauthenticated(pool: NodePoolServer) -> None:
    for token in ("", "wrong-token"):
        with NodePoolClient(pool.address, token, max_retries=0) as c:
            assert _code(lambda: c.submit(specs("t", 1))) == grpc.StatusCode.UNAUTHENTICATED
            assert _code(lambda: c.nodes()) == grpc.StatusCode.UNAUTHENTICATED
            assert _code(lambda: c.put_blob(b"x")) == grpc.StatusCode.UNAUTHENTICATED
            c.ping()  # grpc.health.v1 needs no token


def test_a_worker_cannot_touch_another_workers_lease(client: NodePoolClient) -> None:
    _, node_a = register(client, "a")
    _, node_b = register(client, "b")
    client.submit(specs("t", 2))
    held_by_a = lease(node_a, 1)
    assert len(held_by_a) == 1
    for call in (
        lambda: complete(node_b, held_by_a),
        lambda: node_b.call(node_b.worker_stub.Renew, pb.RenewRequest(lease_ids=[held_by_a[0].lease_id])),
        lambda: node_b.call(node_b.worker_stub.Release, pb.ReleaseRequest(
            releases=[pb.Release(lease_id=held_by_a[0].lease_id)])),
    ):
        assert _code(call) == grpc.StatusCode.PERMISSION_DENIED
    assert complete(node_a, held_by_a).accepted == 1  # the owner still can
    assert client.summary("t").counts == {"completed": 1, "pending": 1}


def test_token_kinds_are_limited_to_their_services(client: NodePoolClient) -> None:
    _, node = register(client, "a")
    assert _code(lambda: node.submit(specs("t", 1))) == grpc.StatusCode.PERMISSION_DENIED
    assert _code(lambda: lease(client, 1)) == grpc.StatusCode.PERMISSION_DENIED  # cluster token is no node
    app_token = client.create_token("master-app")
    with NodePoolClient(client.address, app_token, max_retries=0) as app:
        app.submit(specs("t", 1))
        assert app.whoami() == ("client", "master-app")
        assert _code(lambda: app.create_token("x")) == grpc.StatusCode.PERMISSION_DENIED
        assert client.revoke_token("master-app")
        assert _code(lambda: app.summary("t")) == grpc.StatusCode.UNAUTHENTICATED


def test_cluster_token_is_generated_once_with_mode_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIVEMIND_CLUSTER_TOKEN", raising=False)
    first = cluster_token_for(tmp_path)
    path = tmp_path / "secrets" / "cluster_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cluster_token_for(tmp_path) == first and len(first) >= 32
    monkeypatch.setenv("HIVEMIND_CLUSTER_TOKEN", "from-env")
    assert cluster_token_for(tmp_path) == "from-env"


# ---------------------------------------------------------------- queue

def test_higher_priority_first_and_fifo_within_a_priority(client: NodePoolClient) -> None:
    _, node = register(client, "a")
    order = [("low-0", 1), ("high-0", 9), ("mid-0", 5), ("high-1", 9), ("low-1", 1), ("mid-1", 5), ("high-2", 9)]
    for sid, prio in order:  # separate submits: submission order is what FIFO means
        client.submit([SubtaskSpec(sid, "t", "noop", priority=prio)])
    got = [x.subtask_id for x in lease(node, 3)] + [x.subtask_id for x in lease(node, 10)]
    expected = [sid for sid, _ in sorted(order, key=lambda o: -o[1])]  # sorted() is stable: FIFO kept
    assert got == expected


def test_needs_no_node_can_meet_are_refused_at_submit_with_the_reason(client: NodePoolClient) -> None:
    register(client, "small", cores=2, memory_mb=1024)
    register(client, "big-memory", cores=1, memory_mb=8192)
    with pytest.raises(NodePoolError) as info:
        client.submit(specs("ok", 2) + [SubtaskSpec("huge", "t", "noop", cores=2, memory_mb=4096)])
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "huge needs 2 cores and 4096 MB" in str(info.value) and "no node" in str(info.value)
    assert client.list_tasks() == []  # nothing of the refused batch was queued
    client.submit([SubtaskSpec("fits", "t", "noop", cores=1, memory_mb=8000)])
    _, small = register(client, "small-2", cores=2, memory_mb=1024)
    assert lease(small, 5) == []  # 8000 MB does not fit on a 1024 MB node
    with pytest.raises(NodePoolError) as info:
        client.submit([SubtaskSpec("p", "t", "noop", priority=10)])
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and "priority" in str(info.value)


def test_submit_is_idempotent_per_subtask_id(client: NodePoolClient) -> None:
    client.submit(specs("t", 5))
    client.submit(specs("t", 5))
    client.submit(specs("t", 7))  # 2 new ones
    assert client.summary("t").total == 7
    reply = client.call(client.master_stub.Submit, pb.SubmitRequest(subtasks=[pb.SubtaskSpec(
        subtask_id="t-0", task_id="t", operation="noop", priority=5, max_attempts=3, timeout_s=1)]))
    assert (reply.created, reply.existing) == (0, 1)


# ---------------------------------------------------------------- leases

def test_expired_lease_requeues_with_attempt_plus_one_then_fails_with_last_error(tmp_path: Path) -> None:
    server = start_server(tmp_path / "pool", lease_ttl_s=0.3)
    try:
        with NodePoolClient(server.address, TOKEN, max_retries=0) as c:
            node_id, node = register(c, "forgetful")
            c.submit([SubtaskSpec("s", "t", "noop", max_attempts=2)])
            first = lease(node, 1)
            wait_until(lambda: c.status("t")[0].state == "pending", 10, "the first lease to expire")
            assert c.status("t")[0].attempts == 1
            second = lease(node, 1)
            assert second[0].attempt == 2
            state = wait_until(lambda: (s := c.status("t")[0]).state == "failed" and s, 10, "the subtask to fail")
            assert state.attempts == 2 and "lease expired" in state.error and "forgetful" in state.error
            # the results of both lost leases come too late and are discarded
            assert complete(node, first + second).discarded == 2
            assert c.results("t") == {}
    finally:
        server.stop(0)


def test_renewed_lease_does_not_expire_and_operation_failure_keeps_traceback(tmp_path: Path) -> None:
    server = start_server(tmp_path / "pool", lease_ttl_s=0.5)
    try:
        with NodePoolClient(server.address, TOKEN, max_retries=0) as c:
            _, node = register(c, "steady")
            c.submit([SubtaskSpec("s", "t", "noop")])
            held = lease(node, 1)
            for _ in range(6):  # 1.5 s, three lease periods
                time.sleep(0.25)
                reply = node.call(node.worker_stub.Renew, pb.RenewRequest(lease_ids=[held[0].lease_id]))
                assert list(reply.stop_lease_ids) == []
            assert c.status("t")[0].state == "assigned"
            complete(node, held, ok=False, error="Traceback ...\nValueError: bad row 7")
            s = c.status("t")[0]
            assert (s.state, s.attempts) == ("failed", 1) and s.error.endswith("ValueError: bad row 7")
    finally:
        server.stop(0)


def test_cancellation_is_durable_across_restart_and_late_results_are_discarded(tmp_path: Path) -> None:
    data = tmp_path / "pool"
    server = start_server(data)
    try:
        with NodePoolClient(server.address, TOKEN, max_retries=0) as c:
            reply = c.call(c.nodes_stub.Register, pb.RegisterRequest(name="w", cores=2, memory_mb=4096))
            node_token = reply.node_token
            node = NodePoolClient(server.address, node_token, max_retries=0)
            c.submit(specs("t", 4))
            held = lease(node, 2)
            assert c.cancel("t") == 4
            reply = node.call(node.worker_stub.Renew, pb.RenewRequest(lease_ids=[h.lease_id for h in held]))
            assert sorted(reply.stop_lease_ids) == sorted(h.lease_id for h in held)  # holders told to stop
            assert complete(node, held).discarded == 2
    finally:
        server.stop(0)
    server = start_server(data)  # same data dir
    try:
        with NodePoolClient(server.address, TOKEN, max_retries=0) as c:
            assert c.summary("t").counts == {"cancelled": 4}
            c.submit(specs("t", 6))  # a resubmit (same and new ids) of the cancelled task never runs
            assert c.summary("t").counts == {"cancelled": 6}
            node = NodePoolClient(server.address, node_token, max_retries=0)  # node tokens survive restarts
            assert lease(node, 10) == []
            assert c.results("t") == {}
    finally:
        server.stop(0)


def test_completed_results_are_blobs_and_delete_task_removes_them(client: NodePoolClient, pool: NodePoolServer) -> None:
    _, node = register(client, "w")
    data = os.urandom(1000)
    input_sha = client.put_blob(data)
    client.submit([SubtaskSpec("s", "t", "noop", input_blob=input_sha)])
    held = lease(node, 1)
    assert held[0].input_blob == input_sha
    complete(node, held)
    result_sha = client.results("t")["s"]
    assert client.get_blob(result_sha) == b"s" and result_sha == hashlib.sha256(b"s").hexdigest()
    client.submit([SubtaskSpec("other", "t2", "noop", input_blob=input_sha)])  # shares the input
    client.delete_task("t")
    assert [t.task_id for t in client.list_tasks()] == ["t2"]
    assert pool.blobs.exists(input_sha) and not pool.blobs.exists(result_sha)  # still used by t2
    client.delete_task("t2")
    for sha in (input_sha, result_sha):
        assert not pool.blobs.exists(sha)
        with pytest.raises(NodePoolError) as info:
            client.get_blob(sha)
        assert info.value.code == grpc.StatusCode.NOT_FOUND


# ---------------------------------------------------------------- blobs

def test_blob_bigger_than_4_mib_streams_in_1_mib_chunks(client: NodePoolClient, tmp_path: Path) -> None:
    data = os.urandom(9 * 1024 * 1024 + 123)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    sha = client.put_blob(source)
    assert sha == hashlib.sha256(data).hexdigest()
    assert client.put_blob(data) == sha  # same content, same id, stored once
    chunks = list(client.blob_stub.Get(pb.BlobRef(sha256=sha), metadata=client._metadata))  # noqa: SLF001
    assert max(len(c.data) for c in chunks) <= CHUNK_SIZE and len(chunks) == 10
    dest = client.get_blob(sha, tmp_path / "copy.bin")
    assert dest.read_bytes() == data
    assert client.get_blob(sha) == data


def test_blob_put_with_a_wrong_sha_is_rejected(client: NodePoolClient, pool: NodePoolServer) -> None:
    good = b"payload" * 1000
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(grpc.RpcError) as info:
        client.blob_stub.Put(iter([pb.BlobChunk(data=good), pb.BlobChunk(sha256=wrong)]),
                             metadata=client._metadata, timeout=10)  # noqa: SLF001
    assert info.value.code() == grpc.StatusCode.DATA_LOSS
    assert not pool.blobs.exists(hashlib.sha256(good).hexdigest()) and not pool.blobs.exists(wrong)
    with pytest.raises(grpc.RpcError) as info:
        client.blob_stub.Put(iter([pb.BlobChunk(data=b"x" * (CHUNK_SIZE + 1))]),
                             metadata=client._metadata, timeout=10)  # noqa: SLF001
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# ---------------------------------------------------------------- nodes

def test_node_list_status_and_metrics_history(tmp_path: Path) -> None:
    server = start_server(tmp_path / "pool", heartbeat_interval_s=0.2, offline_after_s=0.6)
    try:
        with NodePoolClient(server.address, TOKEN, max_retries=0) as c:
            node_id, node = register(c, "w", slots=1)
            t0 = time.time() - 10  # history up to "now" by default
            for i in range(3):
                node.call(node.nodes_stub.Heartbeat, pb.HeartbeatRequest(metrics=pb.Metrics(
                    timestamp=t0 + i, cpu_percent=10.0 * i, memory_percent=50, disk_percent=70,
                    net_in_bps=100, net_out_bps=200, running=i % 2)))
            [info] = c.nodes()
            assert (info.name, info.status, info.running, info.cpu_percent) == ("w", "online", 0, 20.0)
            history = c.node_history(node_id, since=t0 - 1)
            assert [p.cpu_percent for p in history] == [0.0, 10.0, 20.0]
            assert [p.timestamp for p in c.node_history(node_id, since=t0 + 0.5, until=t0 + 1.5)] == [t0 + 1]
            node.call(node.nodes_stub.Heartbeat, pb.HeartbeatRequest(metrics=pb.Metrics(running=1)))
            assert c.nodes()[0].status == "busy"  # its one slot is running
            wait_until(lambda: c.nodes()[0].status == "offline", 5, "the silent node to go offline")
            with pytest.raises(NodePoolError) as info:
                c.node_history("node-unknown", since=0)
            assert info.value.code == grpc.StatusCode.NOT_FOUND
    finally:
        server.stop(0)


def test_metrics_history_is_downsampled_as_it_ages(tmp_path: Path) -> None:
    from hivemind_core.nodepool.store import NodeRecord

    policy = RetentionPolicy(raw_s=100, mid_bucket_s=10, mid_s=1000, old_bucket_s=100, keep_s=5000)
    store = Store(tmp_path / "db.sqlite", policy)
    store.register_node(NodeRecord("n1", "w"), "tok", now=0)
    now = 10_000.0
    for ts in range(int(now) - 6000, int(now), 2):  # one point every 2 s for 6000 s
        store.heartbeat("n1", {"timestamp": ts, "cpu_percent": ts % 100, "running": 1}, now=ts)
    removed = store.compact_metrics(now)
    points = store.node_history("n1", 0, now)
    ts = [p["ts"] for p in points]
    assert removed > 2500 and ts == sorted(ts)
    assert all(t >= now - policy.keep_s for t in ts)                       # oldest dropped
    raw = [t for t in ts if t >= now - policy.raw_s]
    assert len(raw) == 50                                                   # last 100 s kept raw
    mid = [t for t in ts if now - policy.mid_s <= t < now - policy.raw_s]
    assert 85 <= len(mid) <= 91                                             # ~900 s in 10 s buckets
    old = [t for t in ts if t < now - policy.mid_s]
    assert 38 <= len(old) <= 41                                             # ~4000 s in 100 s buckets
    bucket = [p for p in points if now - policy.mid_s <= p["ts"] < now - policy.raw_s][0]
    lo = bucket["ts"] - 5
    expected = sum(t % 100 for t in range(int(lo), int(lo) + 10, 2)) / 5    # mean of the 5 raw points
    assert bucket["cpu_percent"] == pytest.approx(expected)
    assert store.compact_metrics(now) == 0                                  # idempotent
    store.close()


def test_client_raises_one_clear_error_when_the_pool_is_unreachable(tmp_path: Path) -> None:
    from tests.engine_support import free_port

    with NodePoolClient(f"127.0.0.1:{free_port()}", TOKEN, timeout=2, max_retries=2, backoff=0.01) as c:
        with pytest.raises(NodePoolUnavailable) as info:
            c.summary("t")
        assert "cannot reach the node pool" in str(info.value)
        with pytest.raises(NodePoolUnavailable):
            c.ping()


# ---------------------------------------------------------------- fail fast

def _renew_stops(node: NodePoolClient, held: list[pb.Lease]) -> list[str]:
    return sorted(node.call(node.worker_stub.Renew, pb.RenewRequest(lease_ids=[h.lease_id for h in held])).stop_lease_ids)


def test_a_subtask_failing_for_good_stops_the_rest_of_its_task(client: NodePoolClient) -> None:
    """Fail fast: once a subtask failed (the operation's own error: not retried), nothing more of
    its task starts and the holders of its other leases are told to stop, as on a cancel; other
    tasks are untouched. Each cancelled subtask says which subtask failed."""
    _, node = register(client, "w")
    client.submit(specs("t", 5) + specs("other", 1))
    held = lease(node, 3)                     # t-0, t-1, t-2 (submission order)
    assert [h.subtask_id for h in held] == ["t-0", "t-1", "t-2"]
    assert complete(node, held[:1]).accepted == 1                      # t-0 completes
    assert complete(node, held[1:2], ok=False, error="ValueError: bad row 7").accepted == 1
    by_id = {s.subtask_id: s for s in client.status("t")}
    assert {k: s.state for k, s in by_id.items()} == {
        "t-0": "completed", "t-1": "failed", "t-2": "cancelled", "t-3": "cancelled", "t-4": "cancelled"}
    assert by_id["t-1"].error == "ValueError: bad row 7" and by_id["t-1"].attempts == 1
    for sid in ("t-2", "t-3", "t-4"):
        assert by_id[sid].error == "cancelled: subtask t-1 of the same task failed"
        assert by_id[sid].finished_at
    assert _renew_stops(node, held[2:]) == [held[2].lease_id]           # the running one is stopped
    assert complete(node, held[2:]).discarded == 1                      # and its late result dropped
    assert [x.subtask_id for x in lease(node, 10)] == ["other-0"]       # nothing more of t is handed out
    client.submit(specs("t", 7))                                        # a resubmit of t never runs either
    assert client.summary("t").counts == {"completed": 1, "failed": 1, "cancelled": 5}
    assert client.summary("other").counts == {"assigned": 1}


def test_retryable_failures_stop_the_task_only_once_out_of_attempts(tmp_path: Path) -> None:
    """A failure that may be the machine's (retryable) requeues the subtask and leaves its task
    alone; when the attempts are used up (here by an expired lease) the task is stopped."""
    server = start_server(tmp_path / "pool", lease_ttl_s=0.5)
    try:
        with NodePoolClient(server.address, TOKEN, max_retries=0) as c:
            _, node = register(c, "w")
            c.submit(specs("t", 3, max_attempts=2))
            first = lease(node, 1)
            complete(node, first, ok=False, error="worker crashed", retryable=True)
            assert c.summary("t").counts == {"pending": 3}
            again = lease(node, 1)
            assert again[0].subtask_id == "t-0" and again[0].attempt == 2
            # never renewed: the lease expires, attempts are used up -> t-0 failed, t-1 and t-2 cancelled
            wait_until(lambda: c.summary("t").counts == {"failed": 1, "cancelled": 2}, 10, "the task to stop")
            states = {s.subtask_id: s for s in c.status("t")}
            assert "lease expired" in states["t-0"].error
            assert states["t-2"].error == "cancelled: subtask t-0 of the same task failed"
            assert lease(node, 10) == []
    finally:
        server.stop(0)
