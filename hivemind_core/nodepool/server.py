"""Wire the node pool together: store, blobs, auth, servicers, health, upkeep."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from hivemind_core.fileutil import atomic_write, private_dir
from hivemind_core.nodepool.auth import AuthInterceptor, Authenticator, cluster_token_for
from hivemind_core.nodepool.blobs import BlobStore
from hivemind_core.nodepool.config import PoolConfig
from hivemind_core.nodepool.services.blob_service import BlobServiceServicer
from hivemind_core.nodepool.services.master_service import MasterNodeServiceServicer
from hivemind_core.nodepool.services.node_manager import NodeManagerServicer
from hivemind_core.nodepool.services.user_manager import UserManagerServicer
from hivemind_core.nodepool.services.worker_service import WorkerServiceServicer
from hivemind_core.nodepool.store import Store
from hivemind_core.proto import nodepool_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

DB_FILE = "nodepool.db"
BLOB_DIR = "blobs"
ENDPOINT_FILE = "endpoint.json"
COMPACT_EVERY_S = 60.0
HEALTH_SERVICE = ""  # the server as a whole


class NodePoolServer:
    """The node pool on ``listen`` ("HOST:PORT"; port 0 = any free port) for ``data_dir``."""

    def __init__(self, data_dir: Path, listen: str, config: PoolConfig | None = None,
                 cluster_token: str | None = None, max_workers: int = 32) -> None:
        self.data_dir = private_dir(data_dir)   # queue db, blobs, cluster token, workers' scratch
        self.listen = listen
        self.config = config or PoolConfig()
        self.token = cluster_token or cluster_token_for(self.data_dir)
        self.store = Store(self.data_dir / DB_FILE, self.config.retention)
        self.blobs = BlobStore(self.data_dir / BLOB_DIR)
        self.auth = Authenticator(self.token, self.store)
        self.health = health.HealthServicer()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
            interceptors=[AuthInterceptor(self.auth)],
            options=[("grpc.so_reuseport", 0)],
        )
        pb_grpc.add_NodeManagerServicer_to_server(NodeManagerServicer(self.store, self.auth, self.config), self._server)
        pb_grpc.add_UserManagerServicer_to_server(UserManagerServicer(self.store, self.auth), self._server)
        pb_grpc.add_MasterNodeServiceServicer_to_server(MasterNodeServiceServicer(self.store, self.blobs), self._server)
        pb_grpc.add_WorkerServiceServicer_to_server(
            WorkerServiceServicer(self.store, self.blobs, self.auth, self.config), self._server)
        pb_grpc.add_BlobServiceServicer_to_server(BlobServiceServicer(self.blobs), self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self._stop = threading.Event()
        self._upkeep = threading.Thread(target=self._upkeep_loop, name="upkeep", daemon=True)
        self.port = 0

    @property
    def address(self) -> str:
        host = self.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    @property
    def endpoint_file(self) -> Path:
        return self.data_dir / ENDPOINT_FILE

    def start(self) -> NodePoolServer:
        self.blobs.clean_tmp()
        extended = self.store.extend_open_leases(self.store.now(), self.config.lease_ttl_s)
        if extended:
            log.info("restart: %d open leases get %.0f s for their workers to reconnect",
                     extended, self.config.lease_ttl_s)
        self.port = self._server.add_insecure_port(self.listen)
        if not self.port:
            raise OSError(f"cannot listen on {self.listen}: the address is in use or invalid")
        self._server.start()
        self.health.set(HEALTH_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        self._upkeep.start()
        atomic_write(self.endpoint_file, json.dumps({"address": self.address, "pid": os.getpid()}))
        log.info("node pool listening on %s (data in %s)", self.address, self.data_dir)
        return self

    def stop(self, grace: float = 2.0) -> None:
        self._stop.set()
        self.health.enter_graceful_shutdown()
        self._server.stop(grace).wait(grace + 1)
        try:
            if json.loads(self.endpoint_file.read_text()).get("pid") == os.getpid():
                self.endpoint_file.unlink()
        except (OSError, ValueError):
            pass
        self.store.close()
        log.info("node pool stopped")

    def request_stop(self) -> None:
        """Make :meth:`wait` return (safe from a signal handler)."""
        self._stop.set()

    def wait(self) -> None:
        self._stop.wait()

    def _upkeep_loop(self) -> None:
        """Expire leases, forget long-offline nodes, compact metrics history, report database health."""
        last_compact = last_prune = 0.0
        while not self._stop.wait(self.config.reaper_interval_s):
            try:
                self.store.expire_leases(self.store.now())
                if time.monotonic() - last_prune >= self.config.prune_interval_s:
                    if self.store.prune_nodes(self.store.now(), self.config.forget_after_s):
                        self.auth.refresh()  # their node tokens stop working
                    last_prune = time.monotonic()
                if time.monotonic() - last_compact > COMPACT_EVERY_S:
                    self.store.compact_metrics(self.store.now())
                    last_compact = time.monotonic()
                self.store.ping()
                self.health.set(HEALTH_SERVICE, health_pb2.HealthCheckResponse.SERVING)
            except Exception:  # noqa: BLE001 - keep the pool up; health tells the world
                if self._stop.is_set():
                    return
                log.exception("node pool upkeep failed; reporting NOT_SERVING")
                self.health.set(HEALTH_SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)


def read_endpoint(data_dir: Path) -> dict | None:
    """{"address", "pid"} of the node pool running for ``data_dir``, if it wrote one."""
    try:
        return json.loads((Path(data_dir) / ENDPOINT_FILE).read_text())
    except (OSError, ValueError):
        return None
