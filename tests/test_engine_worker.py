"""The worker's sandbox (real child processes) and the worker process against a real node pool."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from hivemind_core.client import NodePoolClient, SubtaskSpec
from hivemind_core.nodepool.server import NodePoolServer
from hivemind_core.worker.sandbox import Sandbox, SandboxJob
from tests.engine_support import TOKEN, spawn_worker, start_server, stop_processes, wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    monkeypatch.setenv("HIVEMIND_CLUSTER_TOKEN", "must-not-leak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "must-not-leak-either")
    sb = Sandbox(tmp_path / "slot")
    try:
        yield sb
    finally:
        sb.close()


def job(op: str, params: dict | None = None, timeout_s: float = 30, memory_mb: int = 512, sid: str = "s") -> SandboxJob:
    return SandboxJob(subtask_id=sid, task_id="t", operation=op, params=json.dumps(params or {}).encode(),
                      input_path=None, timeout_s=timeout_s, memory_mb=memory_mb)


def test_sandbox_is_reused_and_returns_results(sandbox: Sandbox) -> None:
    pids = set()
    for i in range(20):
        result = sandbox.run(job("noop", {"i": i}, sid=f"s{i}"))
        assert result.ok and json.loads(result.data) == {"i": i}
        pids.add(sandbox.pid)
        sandbox.clean()
    assert len(pids) == 1  # one child process for all of them


def test_sandbox_environment_is_scrubbed_and_scratch_is_private(sandbox: Sandbox) -> None:
    first = json.loads(sandbox.run(job("sandbox_info", memory_mb=256)).data)
    assert "HIVEMIND_CLUSTER_TOKEN" not in first["env"] and "AWS_SECRET_ACCESS_KEY" not in first["env"]
    assert set(first["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE",
                                 "PYTHONUNBUFFERED", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                 "ARROW_NUM_THREADS", "MALLOC_ARENA_MAX", "HIVEMIND_SANDBOX_PARENT", "LC_CTYPE"}
    assert first["cwd"] == first["scratch_dir"] == str(sandbox.scratch)
    assert first["rlimit_as"] > 0  # a memory limit is in force while the operation runs
    (sandbox.scratch / "left-behind.csv").write_text("x")
    sandbox.clean()
    second = json.loads(sandbox.run(job("sandbox_info")).data)
    assert second["scratch_entries"] == []


def test_operation_failure_comes_back_with_its_traceback(sandbox: Sandbox) -> None:
    result = sandbox.run(job("fail", {"message": "column 'x' missing"}))
    assert result.status == "error" and not result.retryable
    assert "Traceback" in result.message and "RuntimeError: column 'x' missing" in result.message
    assert sandbox.run(job("noop")).ok  # the same child carries on


def test_time_limit_kills_and_replaces_the_child(sandbox: Sandbox) -> None:
    assert sandbox.run(job("noop")).ok
    before = sandbox.pid
    result = sandbox.run(job("sleep", {"seconds": 30}, timeout_s=0.5))
    assert result.status == "timeout" and result.message.startswith("time limit of 0.5 s exceeded")
    assert not psutil.pid_exists(before) or psutil.Process(before).status() == psutil.STATUS_ZOMBIE
    assert sandbox.run(job("noop")).ok and sandbox.pid != before


def test_memory_overrun_is_a_plain_message(sandbox: Sandbox) -> None:
    result = sandbox.run(job("allocate", {"mb": 1024}, memory_mb=128))
    assert result.status == "memory"
    assert "exceeded its memory limit of 128 MB" in result.message and "Traceback" not in result.message
    assert json.loads(sandbox.run(job("allocate", {"mb": 32}, memory_mb=256)).data) == 32 * 1024 * 1024


def test_cancel_stops_a_running_subtask(sandbox: Sandbox) -> None:
    import threading

    threading.Timer(0.5, sandbox.cancel).start()
    t0 = time.monotonic()
    assert sandbox.run(job("sleep", {"seconds": 30})).status == "cancelled"
    assert time.monotonic() - t0 < 20


# ---------------------------------------------------------------- worker process

@pytest.fixture
def pool(tmp_path: Path) -> Iterator[NodePoolServer]:
    server = start_server(tmp_path / "pool", lease_ttl_s=3.0, heartbeat_interval_s=0.5)
    try:
        yield server
    finally:
        server.stop(0)


def test_worker_process_runs_work_and_reports_failures(pool: NodePoolServer, tmp_path: Path) -> None:
    worker = spawn_worker(pool.address, "w1", tmp_path / "w1.log", slots=2)
    try:
        with NodePoolClient(pool.address, TOKEN, max_retries=0) as c:
            specs = [SubtaskSpec(f"ok-{i}", "t", "noop", params=f"r{i}".encode()) for i in range(50)]
            # the failing ones in tasks of their own: a failure stops the rest of its task (fail fast)
            specs.append(SubtaskSpec("bad", "t-bad", "fail", params=b'{"message": "no such column: carrier"}'))
            specs.append(SubtaskSpec("slow", "t-slow", "sleep", params=b'{"seconds": 5}', timeout_s=0.5))
            c.submit(specs)
            for task in ("t", "t-bad", "t-slow"):
                c.wait(task, timeout=60)
            states = {s.subtask_id: s for task in ("t", "t-bad", "t-slow") for s in c.status(task)}
            assert all(states[f"ok-{i}"].state == "completed" for i in range(50))
            for i in (0, 49):
                assert c.get_blob(states[f"ok-{i}"].result_blob) == f"r{i}".encode()
            assert states["bad"].state == "failed" and states["bad"].attempts == 1
            assert "RuntimeError: no such column: carrier" in states["bad"].error
            assert states["slow"].state == "failed" and "time limit of 0.5 s exceeded" in states["slow"].error
            assert states["slow"].attempts == 1   # a time-out is not retried: it would time out again
            [node] = c.nodes()
            assert (node.name, node.slots, node.cores) == ("w1", 2, psutil.cpu_count())
            wait_until(lambda: c.node_history(node.node_id, since=0), 10, "heartbeats with metrics")
    finally:
        stop_processes(worker)


def test_sigterm_releases_leases_and_exits(pool: NodePoolServer, tmp_path: Path) -> None:
    worker = spawn_worker(pool.address, "w1", tmp_path / "w1.log")
    try:
        with NodePoolClient(pool.address, TOKEN, max_retries=0) as c:
            c.submit([SubtaskSpec(f"s{i}", "t", "sleep", params=b'{"seconds": 0.3}') for i in range(40)])
            wait_until(lambda: c.summary("t").counts.get("completed", 0) >= 3, 30, "some work done")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0
            counts = c.summary("t").counts
            # nothing is left held by the worker that left: no leases wait for expiry
            assert counts.get("assigned", 0) == counts.get("running", 0) == 0
            assert counts.get("completed", 0) + counts.get("pending", 0) == 40
            assert all(s.attempts == (1 if s.state == "completed" else 0) for s in c.status("t"))
    finally:
        stop_processes(worker)
