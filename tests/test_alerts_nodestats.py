"""Cluster totals and alerts over node lists and health reports (pure functions
the dashboard, the Nodes page and the REST API share)."""

from __future__ import annotations

from hivemind_core.monitoring.alerts import system_alerts
from hivemind_core.client import MetricPoint, NodeInfo
from hivemind_core.monitoring.health import HealthReport
from hivemind_core.monitoring.nodestats import cluster_totals, history_columns, node_rows

NOW = 1_000_000.0
GIB = 1024 ** 3


def node(name: str, status: str, *, cores: int = 4, running: int = 0, disk: float = 50.0,
         cpu: float = 10.0, beat: float = NOW - 2, host_id: str = "", memory_mb: int = 8192,
         slots: int | None = None, sandbox: str = "landlock ABI 7") -> NodeInfo:
    return NodeInfo(node_id=f"id-{name}", name=name, address=f"{name}.lan", cores=cores, memory_mb=memory_mb,
                    gpu="", labels={"sandbox": sandbox}, version="t", status=status, last_heartbeat=beat, running=running,
                    slots=cores if slots is None else slots, cpu_percent=cpu, memory_percent=40.0, disk_percent=disk,
                    net_in_bps=1.0, net_out_bps=2.0, host_id=host_id)


def healthy() -> HealthReport:
    return HealthReport(node_pool_ok=True, node_pool_error="", database_ok=True, database_error="",
                        workers_online=1, workers_busy=1, workers_offline=1, timestamp=NOW)


HOST_OK = {"disk_total": 100 * GIB, "disk_free": 50 * GIB}


def test_totals_count_only_live_nodes_capacity() -> None:
    nodes = [node("a", "online", cores=4, cpu=20), node("b", "busy", cores=2, running=2, cpu=90),
             node("c", "offline", cores=16, running=0, cpu=0)]
    t = cluster_totals(nodes)
    assert (t.nodes, t.online, t.busy, t.offline) == (3, 1, 1, 1)
    assert (t.cores, t.slots, t.running, t.memory_mb) == (6, 6, 2, 16384)
    assert t.cpu_percent == 55.0
    assert cluster_totals([]).cpu_percent == 0.0
    rows = node_rows(list(reversed(nodes)), NOW)
    assert [r["name"] for r in rows] == ["a", "b", "c"] and rows[0]["last_heartbeat_s_ago"] == 2.0


def test_totals_count_each_host_once_for_cores_and_memory_but_every_worker_for_slots() -> None:
    # three local workers on one 2-core, 23 GiB machine each report the machine; a second
    # machine has one worker; an old worker sent no host id (its own host); one is offline
    nodes = [node(f"local-{i}", "online", cores=2, memory_mb=23 * 1024, slots=1, running=1, cpu=c, host_id="h1")
             for i, c in ((1, 30.0), (2, 50.0), (3, 40.0))]
    nodes += [node("lab", "busy", cores=8, memory_mb=16384, slots=4, running=4, cpu=80.0, host_id="h2"),
              node("old", "online", cores=1, memory_mb=1024, slots=1, cpu=10.0),
              node("gone", "offline", cores=64, memory_mb=1 << 20, host_id="h1")]
    t = cluster_totals(nodes)
    assert (t.nodes, t.live, t.hosts) == (6, 5, 3)
    assert (t.cores, t.memory_mb) == (2 + 8 + 1, 23 * 1024 + 16384 + 1024)
    assert (t.slots, t.running) == (3 + 4 + 1, 3 + 4)
    assert t.cpu_percent == (40.0 + 80.0 + 10.0) / 3   # mean over hosts, each host its workers' mean
    only_local = cluster_totals(nodes[:3])
    assert (only_local.live, only_local.hosts, only_local.cores, only_local.memory_mb) == (3, 1, 2, 23 * 1024)


def test_history_columns_are_time_ordered() -> None:
    pts = [MetricPoint(timestamp=t, cpu_percent=t, memory_percent=1, disk_percent=2, net_in_bps=3, net_out_bps=4,
                       running=0) for t in (3.0, 1.0, 2.0)]
    cols = history_columns(pts)
    assert cols["timestamp"] == [1.0, 2.0, 3.0] and cols["cpu_percent"] == [1.0, 2.0, 3.0]


def test_alerts_for_offline_nodes_failed_tasks_low_disk_and_outages() -> None:
    assert system_alerts(healthy(), [node("a", "online")], {"failed": 0}, HOST_OK, NOW) == []
    alerts = system_alerts(healthy(), [node("a", "offline", beat=NOW - 90), node("b", "online", disk=95)],
                           {"failed": 3}, {"disk_total": 100 * GIB, "disk_free": 5 * GIB}, NOW)
    messages = [a.message for a in alerts]
    assert any("Node a" in m and "offline" in m and "90 s ago" in m for m in messages)
    assert any("Node b" in m and "low on disk" in m for m in messages)
    assert any(m.startswith("3 task(s) failed") for m in messages)
    assert any("This host is low on disk" in m for m in messages)
    down = HealthReport(node_pool_ok=False, node_pool_error="connection refused", database_ok=False,
                        database_error="locked", timestamp=NOW)
    levels = {a.level for a in system_alerts(down, [], {}, HOST_OK, NOW)}
    assert levels == {"error"}
    # 1 GiB free on a small disk is still low
    assert system_alerts(healthy(), [], {}, {"disk_total": 5 * GIB, "disk_free": GIB // 2}, NOW)


def test_alert_for_a_worker_that_runs_user_code_unconfined() -> None:
    alerts = system_alerts(healthy(), [node("old", "online", sandbox="UNCONFINED"), node("new", "online")],
                           {}, HOST_OK, NOW)
    assert [a.level for a in alerts] == ["warning"]
    assert "Node old (old.lan) runs user code unconfined" in alerts[0].message and "Landlock" in alerts[0].message
    # an offline one is already reported as offline
    assert all("unconfined" not in a.message
               for a in system_alerts(healthy(), [node("old", "offline", sandbox="UNCONFINED")], {}, HOST_OK, NOW))
    assert node_rows([node("old", "online", sandbox="UNCONFINED")], NOW)[0]["sandbox"] == "UNCONFINED"
