"""A real node pool and real worker processes, started the way an operator
would (``python -m hivemind_core.nodepool`` / ``python -m hivemind_core.worker``),
for the data-job tests; always stopped (terminate, then kill)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hivemind_core.client import NodePoolClient

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0


@dataclass
class PoolProcs:
    data_dir: Path
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    address: str = ""
    procs: list[subprocess.Popen] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["HIVEMIND_CLUSTER_TOKEN"] = self.token
        return env

    def start(self, workers: int = 2, slots: int = 1) -> PoolProcs:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "nodepool.out").open("wb")
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "hivemind_core.nodepool", "--listen", "127.0.0.1:0",
             "--data-dir", str(self.data_dir), "--heartbeat-interval", "0.5"],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT))
        endpoint = self.data_dir / "endpoint.json"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                info = json.loads(endpoint.read_text())
                if info.get("pid") == self.procs[0].pid:
                    self.address = info["address"]
                    break
            except (OSError, ValueError):
                pass
            if self.procs[0].poll() is not None:
                raise RuntimeError(f"node pool exited: {(self.data_dir / 'nodepool.out').read_text()}")
            time.sleep(0.05)
        else:
            raise TimeoutError("node pool did not start")
        for i in range(workers):
            self.add_worker(f"w{i}", slots)
        self.wait_for_nodes(workers)
        return self

    def add_worker(self, name: str, slots: int = 1) -> None:
        out = (self.data_dir / f"worker-{name}.out").open("wb")
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "hivemind_core.worker", "--pool", self.address, "--slots", str(slots),
             "--name", name, "--work-dir", str(self.data_dir / f"work-{name}")],
            env=self.env(), stdout=out, stderr=subprocess.STDOUT))

    def client(self) -> NodePoolClient:
        return NodePoolClient(self.address, self.token)

    def wait_for_nodes(self, n: int) -> None:
        with self.client() as c:
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline:
                if sum(1 for node in c.nodes() if node.status != "offline") >= n:
                    return
                time.sleep(0.1)
        raise TimeoutError(f"{n} workers did not register")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.procs.clear()


CLI_TIMEOUT_S = 240.0


def run_cli(args: list[str], env: dict[str, str], cwd: Path,
            timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    """``python -m hivemind_core ARGS`` in a subprocess, output captured as text."""
    return subprocess.run([sys.executable, "-m", "hivemind_core", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def cli_env(base: dict[str, str], pool: PoolProcs) -> dict[str, str]:
    """``base`` plus the token of ``pool``, as a user of ``--pool`` sets it."""
    return base | {"HIVEMIND_CLUSTER_TOKEN": pool.token}
