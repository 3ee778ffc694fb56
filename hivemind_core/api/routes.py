"""The one routing table of the REST API."""

from starlette.routing import Route

from hivemind_core.api import health, nodes, system, tasks

ROUTES = [
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
