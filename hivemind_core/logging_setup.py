"""Logging: a rotating file in the data dir (10 MB x 10, as the seed's
``setup_logging``) plus the console."""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s: %(message)s [in %(pathname)s:%(lineno)d]"
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 10
_MARK = "_hivemind_handler"


def setup_logging(logs_dir: Path, name: str = "master_node", level: int = logging.INFO) -> Path:
    """Attach the rotating file and console handlers to the root logger (once)."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    log_file = logs_dir / f"{name}.log"
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(h, _MARK, None) == str(log_file) for h in root.handlers):
        file_handler = RotatingFileHandler(log_file, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT)
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        setattr(file_handler, _MARK, str(log_file))
        root.addHandler(file_handler)
    if not any(getattr(h, _MARK, None) == "console" for h in root.handlers):
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter(LOG_FORMAT))
        setattr(console, _MARK, "console")
        root.addHandler(console)
    return log_file
