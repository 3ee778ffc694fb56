"""Uploaded files on their way to a task: copied into ``<data dir>/uploads/.incoming``
(same file system as the data dir, never /tmp-sized memory) and handed to
``TaskService.submit``, which splits the file into shards and stores each shard as a
blob in the node pool. The task never reads the uploaded file again — a retry reruns
shards from those blobs — so whoever staged it removes it once the submit is done: the
REST API after every submit, the upload page after a successful one (after a refused
one the form keeps it, to submit again with corrected fields). A file left behind (a
browser closed mid-form) is removed once it is older than ``STALE_AFTER_S`` (24 h),
when the app starts and whenever another upload is staged."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from hivemind_core.config import Settings

STAGING_SUBDIR = ".incoming"
STALE_AFTER_S = 24 * 3600
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def staging_dir(settings: Settings) -> Path:
    return settings.uploads_dir / STAGING_SUBDIR


def stage_upload(source: BinaryIO, filename: str, settings: Settings) -> Path:
    """Copy ``source`` (from its start) into the staging dir; the name keeps the file's extension.
    Abandoned staged files are cleaned up first (see :func:`remove_stale`)."""
    directory = staging_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale(settings)
    safe = _SAFE.sub("_", Path(filename or "upload").name)[-80:] or "upload"
    fd, name = tempfile.mkstemp(dir=directory, prefix="up-", suffix=f"-{safe}")
    try:
        with os.fdopen(fd, "wb") as out:
            source.seek(0)
            shutil.copyfileobj(source, out, length=1024 * 1024)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def remove_stale(settings: Settings, older_than_s: float = STALE_AFTER_S) -> int:
    """Delete staged files left behind (e.g. a browser closed mid-form); returns how many."""
    directory, removed = staging_dir(settings), 0
    cutoff = time.time() - older_than_s
    for path in directory.glob("up-*") if directory.exists() else ():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed
