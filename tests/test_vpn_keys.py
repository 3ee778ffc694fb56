"""Keys: every generated pair matches `wg pubkey`; pasted keys are validated."""

from __future__ import annotations

import base64

import pytest

from hivemind_core.errors import ValidationError
from hivemind_core.vpn import keys
from tests.vpn_wg import wg_genkey, wg_pubkey


def test_generated_pairs_match_wg_pubkey() -> None:
    seen = set()
    for _ in range(25):
        pair = keys.generate_keypair()
        assert wg_pubkey(pair.private_key) == pair.public_key
        assert len(base64.b64decode(pair.private_key)) == 32
        seen.add(pair.private_key)
    assert len(seen) == 25


def test_public_key_of_wg_genkey_key_matches() -> None:
    for _ in range(10):
        private = wg_genkey()
        assert keys.public_key_for(private) == wg_pubkey(private)


def test_unclamped_private_key_gives_wgs_public_key() -> None:
    # wg clamps any 32 bytes; ours must derive the same public key from an unclamped one
    private = base64.b64encode(bytes(range(1, 33))).decode()
    assert keys.public_key_for(private) == wg_pubkey(private)


def test_preshared_keys_are_32_random_bytes() -> None:
    a, b = keys.generate_preshared_key(), keys.generate_preshared_key()
    assert a != b and len(base64.b64decode(a)) == 32


def test_pasted_public_key_accepted_when_canonical() -> None:
    public = wg_pubkey(wg_genkey())
    assert keys.validate_public_key(f"  {public}\n") == public


@pytest.mark.parametrize("bad", [
    "",
    "abc",
    "A" * 43,  # one short, no padding
    "A" * 44,  # no '=' ending
    "!" * 43 + "=",  # not base64
    base64.b64encode(bytes(31)).decode(),  # 44 characters but 31 bytes
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=",  # non-canonical: last char has stray bits
])
def test_bad_public_keys_rejected_with_a_message(bad: str) -> None:
    with pytest.raises(ValidationError, match="WireGuard"):
        keys.validate_public_key(bad)


# The Curve25519 points of small order (libsodium's blocklist in crypto_scalarmult/curve25519/ref10,
# also listed in RFC 7748's security considerations): 0, 1, two points of order 8, p-1, p, p+1,
# and the same with the unused top bit set. A handshake with any of them yields an all-zero secret.
LOW_ORDER_POINTS = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
]


@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_low_order_public_keys_rejected(point: str) -> None:
    key = base64.b64encode(bytes.fromhex(point)).decode()
    with pytest.raises(ValidationError, match="low-order") as err:
        keys.validate_public_key(key)
    assert err.value.field == "public key"
