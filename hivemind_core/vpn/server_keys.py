"""The server's WireGuard key pair: generated on first use, private key in a 0600 file.

The private key lives in ``<data dir>/secrets/vpn_server_private_key`` (never
in the database); the public key is derived from it whenever needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from hivemind_core.fileutil import atomic_write
from hivemind_core.secrets_store import secret_path
from hivemind_core.vpn.keys import KeyPair, generate_private_key, public_key_for

SERVER_KEY_NAME = "vpn_server_private_key"


def server_key_path(data_dir: Path) -> Path:
    return secret_path(data_dir, SERVER_KEY_NAME)


def get_or_create_server_keypair(data_dir: Path) -> KeyPair:
    """The server key pair; the first caller generates it (safe against racing processes)."""
    path = server_key_path(data_dir)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        tmp = atomic_write(path.with_name(f".{SERVER_KEY_NAME}.{os.getpid()}.new"), generate_private_key() + "\n")
        try:
            os.link(tmp, path)  # the first process to link wins; the others read its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    private = path.read_text(encoding="ascii").strip()
    return KeyPair(private_key=private, public_key=public_key_for(private))
