"""Host and process metrics from psutil (worker heartbeats, the dashboard,
``/api/system/status``)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psutil


class NetworkRate:
    """Network bytes/s in and out since the previous call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = psutil.net_io_counters()
        self._last_t = time.monotonic()

    def sample(self) -> tuple[float, float]:
        with self._lock:
            now, counters = time.monotonic(), psutil.net_io_counters()
            dt = max(now - self._last_t, 1e-6)
            rx = max(0, counters.bytes_recv - self._last.bytes_recv) / dt
            tx = max(0, counters.bytes_sent - self._last.bytes_sent) / dt
            self._last, self._last_t = counters, now
            return rx, tx


_net = NetworkRate()


def system_metrics(disk_path: str = "/") -> dict[str, Any]:
    """CPU %, memory, disk usage of ``disk_path``, network counters and rates, timestamp."""
    vm = psutil.virtual_memory()
    disk = psutil.disk_usage(disk_path)
    net = psutil.net_io_counters()
    rx, tx = _net.sample()
    return {
        "timestamp": time.time(),
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cpu_count": psutil.cpu_count() or 1,
        "memory_total": vm.total,
        "memory_used": vm.used,
        "memory_percent": vm.percent,
        "disk_total": disk.total,
        "disk_free": disk.free,
        "disk_percent": disk.percent,
        "net_bytes_sent": net.bytes_sent,
        "net_bytes_recv": net.bytes_recv,
        "net_in_bps": rx,
        "net_out_bps": tx,
    }


def process_metrics(pid: int | None = None) -> dict[str, Any]:
    """CPU, memory, threads and connections of a process (default: this one)."""
    proc = psutil.Process(pid or os.getpid())
    with proc.oneshot():
        mem = proc.memory_info()
        try:
            connections = len(proc.net_connections())
        except (psutil.AccessDenied, AttributeError):
            connections = 0
        return {
            "pid": proc.pid,
            "cpu_percent": proc.cpu_percent(interval=None),
            "memory_rss": mem.rss,
            "memory_vms": mem.vms,
            "threads": proc.num_threads(),
            "connections": connections,
        }
