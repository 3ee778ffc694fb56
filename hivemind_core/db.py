"""The master's database: one SQLModel engine per URL, tables created on first use.

Model modules register their tables by being imported; :data:`MODEL_MODULES`
lists them so ``init_db`` creates every table whichever entry point (app, REST,
CLI, tests) comes first.
"""

from __future__ import annotations

import importlib
import threading

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from hivemind_core.config import Settings, get_settings
from hivemind_core.fileutil import private_dir
from hivemind_core.sqlite import make_engine

# Each feature package adds the module that defines its tables here.
MODEL_MODULES: list[str] = [
    "hivemind_core.vpn.models",
]
MODEL_MODULES.append("hivemind_core.auth.models")
MODEL_MODULES.append("hivemind_core.tasks.models")  # tasks and subtasks

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(settings: Settings | None = None) -> Engine:
    """The engine for the configured database, with every table created."""
    settings = settings or get_settings()
    url = settings.database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            private_dir(settings.data_dir)  # master.db, uploads, results, secrets: the owner's only
            for module in MODEL_MODULES:
                importlib.import_module(module)
            engine = make_engine(url)
            SQLModel.metadata.create_all(engine)
            _engines[url] = engine
        return engine


def database_ok(engine: Engine) -> tuple[bool, str]:
    """(True, "ok") when the database answers a query, else (False, reason)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True, "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is a health probe
        return False, f"database unavailable: {exc}"


def reset_engines() -> None:
    """Forget cached engines (tests that switch DATABASE_URL)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
