"""The embedded cluster: a node pool on 127.0.0.1 plus local worker processes,
so a new user's first job runs with nothing configured.

Children are separate processes started with ``--parent-pid``: they watch the
process that started them and shut down when it is gone, so none outlives it
— after :meth:`EmbeddedCluster.stop`, at interpreter exit (``atexit``), after
SIGINT/SIGTERM, and after ``kill -9`` of the parent alike.

The cluster also supervises its children: a node pool or worker that dies while
the cluster runs (not during :meth:`EmbeddedCluster.stop`) is started again —
logged, with backoff — the pool on the same address and data dir, so queued work
survives and the workers and the master's client find it again.

:func:`connect_cluster` is what the app, the REST API and the CLI call: a
client for ``HIVEMIND_NODE_POOL`` if set, else for the embedded cluster of the
data dir — the one already running (started by another process) or a new one.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hivemind_core.client import NodePoolClient
from hivemind_core.config import PROJECT_ROOT, Settings
from hivemind_core.errors import ConfigError, HiveMindError
from hivemind_core.nodepool.auth import CLUSTER_TOKEN_ENV, cluster_token_for
from hivemind_core.nodepool.server import ENDPOINT_FILE, read_endpoint
from hivemind_core.procwatch import pid_alive
from hivemind_core.secrets_store import SECRETS_SUBDIR, secret_path

log = logging.getLogger(__name__)

NODEPOOL_SUBDIR = "nodepool"
LOCK_FILE = "embedded.lock"
SUPERVISE_INTERVAL_S = 0.5      # how often the supervisor looks at its children
RESTART_BACKOFF_S = (0.5, 30.0)  # first and longest wait before restarting a child that keeps dying
STABLE_AFTER_S = 60.0           # a child up this long that dies is restarted after the first wait again
WORKER_MAX_BACKOFF_S = 2.0      # local workers: the pool is on this machine and comes back within seconds
BeforeWorkers = Callable[[NodePoolClient], None]


class ClusterStartError(HiveMindError):
    """The embedded node pool or its workers did not come up."""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class EmbeddedCluster:
    """A node pool on 127.0.0.1 (a free port) for ``data_dir`` plus ``workers`` local workers."""

    def __init__(self, data_dir: Path, workers: int | None = None, slots: int = 1, *,
                 lease_ttl_s: float = 30.0, heartbeat_interval_s: float = 3.0,
                 start_timeout_s: float = 60.0, log_level: str = "INFO") -> None:
        self.data_dir = Path(data_dir)
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.slots = slots
        self.lease_ttl_s = lease_ttl_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.start_timeout_s = start_timeout_s
        self.log_level = log_level
        self.address = ""
        self.token = ""
        self.pool_process: subprocess.Popen | None = None
        self.worker_processes: list[subprocess.Popen] = []
        self.restarts: dict[str, int] = {}   # child ("nodepool", "worker-N") -> times restarted
        self._logs: dict[int, object] = {}   # pid -> its open log file
        self._lock = threading.Lock()        # the process list vs. stop()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    # ------------------------------------------------------------ start

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[CLUSTER_TOKEN_ENV] = self.token  # by environment, never on a command line others can read
        env["PYTHONPATH"] = str(PROJECT_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        out = open(log_dir / log_name, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        try:
            proc = subprocess.Popen([sys.executable, *args, "--parent-pid", str(os.getpid()),
                                     "--log-level", self.log_level],
                                    env=self._env(), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=PROJECT_ROOT)
        except BaseException:
            out.close()
            raise
        self._logs[proc.pid] = out
        return proc

    def _close_log(self, proc: subprocess.Popen) -> None:
        out = self._logs.pop(proc.pid, None)
        if out is not None:
            out.close()

    def start(self, before_workers: BeforeWorkers | None = None) -> EmbeddedCluster:
        """Start the pool, call ``before_workers(client)`` if given, then start the workers.

        ``before_workers`` lets the master push what it decided while no pool ran
        (e.g. cancellations) before any worker can lease a subtask."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.token = cluster_token_for(self.data_dir)
        (self.data_dir / ENDPOINT_FILE).unlink(missing_ok=True)
        self._stopping.clear()
        atexit.register(self.stop)
        try:
            self._start_pool()
            if before_workers is not None:
                with self.client() as client:
                    before_workers(client)
            self._start_workers()
        except BaseException:
            self.stop()
            raise
        self._supervisor = threading.Thread(target=self._supervise, name="embedded-cluster-supervisor", daemon=True)
        self._supervisor.start()
        log.info("embedded cluster up: node pool %s, %d workers", self.address, self.workers)
        return self

    def _pool_args(self, listen: str) -> list[str]:
        return ["-m", "hivemind_core.nodepool", "--listen", listen, "--data-dir", str(self.data_dir),
                "--lease-ttl", str(self.lease_ttl_s), "--heartbeat-interval", str(self.heartbeat_interval_s)]

    def _start_pool(self) -> None:
        self.pool_process = self._spawn(self._pool_args("127.0.0.1:0"), "nodepool.out")
        if not self._await_endpoint(self.pool_process, self.start_timeout_s):
            raise ClusterStartError(
                f"the embedded node pool did not start (exit code {self.pool_process.poll()}); its log says:\n"
                + _tail(self.data_dir / "logs" / "nodepool.out"))

    def _await_endpoint(self, proc: subprocess.Popen, timeout: float) -> bool:
        """Wait until ``proc`` serves (its endpoint file names it); sets ``address``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopping.is_set():
            endpoint = read_endpoint(self.data_dir)
            if endpoint and endpoint.get("pid") == proc.pid:
                self.address = endpoint["address"]
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def identity_file(self, index: int) -> Path:
        """Where local worker ``index`` (1-based) keeps its node credentials: beside the
        cluster token, so a restart on this data dir brings back the same nodes."""
        return secret_path(self.data_dir, f"node-local-{index}.json")

    def _start_workers(self) -> None:
        work_root = self.data_dir / "work"
        shutil.rmtree(work_root, ignore_errors=True)  # scratch of a previous run
        (self.data_dir / SECRETS_SUBDIR).mkdir(mode=0o700, parents=True, exist_ok=True)
        started = time.time()
        for i in range(1, self.workers + 1):
            self.worker_processes.append(self._spawn_worker(i))
        if not self.workers:
            return
        with NodePoolClient(self.address, self.token, max_retries=0) as client:
            deadline = time.monotonic() + self.start_timeout_s
            pids = {p.pid for p in self.worker_processes}
            while time.monotonic() < deadline:
                # registered by *these* processes (a node of a previous run may still look online)
                names = {n.name for n in client.nodes() if n.last_heartbeat >= started}
                if all(f"local-{i}" in names for i in range(1, self.workers + 1)):
                    return
                dead = [p for p in self.worker_processes if p.poll() is not None]
                if dead:
                    raise ClusterStartError(
                        f"embedded worker (pid {dead[0].pid}) exited with code {dead[0].returncode}:\n"
                        + _tail(self.data_dir / "logs" / f"worker-{self.worker_processes.index(dead[0]) + 1}.log"))
                time.sleep(0.05)
            raise ClusterStartError(f"embedded workers {sorted(pids)} did not register within "
                                    f"{self.start_timeout_s:g} s; see {self.data_dir / 'logs'}")

    def _spawn_worker(self, index: int) -> subprocess.Popen:
        return self._spawn(
            ["-m", "hivemind_core.worker", "--pool", self.address, "--slots", str(self.slots),
             "--name", f"local-{index}", "--work-dir", str(self.data_dir / "work" / f"worker-{index}"),
             "--identity-file", str(self.identity_file(index)), "--drain-timeout", "5",
             "--max-backoff", str(WORKER_MAX_BACKOFF_S)],
            f"worker-{index}.log")

    # ------------------------------------------------------------ supervision

    def _supervise(self) -> None:
        """Restart a child that died while the cluster runs (with backoff per child)."""
        failures: dict[str, int] = {}
        not_before: dict[str, float] = {}
        started: dict[str, float] = {}
        while not self._stopping.wait(SUPERVISE_INTERVAL_S):
            try:
                self._supervise_once(failures, not_before, started)
            except Exception:  # noqa: BLE001 - the supervisor must outlive one bad restart
                log.exception("embedded cluster supervisor: restart failed; trying again")

    def _due(self, name: str, proc: subprocess.Popen, failures: dict[str, int], not_before: dict[str, float],
             started: dict[str, float]) -> bool:
        """``proc`` died: log it once, and say whether its backoff is over."""
        now = time.monotonic()
        if name not in not_before:
            if now - started.get(name, 0.0) >= STABLE_AFTER_S:
                failures[name] = 0
            delay = min(RESTART_BACKOFF_S[0] * 2 ** failures.get(name, 0), RESTART_BACKOFF_S[1])
            failures[name] = failures.get(name, 0) + 1
            not_before[name] = now + delay
            log.warning("embedded %s (pid %d) exited unexpectedly with code %s; restarting it in %.1f s "
                        "(log: %s)", name, proc.pid, proc.returncode, delay,
                        self.data_dir / "logs" / ("nodepool.out" if name == "nodepool" else f"{name}.log"))
        return now >= not_before[name]

    def _supervise_once(self, failures: dict[str, int], not_before: dict[str, float],
                        started: dict[str, float]) -> None:
        pool = self.pool_process
        if pool is not None and pool.poll() is not None and self._due("nodepool", pool, failures, not_before,
                                                                      started):
            not_before.pop("nodepool")
            started["nodepool"] = time.monotonic()
            self._restart_pool(pool)
        for i, proc in enumerate(list(self.worker_processes), start=1):
            name = f"worker-{i}"
            if proc.poll() is None or not self._due(name, proc, failures, not_before, started):
                continue
            not_before.pop(name)
            started[name] = time.monotonic()
            with self._lock:
                if self._stopping.is_set():
                    return
                self._close_log(proc)
                self.worker_processes[i - 1] = self._spawn_worker(i)
                self.restarts[name] = self.restarts.get(name, 0) + 1
            log.info("embedded worker local-%d restarted (pid %d)", i, self.worker_processes[i - 1].pid)

    def _restart_pool(self, dead: subprocess.Popen) -> None:
        """The pool again on its address and data dir (under the data dir's lock, so no other
        process starts a second pool for it meanwhile)."""
        with _exclusive(self.data_dir / LOCK_FILE):
            endpoint = read_endpoint(self.data_dir)
            other = int(endpoint.get("pid", 0)) if endpoint else 0
            if other and other != dead.pid and pid_alive(other):
                log.warning("another node pool (pid %d) serves %s now; not restarting ours until it is gone",
                            other, self.data_dir)
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._close_log(dead)
                self.pool_process = proc = self._spawn(self._pool_args(self.address), "nodepool.out")
                self.restarts["nodepool"] = self.restarts.get("nodepool", 0) + 1
            if self._await_endpoint(proc, self.start_timeout_s):
                log.info("embedded node pool restarted at %s (pid %d)", self.address, proc.pid)
            elif not self._stopping.is_set():
                log.error("the embedded node pool did not come back at %s (exit code %s); its log says:\n%s",
                          self.address, proc.poll(), _tail(self.data_dir / "logs" / "nodepool.out"))
                if proc.poll() is None:   # hung on start: kill it, the supervisor tries again
                    proc.kill()
                    proc.wait()

    # ------------------------------------------------------------ stop

    @staticmethod
    def _terminate(processes: list[subprocess.Popen], timeout: float) -> None:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in processes:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("process %d did not stop in %.0f s; killing it", p.pid, timeout)
                p.kill()
                p.wait()

    def stop(self) -> None:
        """Stop supervising, then stop the workers (they release their leases), then the node pool."""
        self._stopping.set()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(timeout=self.start_timeout_s + 5)
        with self._lock:
            workers, self.worker_processes = self.worker_processes, []
            pool, self.pool_process = self.pool_process, None
        self._terminate(workers, timeout=10.0)
        if pool is not None:
            self._terminate([pool], timeout=10.0)
        for fh in self._logs.values():
            fh.close()  # type: ignore[attr-defined]
        self._logs = {}
        atexit.unregister(self.stop)

    def client(self, **kwargs: object) -> NodePoolClient:
        return NodePoolClient(self.address, self.token, **kwargs)

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """One process at a time decides whether to start the embedded cluster of a data dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _running_pool(pool_dir: Path, token: str) -> NodePoolClient | None:
    endpoint = read_endpoint(pool_dir)
    if not endpoint or not pid_alive(int(endpoint.get("pid", 0))):
        return None
    client = NodePoolClient(endpoint["address"], token)
    try:
        probe = NodePoolClient(endpoint["address"], token, timeout=2.0, max_retries=0)
        with probe:
            probe.ping()
        return client
    except HiveMindError:
        client.close()
        return None


def connect_cluster(settings: Settings, *,
                    before_workers: BeforeWorkers | None = None) -> tuple[NodePoolClient, EmbeddedCluster | None]:
    """A client for the configured node pool, and the embedded cluster if this call started one.

    ``HIVEMIND_NODE_POOL`` set: a client for it (token: ``HIVEMIND_CLUSTER_TOKEN``).
    Otherwise the embedded cluster of ``<data dir>/nodepool``: reused when another
    process already runs it, else started here — the caller then owns it and stops it.
    ``before_workers``: see :meth:`EmbeddedCluster.start` (called only when this call starts one).
    """
    if settings.node_pool:
        if not settings.cluster_token:
            raise ConfigError(
                f"HIVEMIND_NODE_POOL is set ({settings.node_pool}) but HIVEMIND_CLUSTER_TOKEN is not: "
                "set it to the node pool's cluster token (in <pool data dir>/secrets/cluster_token).")
        return NodePoolClient(settings.node_pool, settings.cluster_token), None
    pool_dir = settings.data_dir / NODEPOOL_SUBDIR
    with _exclusive(pool_dir / LOCK_FILE):
        token = cluster_token_for(pool_dir)
        client = _running_pool(pool_dir, token)
        if client is not None:
            return client, None
        cluster = EmbeddedCluster(pool_dir, workers=settings.workers).start(before_workers)
        return cluster.client(), cluster
