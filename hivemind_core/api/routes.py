"""The one routing table of the REST API.

Its last routes catch every other ``/api/...`` request (and other methods on
``/health``): without them the server answers those with the UI's HTML page and
200. An unknown path is a JSON 404, a known path with the wrong method a JSON
405 with ``Allow``. ``MIDDLEWARE`` makes the answers no route gives (a path
Streamlit refuses, an unexpected crash) JSON too."""

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hivemind_core.api import health, nodes, system, tasks
from hivemind_core.api.common import json_error
from hivemind_core.api.json_errors import JsonErrorsMiddleware

API_ROUTES = [
    Route("/health", health.health, methods=["GET"]),
    Route("/api/tasks", tasks.list_tasks, methods=["GET"]),
    Route("/api/tasks", tasks.submit_task, methods=["POST"]),
    Route("/api/tasks/{task_id}", tasks.get_task, methods=["GET"]),
    Route("/api/tasks/{task_id}", tasks.delete_task, methods=["DELETE"]),
    Route("/api/tasks/{task_id}/cancel", tasks.cancel_task, methods=["POST"]),
    Route("/api/tasks/{task_id}/retry", tasks.retry_task, methods=["POST"]),
    Route("/api/tasks/{task_id}/result", tasks.task_result, methods=["GET"]),
    Route("/api/nodes", nodes.list_nodes, methods=["GET"]),
    Route("/api/system/status", system.status, methods=["GET"]),
]


async def no_such_route(request: Request) -> JSONResponse:
    """404 for a path no API route has; 405 (with ``Allow``) for one it has with other methods."""
    path = request.url.path
    allowed = sorted({m for r in API_ROUTES if r.path_regex.match(path) for m in (r.methods or ())})
    if allowed:
        response = json_error(405, f"{request.method} is not allowed on {path}; use {', '.join(allowed)}.",
                              allowed=allowed)
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return json_error(404, f"No API endpoint {path}. The endpoints are: "
                           + ", ".join(sorted({r.path for r in API_ROUTES})) + ".")


EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]
ROUTES = [
    *API_ROUTES,
    # after the real routes, for every method (a wrong one on a real path ends up here too)
    Route("/health", no_such_route, methods=EVERY_METHOD),
    Route("/api", no_such_route, methods=EVERY_METHOD),
    Route("/api/{path:path}", no_such_route, methods=EVERY_METHOD),
]

# outside Streamlit's own middleware: see json_errors
MIDDLEWARE = [Middleware(JsonErrorsMiddleware)]
