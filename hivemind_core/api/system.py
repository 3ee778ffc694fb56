"""``GET /api/system/status``: this host's metrics, health, task counts, alerts."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from hivemind_core.api.common import blocking, endpoint, jsonable, principal, runtime
from hivemind_core.principal import Principal
from hivemind_core.monitoring.system_status import system_status


@endpoint
async def status(request: Request) -> JSONResponse:
    who: Principal = await principal(request)
    rt = runtime()
    return JSONResponse(jsonable(await blocking(system_status, rt, who)))
