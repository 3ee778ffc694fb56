"""Watching the system: host metrics (psutil), the health report behind the
dashboard and ``/health``, alerts, cluster totals and node history for the
Nodes page, and the system snapshot of ``/api/system/status``."""
