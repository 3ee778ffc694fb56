"""Secrets generated on first use into the data directory (mode 0600).

There are no default secrets: a secret is either given through the
environment or generated here once and reused after.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from hivemind_core.fileutil import atomic_write

SECRETS_SUBDIR = "secrets"


def secret_path(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / SECRETS_SUBDIR / name


def get_or_create_secret(data_dir: Path, name: str, nbytes: int = 32) -> str:
    """Return the secret ``name`` from the data dir, generating it on first use.

    Safe against two processes racing on first start: the first rename wins and
    both return the same value.
    """
    path = secret_path(data_dir, name)
    try:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    candidate = secrets.token_urlsafe(nbytes)
    tmp = atomic_write(path.with_name(f".{name}.{os.getpid()}.new"), candidate + "\n")
    try:
        os.link(tmp, path)  # fails if another process created it first
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip()


def cookie_key(settings) -> str:  # noqa: ANN001 - Settings, avoided import cycle
    """The key that signs login cookies: HIVEMIND_SECRET_KEY or a generated one."""
    return settings.secret_key or get_or_create_secret(settings.data_dir, "cookie_key")
