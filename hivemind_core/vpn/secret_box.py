"""Encryption at rest for the VPN secrets that live in the database.

Preshared keys (and client private keys an admin chose to keep) are stored
Fernet-encrypted; the Fernet key is derived from a secret generated into the
data dir (0600, never in the database), so a copy of the database alone reveals
no key.
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hivemind_core.errors import ConfigError
from hivemind_core.secrets_store import get_or_create_secret, secret_path

SECRET_NAME = "vpn_db_key"
_INFO = b"hivemind vpn secrets at rest v1"


def _fernet(data_dir: Path) -> Fernet:
    master = get_or_create_secret(data_dir, SECRET_NAME).encode("utf-8")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(master)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(data_dir: Path, plaintext: str) -> str:
    return _fernet(data_dir).encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(data_dir: Path, token: str) -> str:
    try:
        return _fernet(data_dir).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise ConfigError(
            f"A VPN secret in the database cannot be decrypted with {secret_path(data_dir, SECRET_NAME)}; "
            "that file was replaced or belongs to another data dir. Restore it, or revoke and re-add the peer."
        ) from None
