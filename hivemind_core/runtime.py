"""The master's long-lived parts in one process: database engine, node pool
client (and the embedded cluster when there is no ``HIVEMIND_NODE_POOL``), the
task service and its background syncer.

The web server's lifespan starts them once and stops them when the server
stops; the pages and the REST routes share the same instance through
:func:`get_runtime`. Without a lifespan (e.g. Streamlit's AppTest, or a plain
``streamlit run`` of a script without ``st.App``) the first :func:`get_runtime`
starts them and an ``atexit`` hook stops them.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from hivemind_core.config import Settings, get_settings
from hivemind_core.db import get_engine
from hivemind_core.logging_setup import setup_logging
from hivemind_core.tasks.staging import remove_stale

if TYPE_CHECKING:
    from hivemind_core.client import NodePoolClient
    from hivemind_core.cluster import EmbeddedCluster
    from hivemind_core.tasks.service import TaskService, TaskSyncer

log = logging.getLogger(__name__)


@dataclass
class MasterRuntime:
    settings: Settings
    engine: Engine
    client: NodePoolClient
    cluster: EmbeddedCluster | None  # None when connected to a remote node pool
    tasks: TaskService
    syncer: TaskSyncer

    def stop(self) -> None:
        """Stop the syncer, close the client, stop the embedded cluster (each step even if one fails)."""
        steps = [self.syncer.stop, self.client.close] + ([self.cluster.stop] if self.cluster else [])
        for step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - shutting down: log and go on with the rest
                log.exception("error while stopping %s", getattr(step, "__qualname__", step))
        log.info("master runtime stopped")


def start_runtime(settings: Settings | None = None) -> MasterRuntime:
    """Connect to (or start) the cluster and start the task syncer."""
    from hivemind_core.tasks.connect import connect_master_cluster
    from hivemind_core.tasks.service import TaskService, TaskSyncer

    settings = settings or get_settings()
    setup_logging(settings.logs_dir)
    engine = get_engine(settings)
    if removed := remove_stale(settings):
        log.info("removed %d stale staged upload(s)", removed)
    client, cluster = connect_master_cluster(settings, engine)   # pushes cancels made while it was down
    try:
        tasks = TaskService(engine, client, settings)
        syncer = TaskSyncer(tasks)
        syncer.start()
    except BaseException:
        client.close()
        if cluster is not None:
            cluster.stop()
        raise
    where = f"embedded node pool at {cluster.address}" if cluster else f"node pool at {settings.node_pool}"
    log.info("master runtime started: %s, data dir %s", where, settings.data_dir)
    return MasterRuntime(settings, engine, client, cluster, tasks, syncer)


_lock = threading.Lock()
_current: MasterRuntime | None = None
_atexit_registered = False


def install_runtime(runtime: MasterRuntime | None) -> None:
    """Make ``runtime`` the process-wide one (None: forget it, without stopping it)."""
    global _current
    with _lock:
        _current = runtime


def get_runtime() -> MasterRuntime:
    """The process-wide runtime, started on first use if no lifespan started it."""
    global _current, _atexit_registered
    with _lock:
        if _current is None:
            _current = start_runtime()
            if not _atexit_registered:
                atexit.register(stop_runtime)
                _atexit_registered = True
        return _current


def current_runtime() -> MasterRuntime | None:
    """The runtime if one is running, without starting one."""
    return _current


def stop_runtime() -> None:
    """Stop and forget the process-wide runtime (no-op if none)."""
    global _current
    with _lock:
        runtime, _current = _current, None
    if runtime is not None:
        runtime.stop()
