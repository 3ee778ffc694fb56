"""``GET /health``: 200 ``healthy`` when the node pool and the database answer,
else 503 ``unhealthy`` with the reasons — within seconds also while the pool is down. No token needed (load balancers,
systemd, uptime checks)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from hivemind_core import __version__
from hivemind_core.api.common import blocking, endpoint
from hivemind_core.db import get_engine
from hivemind_core.monitoring.health import HealthReport, check_health
from hivemind_core.runtime import current_runtime


def _report() -> HealthReport:
    rt = current_runtime()
    if rt is None:
        return check_health(None, get_engine())
    return check_health(rt.client, rt.engine, settings=rt.settings)


@endpoint
async def health(request: Request) -> JSONResponse:
    report = await blocking(_report)
    workers = {"online": report.workers_online, "busy": report.workers_busy, "offline": report.workers_offline}
    if report.healthy:
        return JSONResponse({"status": "healthy", "timestamp": report.timestamp, "version": __version__,
                             "workers": workers})
    return JSONResponse({"status": "unhealthy", "error": "; ".join(report.reasons()), "reasons": report.reasons(),
                         "timestamp": report.timestamp, "version": __version__, "workers": workers},
                        status_code=503)
