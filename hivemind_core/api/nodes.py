"""``GET /api/nodes``: the node list and cluster totals."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse

from hivemind_core.api.common import blocking, endpoint, jsonable, principal, runtime
from hivemind_core.monitoring.nodestats import cluster_totals


@endpoint
async def list_nodes(request: Request) -> JSONResponse:
    await principal(request)  # every role may look at the nodes
    nodes = await blocking(runtime().client.nodes)
    return JSONResponse({"nodes": jsonable(nodes), "totals": jsonable(cluster_totals(nodes)), "timestamp": time.time()})
