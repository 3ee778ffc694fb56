"""WireGuard keys: X25519 via ``cryptography``, in canonical base64.

A WireGuard key is 32 bytes written as 44 characters of standard base64 ending
in ``=``. "Canonical" means re-encoding the decoded bytes gives the same text:
the official apps and ``wg`` all accept that form, and a pasted key that is not
canonical is most likely a typo.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from hivemind_core.errors import ValidationError

KEY_BYTES = 32


@dataclass(frozen=True)
class KeyPair:
    private_key: str
    public_key: str


def encode_key(raw: bytes) -> str:
    if len(raw) != KEY_BYTES:
        raise ValueError(f"a WireGuard key is {KEY_BYTES} bytes, got {len(raw)}")
    return base64.b64encode(raw).decode("ascii")


def decode_key(text: str, what: str = "key") -> bytes:
    """The 32 bytes of a canonical base64 key; :class:`ValidationError` otherwise."""
    value = (text or "").strip()
    hint = f"A WireGuard {what} is 44 characters of base64 ending in '=' (as printed by `wg pubkey`)."
    if len(value) != 44 or not value.endswith("="):
        raise ValidationError(f"That {what} is not a WireGuard key: wrong length or ending. {hint}", field=what)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"That {what} contains characters that are not base64. {hint}", field=what) from None
    if len(raw) != KEY_BYTES or encode_key(raw) != value:
        raise ValidationError(f"That {what} is not in canonical base64 (check for a typo). {hint}", field=what)
    return raw


def is_low_order(public: bytes) -> bool:
    """True for a Curve25519 point of small order (all zeros, 1, p-1, ...).

    Diffie-Hellman with such a point gives the all-zero secret whatever the
    private key, so no WireGuard handshake with it can succeed (and a peer
    holding it is not bound to any private key). ``cryptography`` (OpenSSL)
    refuses to compute that secret, which is the test used here."""
    try:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:
        return True
    return False


def validate_public_key(text: str) -> str:
    """A pasted public key, checked and returned in canonical form (surrounding space removed)."""
    raw = decode_key(text, "public key")
    if is_low_order(raw):
        raise ValidationError(
            "That public key is a low-order Curve25519 point (such as all zeros), which no WireGuard "
            "handshake can use. Paste the key `wg pubkey` prints for the device's private key.",
            field="public key",
        )
    return text.strip()


def _clamp(raw: bytearray) -> bytes:
    # The same clamping `wg genkey` applies; X25519 clamps anyway, so this only
    # makes our private keys byte-identical in form to wg's.
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    return bytes(raw)


def generate_private_key() -> str:
    raw = X25519PrivateKey.generate().private_bytes_raw()
    return encode_key(_clamp(bytearray(raw)))


def public_key_for(private_key: str) -> str:
    """The public key of a base64 private key (what `wg pubkey` prints)."""
    raw = decode_key(private_key, "private key")
    public = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    return encode_key(public)


def generate_keypair() -> KeyPair:
    private = generate_private_key()
    return KeyPair(private_key=private, public_key=public_key_for(private))


def generate_preshared_key() -> str:
    """32 random bytes, as `wg genpsk` makes."""
    return encode_key(secrets.token_bytes(KEY_BYTES))
