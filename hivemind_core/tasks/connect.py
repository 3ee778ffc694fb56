"""How the master (the app, the CLI) connects to its node pool.

Like :func:`hivemind_core.cluster.connect_cluster`, plus one guarantee: a task
cancelled while no pool was running (``cancel`` only records it in the master
database then) is cancelled in a pool this call starts *before* that pool's
workers start, so none of its subtasks is ever leased.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy.engine import Engine

from hivemind_core.client import NodePoolClient
from hivemind_core.cluster import EmbeddedCluster, connect_cluster
from hivemind_core.config import Settings
from hivemind_core.tasks.service import TaskService


def connect_master_cluster(settings: Settings, engine: Engine, *,
                           workers: int | None = None) -> tuple[NodePoolClient, EmbeddedCluster | None]:
    """(client, the embedded cluster if this call started it — the caller stops it).

    ``workers``: how many workers an embedded cluster started here gets (default: the
    settings'); 0 starts only the node pool, for commands that need the pool's records
    and blobs but should run nothing (e.g. ``delete``)."""
    if workers is not None:
        settings = dataclasses.replace(settings, workers=workers)

    def push_cancels(client: NodePoolClient) -> None:
        TaskService(engine, client, settings).push_pending_cancels()

    return connect_cluster(settings, before_workers=push_cancels)
