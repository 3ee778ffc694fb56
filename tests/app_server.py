"""Start the real app (``streamlit run app.py``) as a subprocess for end-to-end
tests, with its own data dir, and stop it (and everything it started) after."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def running_app(data_dir: Path, workers: int = 2, **env_extra: str) -> Iterator[str]:
    """Yield the base URL of a running app whose /health answers 200 with ``workers`` workers online."""
    port = free_port()
    env = dict(os.environ)
    env.update({"HIVEMIND_DATA_DIR": str(data_dir), "HIVEMIND_WORKERS": str(workers),
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
    env.update(env_extra)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"streamlit-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: cleaned up as a whole below
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited with {proc.returncode}:\n{_tail(log_path)}")
            try:
                r = requests.get(f"{base}/health", timeout=5)
                if r.status_code == 200 and r.json()["workers"]["online"] + r.json()["workers"]["busy"] >= workers:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not become healthy in {START_TIMEOUT_S} s:\n{_tail(log_path)}")
            time.sleep(0.5)
        yield base
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the server's lifespan stops the cluster), then SIGKILL the whole group if needed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group, if any
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(10)


# Settings that would point a test's app at something other than its own data dir.
_OUTSIDE_SETTINGS = ("HIVEMIND_NODE_POOL", "NODE_POOL_ADDRESS", "DATABASE_URL", "HIVEMIND_MAX_UPLOAD_MB",
                     "MAX_CONTENT_LENGTH", "HIVEMIND_CLUSTER_TOKEN")


@contextmanager
def shared_data_dir(data_dir: Path) -> Iterator[Path]:
    """Point this test process at ``data_dir`` for a whole module (the one a served app uses),
    so tests can seed users and tokens straight into the app's database."""
    import pytest

    from hivemind_core import db

    with pytest.MonkeyPatch.context() as mp:
        for var in _OUTSIDE_SETTINGS:
            mp.delenv(var, raising=False)
        mp.setenv("HIVEMIND_DATA_DIR", str(data_dir))
        db.reset_engines()
        try:
            yield data_dir
        finally:
            db.reset_engines()
