"""``GET /api/nodes``: the node list and cluster totals (503 with the reason, at
once, while the node pool is unreachable)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse

from hivemind_core.api.common import blocking, endpoint, json_error, jsonable, principal, runtime
from hivemind_core.client import NodePoolUnavailable
from hivemind_core.monitoring.health import UI_CALL, pool_problem
from hivemind_core.monitoring.nodestats import cluster_totals


@endpoint
async def list_nodes(request: Request) -> JSONResponse:
    await principal(request)  # every role may look at the nodes
    rt = runtime()
    try:
        nodes = await blocking(rt.client.nodes, **UI_CALL)
    except NodePoolUnavailable as exc:
        return json_error(503, pool_problem(exc, rt.settings))
    return JSONResponse({"nodes": jsonable(nodes), "totals": jsonable(cluster_totals(nodes)), "timestamp": time.time()})
