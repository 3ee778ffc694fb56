"""Service rules: who sees what, what changes touch, secrets at rest, file modes, status."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from hivemind_core import auth
from hivemind_core.auth.models import User
from hivemind_core.config import get_settings
from hivemind_core.db import get_engine
from hivemind_core.errors import NotFoundError, PermissionDeniedError, ValidationError
from hivemind_core.principal import Principal
from hivemind_core.sqlite import write_session
from hivemind_core.vpn import service
from hivemind_core.vpn.errors import VpnNotConfiguredError
from hivemind_core.vpn.models import VpnPeer
from hivemind_core.vpn.render import BYOK_PLACEHOLDER
from hivemind_core.vpn.server_keys import server_key_path
from hivemind_core.vpn.status import read_status
from tests.vpn_wg import uapi_available, uapi_device, wg_genkey, wg_pubkey

ADMIN = Principal("root", "admin")
ALICE = Principal("alice", "analyst")
BOB = Principal("bob", "analyst")
VIEWER = Principal("vera", "viewer")


@pytest.fixture
def configured() -> None:
    service.update_server_settings(ADMIN, endpoint="vpn.example.org")


def test_endpoint_required_before_any_peer_and_env_default(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(VpnNotConfiguredError, match="endpoint is not set"):
        service.add_peer(ALICE, "laptop")
    assert service.list_peers(ADMIN) == []  # nothing stored
    monkeypatch.setenv("VPN_SERVER_IP", "198.51.100.9")  # the seed's name
    monkeypatch.setenv("VPN_PORT", "51999")
    view = service.get_server_settings(ADMIN)
    assert (view.endpoint, view.endpoint_source, view.port) == ("198.51.100.9", "environment", 51999)
    assert "Endpoint = 198.51.100.9:51999" in service.add_peer(ALICE, "laptop").config
    monkeypatch.setenv("HIVEMIND_VPN_ENDPOINT", "vpn.hivemind.test")  # wins over the alias
    assert service.get_server_settings(ADMIN).endpoint == "vpn.hivemind.test"
    service.update_server_settings(ADMIN, endpoint="2001:db8::5", port=4500)  # the page setting wins
    text, _ = service.client_config(ALICE, service.find_peer(ALICE, "laptop").id)
    assert "Endpoint = [2001:db8::5]:4500" in text


def test_analyst_sees_and_downloads_only_own_peers(configured: None) -> None:
    a = service.add_peer(ALICE, "alice laptop").peer
    b = service.add_peer(BOB, "bob laptop").peer
    w = service.add_peer(ADMIN, "worker-1", kind="worker").peer  # belongs to the admin who added it
    assert [p.name for p in service.list_peers(ALICE)] == ["alice laptop"]
    assert [p.name for p in service.list_peers(BOB)] == ["bob laptop"]
    assert [p.name for p in service.list_peers(ADMIN)] == ["alice laptop", "bob laptop", "worker-1"]
    assert service.list_peers(VIEWER) == []
    text, name = service.client_config(ALICE, a.id)
    assert name == "alice-laptop.conf" and a.addresses[0] in text
    for other in (b, w):
        with pytest.raises(NotFoundError):
            service.client_config(ALICE, other.id)
        with pytest.raises(NotFoundError):
            service.revoke_peer(ALICE, other.id)
        with pytest.raises(NotFoundError):
            service.rename_peer(ALICE, other.id, "mine now")
    with pytest.raises(NotFoundError):
        service.find_peer(ALICE, "bob laptop")
    assert service.client_config(ADMIN, b.id)[1] == "bob-laptop.conf"  # admins see all


@pytest.mark.parametrize("who", [ALICE, VIEWER])
def test_only_admins_see_server_settings_and_config(who: Principal, configured: None) -> None:
    for call in (lambda: service.get_server_settings(who), lambda: service.server_config(who),
                 lambda: service.update_server_settings(who, endpoint="evil.example")):
        with pytest.raises(PermissionDeniedError, match="Only admins"):
            call()
    assert service.get_server_settings(ADMIN).endpoint == "vpn.example.org"


def test_what_non_admins_may_not_do(configured: None) -> None:
    with pytest.raises(PermissionDeniedError):
        service.add_peer(VIEWER, "viewer box")
    with pytest.raises(PermissionDeniedError):
        service.add_peer(ALICE, "for bob", owner="bob")
    with pytest.raises(PermissionDeniedError):
        service.add_peer(ALICE, "sneaky worker", kind="worker")
    with pytest.raises(PermissionDeniedError):
        service.add_peer(ALICE, "keep it", keep_private_key=True)
    mine = service.add_peer(ALICE, "mine").peer
    with pytest.raises(PermissionDeniedError):
        service.set_peer_enabled(ALICE, mine.id, False)
    service.revoke_peer(ALICE, mine.id)  # own peer: allowed
    assert service.list_peers(ALICE) == []


def test_changes_to_one_peer_never_touch_others(configured: None) -> None:
    service.update_server_settings(ADMIN, subnet_v6="fd10::/64")
    peers = [service.add_peer(ADMIN, f"p{i}", preshared_key=i % 2 == 0).peer for i in range(6)]
    before = {p.id: (p.public_key, p.addresses, p.has_preshared_key) for p in service.list_peers(ADMIN)}
    target = peers[2]
    service.set_peer_enabled(ADMIN, target.id, False)
    service.set_peer_enabled(ADMIN, target.id, True)
    renamed = service.rename_peer(ADMIN, target.id, "renamed")
    assert (renamed.public_key, renamed.addresses) == (target.public_key, target.addresses)  # no new keys
    service.revoke_peer(ADMIN, peers[4].id)
    after = {p.id: (p.public_key, p.addresses, p.has_preshared_key) for p in service.list_peers(ADMIN)}
    del before[peers[4].id]
    assert after == before


def test_names_validated_and_unique(configured: None) -> None:
    for bad in ("", "   ", "evil\nname", "tab\there", "bell\x07", "rtl\u202eoverride"):
        with pytest.raises(ValidationError) as err:
            service.add_peer(ALICE, bad)
        assert err.value.field == "name"
    p = service.add_peer(ALICE, "Ünïcode laptop 💻").peer
    assert p.name == "Ünïcode laptop 💻" and p.file_name == "Unicode-laptop.conf"
    with pytest.raises(ValidationError, match="already called"):
        service.add_peer(BOB, "Ünïcode laptop 💻")
    service.revoke_peer(ALICE, p.id)
    service.add_peer(BOB, "Ünïcode laptop 💻")  # a revoked peer's name is free again


def test_byok_key_reuse_rejected(configured: None) -> None:
    public = wg_pubkey(wg_genkey())
    new = service.add_peer(ALICE, "own key", public_key=public)
    assert new.peer.byok and new.peer.public_key == public and not new.private_key_included
    with pytest.raises(ValidationError, match="already belongs"):
        service.add_peer(BOB, "same key", public_key=public)
    with pytest.raises(ValidationError, match="canonical|not a WireGuard key|base64"):
        service.add_peer(BOB, "typo", public_key=public[:-2] + "x=")


def test_database_enforces_unique_addresses(configured: None) -> None:
    """Even code that skipped the allocator could not store one address twice."""
    p = service.add_peer(ADMIN, "first").peer
    engine = get_engine(get_settings())
    with write_session(engine) as s:
        s.add(VpnPeer(name="forged", owner="x", public_key=wg_pubkey(wg_genkey()), address_v4=p.addresses[0]))
        with pytest.raises(IntegrityError):
            s.commit()


def test_secrets_at_rest(configured: None, data_dir: Path) -> None:
    kept = service.add_peer(ADMIN, "kept", keep_private_key=True, preshared_key=True)
    once = service.add_peer(ADMIN, "once", preshared_key=True)
    db_bytes = b"".join(f.read_bytes() for f in data_dir.glob("master.db*"))

    def value(config: str, key: str) -> str:
        return next(line.split(" = ", 1)[1] for line in config.splitlines() if line.startswith(key + " = "))

    server_private = server_key_path(data_dir).read_text().strip()
    for secret in (value(kept.config, "PrivateKey"), value(kept.config, "PresharedKey"),
                   value(once.config, "PrivateKey"), value(once.config, "PresharedKey"), server_private):
        assert secret.encode() not in db_bytes
        assert base64.b64decode(secret).hex().encode() not in db_bytes
    assert stat.S_IMODE(os.stat(server_key_path(data_dir)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(server_key_path(data_dir).parent).st_mode) == 0o700
    assert wg_pubkey(server_private) == service.get_server_settings(ADMIN).server_public_key
    # kept: downloadable again in full; not kept: placeholder, the key is gone
    again, _ = service.client_config(ADMIN, kept.peer.id)
    assert again == kept.config
    later, _ = service.client_config(ADMIN, once.peer.id)
    assert value(once.config, "PrivateKey") not in later and BYOK_PLACEHOLDER in later
    assert value(once.config, "PresharedKey") in later
    # revoking erases the stored secrets
    service.revoke_peer(ADMIN, kept.peer.id)
    with write_session(get_engine(get_settings())) as s:
        row = s.get(VpnPeer, kept.peer.id)
        assert row.private_key_enc is None and row.preshared_key_enc is None and row.address_v4 is None


def test_status_unavailable_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    status = read_status("hmnosuchif0")
    assert not status.available and "wg show hmnosuchif0" in status.reason
    monkeypatch.setenv("PATH", "/nonexistent")
    status = read_status("wg0")
    assert not status.available and "not installed" in status.reason


@pytest.mark.skipif(not uapi_available(), reason="needs root to serve a userspace WireGuard API socket")
def test_status_from_real_wg_show(configured: None) -> None:
    alice = service.add_peer(ALICE, "alice laptop").peer
    bob = service.add_peer(BOB, "bob laptop").peer
    fake_peers = [
        {"public_key": base64.b64decode(alice.public_key).hex(), "last_handshake_time_sec": "1760000000",
         "last_handshake_time_nsec": "5", "rx_bytes": "1234", "tx_bytes": "5678"},
        {"public_key": base64.b64decode(bob.public_key).hex(), "last_handshake_time_sec": "0",
         "last_handshake_time_nsec": "0", "rx_bytes": "0", "tx_bytes": "0"},
    ]
    with uapi_device(fake_peers) as device:
        # what the status commands print holds no private key
        out = subprocess.run(["wg", "show", device.name, "latest-handshakes"], capture_output=True, text=True,
                             timeout=10).stdout
        assert alice.public_key in out
        everyone = service.peer_status(ADMIN, device.name)
        mine = service.peer_status(ALICE, device.name)
    assert everyone.available and set(everyone.peers) == {alice.public_key, bob.public_key}
    a = everyone.peers[alice.public_key]
    assert (a.latest_handshake, a.rx_bytes, a.tx_bytes) == (1760000000.0, 1234, 5678)
    assert everyone.peers[bob.public_key].latest_handshake is None
    assert set(mine.peers) == {alice.public_key}  # analysts see only their own peers' status


def test_owner_must_be_an_existing_enabled_user(configured: None) -> None:
    """One rule for page, CLI and API: a named owner is an account; nothing is stored otherwise."""
    auth.create_first_admin("root", "a long enough passphrase 42")
    auth.create_user(ADMIN, "alice", "a long enough passphrase 42", "analyst")
    auth.create_user(ADMIN, "dora", "a long enough passphrase 42", "analyst")
    auth.set_disabled(ADMIN, "dora", True)
    for owner, kind, words in [("nosuchuser", "user", "no user 'nosuchuser'"),
                               ("nosuchuser", "worker", "no user 'nosuchuser'"),
                               ("dora", "user", "'dora' is disabled"), ("dora", "worker", "'dora' is disabled")]:
        with pytest.raises(ValidationError, match=words) as err:
            service.add_peer(ADMIN, f"for {owner} {kind}", owner=owner, kind=kind)
        assert err.value.field == "owner"
    assert service.list_peers(ADMIN) == []  # nothing stored, no address taken
    # an existing user in any case/spacing: stored under the account's name, so that user sees it
    peer = service.add_peer(ADMIN, "alice laptop", owner="  Alice ").peer
    assert peer.owner == "alice" and peer.addresses == ("10.0.0.2",)
    assert [p.name for p in service.list_peers(ALICE)] == ["alice laptop"]
    # without an owner a peer (user or worker) belongs to whoever adds it
    assert service.add_peer(ADMIN, "node 1", kind="worker").peer.owner == "root"
    assert service.add_peer(ALICE, "alice phone").peer.owner == "alice"
    # the permission check still comes first for analysts
    with pytest.raises(PermissionDeniedError):
        service.add_peer(ALICE, "for nobody", owner="nosuchuser")


def test_disabling_a_user_disables_their_peers_and_enabling_leaves_them_off(configured: None) -> None:
    auth.create_first_admin("root", "a long enough passphrase 42")
    auth.create_user(ADMIN, "alice", "a long enough passphrase 42", "analyst")
    auth.create_user(ADMIN, "bob", "a long enough passphrase 42", "analyst")
    laptop = service.add_peer(ALICE, "alice laptop").peer
    phone = service.add_peer(ALICE, "alice phone").peer
    bobs = service.add_peer(BOB, "bob laptop").peer
    old = service.add_peer(ALICE, "alice old").peer
    service.revoke_peer(ALICE, old.id)

    def enabled() -> dict[str, bool]:
        return {p.name: p.enabled for p in service.list_peers(ADMIN)}

    auth.set_disabled(ADMIN, "alice", True)
    assert enabled() == {"alice laptop": False, "alice phone": False, "bob laptop": True}
    config = service.server_config(ADMIN)
    assert laptop.public_key not in config and phone.public_key not in config and bobs.public_key in config
    with pytest.raises(ValidationError, match="'alice' of peer 'alice laptop' is disabled"):
        service.set_peer_enabled(ADMIN, laptop.id, True)
    # enabling the account again brings no device back on its own: an admin enables the wanted ones
    auth.set_disabled(ADMIN, "alice", False)
    assert enabled() == {"alice laptop": False, "alice phone": False, "bob laptop": True}
    service.set_peer_enabled(ADMIN, laptop.id, True)
    config = service.server_config(ADMIN)
    assert laptop.public_key in config and phone.public_key not in config
    # a peer left enabled for a disabled owner (disabled before this rule) is still not in the config
    with write_session(get_engine()) as s:
        s.get(VpnPeer, phone.id).enabled = True
        s.commit()
    with write_session(get_engine()) as s:
        user = s.exec(select(User).where(User.username == "alice")).one()
        user.disabled = True
        s.commit()
    assert phone.public_key not in service.server_config(ADMIN)


def test_failed_delivery_stores_no_peer(configured: None, tmp_path: Path) -> None:
    """add_peer's deliver hook runs before the commit: if writing the config fails (here a real
    IsADirectoryError from atomic_write), the peer, its name and its address are not kept."""
    from hivemind_core.fileutil import atomic_write

    target = tmp_path / "taken.conf"
    target.mkdir()
    with pytest.raises(IsADirectoryError):
        service.add_peer(ADMIN, "laptop", deliver=lambda new: atomic_write(target, new.config))
    assert service.list_peers(ADMIN, include_revoked=True) == []
    delivered: list[service.NewPeer] = []
    new = service.add_peer(ADMIN, "laptop", deliver=delivered.append)
    assert new.peer.addresses == ("10.0.0.2",) and delivered == [new]
    assert service.list_peers(ADMIN) == [new.peer]
