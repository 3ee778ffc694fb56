"""THE VPN functions used by the page and the CLI; each takes the :class:`Principal` asking.

Permissions: users see, download, rename and revoke their own peers (admins
everyone's); only admins add worker peers or peers for other users, keep a
client private key, enable/disable peers, and see or change the server
settings and the server config. Viewers only look at their (nonexistent) peers.

Disabling a user disables their peers (:func:`hivemind_core.auth.set_disabled`);
a peer of a disabled user cannot be enabled and is never in the server config.

Every read-modify-write runs in a ``BEGIN IMMEDIATE`` transaction
(:func:`~hivemind_core.sqlite.write_session`), so concurrent processes (app,
CLI) never hand out one address or name twice; changing one peer never touches
another peer's keys or addresses.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from hivemind_core.auth.users import get_user
from hivemind_core.auth.models import User
from hivemind_core.config import Settings, get_settings, streamlit_server_port
from hivemind_core.db import get_engine
from hivemind_core.errors import NotFoundError, PermissionDeniedError, ValidationError
from hivemind_core.principal import Principal
from hivemind_core.sqlite import read_session, write_session
from hivemind_core.vpn import keys, secret_box, validate
from hivemind_core.vpn.errors import VpnNotConfiguredError
from hivemind_core.vpn.ipam import Pool, first_free, parse_pool
from hivemind_core.vpn.models import PEER_KINDS, VpnPeer, VpnServerSettings
from hivemind_core.vpn.names import config_file_name, validate_peer_name
from hivemind_core.vpn.render import APPLY_COMMAND, PeerParams, ServerParams, render_client, render_server
from hivemind_core.vpn.server_keys import get_or_create_server_keypair
from hivemind_core.vpn.status import DEFAULT_INTERFACE, VpnStatus, read_status

log = logging.getLogger(__name__)

__all__ = [
    "APPLY_COMMAND", "NewPeer", "PeerView", "ServerSettingsView", "add_peer", "client_config",
    "find_peer", "get_server_settings", "list_peers", "peer_status", "rename_peer", "revoke_peer",
    "server_config", "set_peer_enabled", "update_server_settings",
]


@dataclass(frozen=True)
class ServerSettingsView:
    endpoint: str | None  # effective: page/CLI setting, else HIVEMIND_VPN_ENDPOINT
    endpoint_source: str  # "settings" | "environment" | "unset"
    port: int
    port_source: str  # "settings" | "environment/default"
    subnet: str
    server_address: str
    subnet_v6: str | None
    server_address_v6: str | None
    dns: str
    mtu: int | None
    keepalive: int
    node_pool_port: int
    web_port: int  # effective: the setting, else the port the web app runs on
    web_port_source: str  # "settings" | "app"
    server_public_key: str
    capacity: int
    peers_active: int


@dataclass(frozen=True)
class PeerView:
    id: int
    name: str
    owner: str
    kind: str
    public_key: str
    addresses: tuple[str, ...]
    enabled: bool
    byok: bool
    has_preshared_key: bool
    private_key_kept: bool
    full_tunnel: bool
    created_at: float
    revoked_at: float | None
    file_name: str


@dataclass(frozen=True)
class NewPeer:
    peer: PeerView
    config: str  # complete config; holds the private key unless the user brought their own
    file_name: str
    private_key_included: bool


# ---------------------------------------------------------------- helpers

def _engine(settings: Settings | None) -> tuple[Settings, Engine]:
    settings = settings or get_settings()
    return settings, get_engine(settings)


def _require_admin(who: Principal, action: str) -> None:
    if not who.is_admin:
        raise PermissionDeniedError(f"Only admins can {action}; ask an admin.")


def _load_settings_row(session: Session) -> VpnServerSettings:
    return session.get(VpnServerSettings, 1) or VpnServerSettings()


def _pools(row: VpnServerSettings) -> tuple[Pool, Pool | None]:
    pool = parse_pool(row.subnet, "subnet", version=4)
    pool_v6 = parse_pool(row.subnet_v6, "subnet_v6", version=6) if row.subnet_v6 else None
    return pool, pool_v6


def _effective_endpoint(row: VpnServerSettings, settings: Settings) -> tuple[str | None, str]:
    if row.endpoint:
        return row.endpoint, "settings"
    if settings.vpn_endpoint:
        return validate.endpoint_host(settings.vpn_endpoint), "environment"
    return None, "unset"


def _effective_web_port(row: VpnServerSettings) -> tuple[int, str]:
    if row.web_port:
        return row.web_port, "settings"
    return streamlit_server_port(), "app"


def _server_params(row: VpnServerSettings, settings: Settings, *, need_endpoint: bool) -> ServerParams:
    endpoint, _ = _effective_endpoint(row, settings)
    if need_endpoint and not endpoint:
        raise VpnNotConfiguredError(
            "The VPN endpoint is not set, so no client config can be made. An admin sets it on the VPN "
            "page, with `python -m hivemind_core vpn settings --endpoint HOST`, or HIVEMIND_VPN_ENDPOINT."
        )
    pool, pool_v6 = _pools(row)
    return ServerParams(
        endpoint=endpoint or "", port=row.port or settings.vpn_port,
        public_key=get_or_create_server_keypair(settings.data_dir).public_key,
        pool=pool, pool_v6=pool_v6,
        dns=tuple(d.strip() for d in row.dns.split(",") if d.strip()),
        mtu=row.mtu, keepalive=row.keepalive,
        node_pool_port=row.node_pool_port, web_port=_effective_web_port(row)[0],
    )


def _view(peer: VpnPeer) -> PeerView:
    return PeerView(
        id=int(peer.id or 0), name=peer.name, owner=peer.owner, kind=peer.kind, public_key=peer.public_key,
        addresses=tuple(peer.addresses), enabled=peer.enabled, byok=peer.byok,
        has_preshared_key=bool(peer.preshared_key_enc), private_key_kept=bool(peer.private_key_enc),
        full_tunnel=peer.full_tunnel, created_at=peer.created_at, revoked_at=peer.revoked_at,
        file_name=config_file_name(peer.name),
    )


def _peer_params(peer: VpnPeer, settings: Settings) -> PeerParams:
    psk = secret_box.decrypt(settings.data_dir, peer.preshared_key_enc) if peer.preshared_key_enc else None
    return PeerParams(
        name=peer.name, kind=peer.kind, public_key=peer.public_key,
        addresses=tuple(ipaddress.ip_address(a) for a in peer.addresses),
        preshared_key=psk, full_tunnel=peer.full_tunnel, owner=peer.owner,
    )


def _visible_peer(session: Session, who: Principal, peer_id: int) -> VpnPeer:
    peer = session.get(VpnPeer, peer_id)
    if peer is None or not who.can_see(peer.owner) or not peer.active:
        raise NotFoundError(f"There is no active VPN peer #{peer_id} that you can see.")
    return peer


def _active_peers(session: Session) -> list[VpnPeer]:
    return list(session.exec(select(VpnPeer).where(VpnPeer.revoked_at.is_(None)).order_by(VpnPeer.id)))


def _check_unique(session: Session, name: str, public_key: str | None, exclude_id: int | None = None) -> None:
    for peer in _active_peers(session):
        if peer.id == exclude_id:
            continue
        if peer.name == name:
            raise ValidationError(f"An active peer is already called {name!r}; pick another name.", field="name")
        if public_key and peer.public_key == public_key:
            raise ValidationError("That public key already belongs to an active peer; each device needs its own "
                                  "key pair (`wg genkey | tee private.key | wg pubkey`).", field="public key")


def _owner_account(name: str, engine: Engine) -> str:
    """The stored user name of an explicitly named owner: an existing, enabled account.

    A peer's owner sees, downloads and revokes it, so an owner that is no
    account would leave the peer to whoever later creates that user name."""
    text = name.strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValidationError("The owner must be a user name.", field="owner")
    user = get_user(text, engine=engine)
    if user is None:
        raise ValidationError(f"There is no user {text!r}: a peer's owner must be an existing user of the app "
                              "(an admin creates accounts on the Users page), or leave the owner out to own "
                              "the peer yourself.", field="owner")
    if user.disabled:
        raise ValidationError(f"The user {user.username!r} is disabled; re-enable the account first or choose "
                              "another owner.", field="owner")
    return user.username


# ---------------------------------------------------------------- server settings

def _settings_view(row: VpnServerSettings, settings: Settings, active: int) -> ServerSettingsView:
    endpoint, source = _effective_endpoint(row, settings)
    pool, pool_v6 = _pools(row)
    web_port, web_port_source = _effective_web_port(row)
    return ServerSettingsView(
        endpoint=endpoint, endpoint_source=source,
        port=row.port or settings.vpn_port, port_source="settings" if row.port else "environment/default",
        subnet=str(pool.network), server_address=str(pool.server_address),
        subnet_v6=str(pool_v6.network) if pool_v6 else None,
        server_address_v6=str(pool_v6.server_address) if pool_v6 else None,
        dns=row.dns, mtu=row.mtu, keepalive=row.keepalive,
        node_pool_port=row.node_pool_port, web_port=web_port, web_port_source=web_port_source,
        server_public_key=get_or_create_server_keypair(settings.data_dir).public_key,
        capacity=pool.capacity, peers_active=active,
    )


def get_server_settings(who: Principal, *, settings: Settings | None = None) -> ServerSettingsView:
    """The effective server settings (admins only)."""
    _require_admin(who, "see the VPN server settings")
    settings, engine = _engine(settings)
    with read_session(engine) as s:
        return _settings_view(_load_settings_row(s), settings, len(_active_peers(s)))


_UNCHANGED: Any = object()


def update_server_settings(
    who: Principal, *, endpoint: str | None = _UNCHANGED, port: int | None = _UNCHANGED,
    subnet: str = _UNCHANGED, subnet_v6: str | None = _UNCHANGED, dns: str | None = _UNCHANGED,
    mtu: int | None = _UNCHANGED, keepalive: int = _UNCHANGED, node_pool_port: int = _UNCHANGED,
    web_port: int | None = _UNCHANGED, settings: Settings | None = None,
) -> ServerSettingsView:
    """Change the given settings (admins only). ``None``/"" clears an optional one
    (endpoint and port then fall back to the environment / 51820, the web port to
    the port the web app runs on); port 0 is an error. While the web port follows
    the app, setting it to the app's current port keeps it following (a form
    that submits every shown value does not pin it).

    A subnet (IPv4 or IPv6) can change only if every active peer's address fits
    the new one, and the IPv6 subnet can be removed only while no active peer
    holds an IPv6 address: configs already handed out must keep matching, so
    nothing is renumbered. Adding an IPv6 subnet where there was none gives
    every active peer an IPv6 address too (intended: their IPv4 addresses stay,
    so old configs keep working over IPv4 and gain IPv6 once downloaded again).
    """
    _require_admin(who, "change the VPN server settings")
    settings, engine = _engine(settings)
    with write_session(engine) as s:
        row = _load_settings_row(s)
        if endpoint is not _UNCHANGED:
            row.endpoint = validate.endpoint_host(endpoint) if (endpoint or "").strip() else None
        if port is not _UNCHANGED:
            row.port = None if port in (None, "") else validate.port(port, "port")  # 0 is refused, not "unset"
        if node_pool_port is not _UNCHANGED:
            row.node_pool_port = validate.port(node_pool_port, "node pool port")
        if web_port is not _UNCHANGED:
            if web_port in (None, ""):
                row.web_port = 0
            else:
                chosen = validate.port(web_port, "web app port")
                row.web_port = 0 if (not row.web_port and chosen == streamlit_server_port()) else chosen
        if dns is not _UNCHANGED:
            row.dns = validate.dns_servers(dns)
        if keepalive is not _UNCHANGED:
            row.keepalive = validate.keepalive(keepalive)
        if subnet is not _UNCHANGED:
            row.subnet = str(parse_pool(subnet, "subnet", version=4).network)
        if subnet_v6 is not _UNCHANGED:
            row.subnet_v6 = str(parse_pool(subnet_v6, "subnet_v6", version=6).network) if subnet_v6 else None
        if mtu is not _UNCHANGED:
            row.mtu = mtu
        row.mtu = validate.mtu(row.mtu, ipv6=bool(row.subnet_v6))
        pool, pool_v6 = _pools(row)
        peers = _active_peers(s)
        for peer in peers:
            if peer.address_v4 and not pool.is_assignable(ipaddress.ip_address(peer.address_v4)):
                raise ValidationError(
                    f"Peer {peer.name!r} has {peer.address_v4}, which is not a peer address in {pool.network}. "
                    "Revoke the peers outside the new subnet first, or pick a subnet that contains them.",
                    field="subnet",
                )
            if peer.address_v6 and (pool_v6 is None or not pool_v6.is_assignable(ipaddress.ip_address(peer.address_v6))):
                change = f"outside {pool_v6.network}" if pool_v6 else "and removing the IPv6 subnet would take it away"
                raise ValidationError(
                    f"Peer {peer.name!r} has {peer.address_v6}, {change}; its config would no longer match. "
                    "Revoke the peers with IPv6 addresses first (`vpn list` shows them), or pick an IPv6 "
                    "subnet that contains their addresses.", field="subnet_v6",
                )
        if pool_v6 is not None:
            used = [ipaddress.ip_address(p.address_v6) for p in peers if p.address_v6]
            for peer in peers:
                if not peer.address_v6:
                    address = first_free(pool_v6, used)
                    used.append(address)
                    peer.address_v6 = str(address)
        for peer in peers:
            s.add(peer)
        row.updated_at, row.updated_by = time.time(), who.username
        s.add(row)
        s.commit()
        log.info("VPN server settings changed by %s", who.username)
        return _settings_view(row, settings, len(peers))


# ---------------------------------------------------------------- peers

def list_peers(who: Principal, *, include_revoked: bool = False,
               settings: Settings | None = None) -> list[PeerView]:
    """The caller's peers (admins: everyone's), oldest first."""
    _, engine = _engine(settings)
    with read_session(engine) as s:
        query = select(VpnPeer).order_by(VpnPeer.id)
        if not include_revoked:
            query = query.where(VpnPeer.revoked_at.is_(None))
        if not who.is_admin:
            query = query.where(VpnPeer.owner == who.username)
        return [_view(p) for p in s.exec(query)]


def find_peer(who: Principal, name: str, *, settings: Settings | None = None) -> PeerView:
    """The active peer called ``name`` that the caller can see."""
    for peer in list_peers(who, settings=settings):
        if peer.name == name.strip():
            return peer
    raise NotFoundError(f"There is no active VPN peer called {name!r} that you can see "
                        "(`python -m hivemind_core vpn list` shows them).")


def add_peer(
    who: Principal, name: str, *, owner: str | None = None, kind: str = "user",
    public_key: str | None = None, preshared_key: bool = False, full_tunnel: bool = False,
    keep_private_key: bool = False, settings: Settings | None = None,
    deliver: Callable[[NewPeer], None] | None = None,
) -> NewPeer:
    """Create a peer with the next free address(es) and return its config.

    ``owner`` (admins only, for anyone but themselves) must name an existing,
    enabled user, for worker peers too; left out, the peer belongs to ``who``.

    Without ``public_key`` the key pair is generated here and the config holds
    the private key, which is stored (encrypted) only with ``keep_private_key``
    (admins). With ``public_key`` (bring your own key) the config holds a
    marked placeholder instead.

    ``deliver`` (e.g. the CLI writing ``--output``) gets the new peer before it
    is committed; if it raises, nothing is stored and the address stays free,
    so a generated private key that could not be handed over never leaves an
    unusable peer behind.
    """
    if not who.can_submit:
        raise PermissionDeniedError("Viewers cannot add VPN peers; ask an admin for the analyst role.")
    settings, engine = _engine(settings)
    named = (owner or "").strip()
    if named and named.lower() != who.username:
        _require_admin(who, "add VPN peers for other users")
    owner = _owner_account(named, engine) if named else who.username
    if kind not in PEER_KINDS:
        raise ValidationError(f"The peer kind must be one of {', '.join(PEER_KINDS)}, got {kind!r}.", field="kind")
    if kind == "worker":
        _require_admin(who, "add worker peers (they may reach the node pool)")
    if keep_private_key:
        _require_admin(who, "keep a client's private key on the server")
    name = validate_peer_name(name)
    byok = bool(public_key and public_key.strip())
    if byok:
        pair = None
        public = keys.validate_public_key(public_key or "")
        if keep_private_key:
            raise ValidationError("With your own key there is no private key to keep.", field="public key")
    else:
        pair = keys.generate_keypair()
        public = pair.public_key
    psk = keys.generate_preshared_key() if preshared_key else None

    with write_session(engine) as s:
        row = _load_settings_row(s)
        server = _server_params(row, settings, need_endpoint=True)  # fail before storing anything
        _check_unique(s, name, public)
        active = _active_peers(s)
        v4 = first_free(server.pool, [ipaddress.ip_address(p.address_v4) for p in active if p.address_v4])
        v6 = None
        if server.pool_v6 is not None:
            v6 = first_free(server.pool_v6, [ipaddress.ip_address(p.address_v6) for p in active if p.address_v6])
        peer = VpnPeer(
            name=name, owner=owner, kind=kind, public_key=public, byok=byok,
            preshared_key_enc=secret_box.encrypt(settings.data_dir, psk) if psk else None,
            private_key_enc=secret_box.encrypt(settings.data_dir, pair.private_key) if (pair and keep_private_key) else None,
            full_tunnel=full_tunnel, address_v4=str(v4), address_v6=str(v6) if v6 else None,
            created_by=who.username,
        )
        s.add(peer)
        try:
            s.flush()
        except IntegrityError:
            # the constraints are the last line of defence; the checks above normally answer first
            raise ValidationError(f"A peer called {name!r} or with that key or address was just added; "
                                  "try again.", field="name") from None
        config = render_client(server, _peer_params(peer, settings), pair.private_key if pair else None)
        view = _view(peer)
        new = NewPeer(peer=view, config=config, file_name=view.file_name, private_key_included=pair is not None)
        if deliver is not None:
            deliver(new)  # raises: leaving the block rolls the insert back
        s.commit()
        log.info("VPN peer %r (%s, owner %s) added by %s at %s", name, kind, owner, who.username, peer.addresses)
    return new


def client_config(who: Principal, peer_id: int, *, settings: Settings | None = None) -> tuple[str, str]:
    """(config text, file name) of a peer the caller can see.

    Holds the private key only if an admin chose to keep it; otherwise a marked
    placeholder (the key was delivered once, at creation)."""
    settings, engine = _engine(settings)
    with read_session(engine) as s:
        peer = _visible_peer(s, who, peer_id)
        server = _server_params(_load_settings_row(s), settings, need_endpoint=True)
        private = secret_box.decrypt(settings.data_dir, peer.private_key_enc) if peer.private_key_enc else None
        text = render_client(server, _peer_params(peer, settings), private, byok=peer.byok)
        return text, config_file_name(peer.name)


def _modify(who: Principal, peer_id: int, settings: Settings | None, change, what: str) -> PeerView:  # noqa: ANN001
    settings, engine = _engine(settings)
    with write_session(engine) as s:
        peer = _visible_peer(s, who, peer_id)
        change(s, peer)
        s.add(peer)
        s.commit()
        log.info("VPN peer #%s %r: %s by %s", peer.id, peer.name, what, who.username)
        return _view(peer)


def _owner_disabled(session: Session, owner: str) -> bool:
    return bool(session.exec(select(User.disabled).where(User.username == owner)).first())


def set_peer_enabled(who: Principal, peer_id: int, enabled: bool, *,
                     settings: Settings | None = None) -> PeerView:
    """Include or leave out a peer in the server config (admins only); keys and addresses stay.
    A peer of a disabled user cannot be enabled."""
    _require_admin(who, "enable or disable VPN peers")

    def change(s: Session, peer: VpnPeer) -> None:
        if enabled and _owner_disabled(s, peer.owner):
            raise ValidationError(f"The owner {peer.owner!r} of peer {peer.name!r} is disabled; enable the "
                                  "account on the Users page first.", field="owner")
        peer.enabled = bool(enabled)

    return _modify(who, peer_id, settings, change, "enabled" if enabled else "disabled")


def rename_peer(who: Principal, peer_id: int, new_name: str, *, settings: Settings | None = None) -> PeerView:
    """Rename a peer (owner or admin); keys and addresses never change."""
    name = validate_peer_name(new_name)

    def change(s: Session, peer: VpnPeer) -> None:
        _check_unique(s, name, None, exclude_id=peer.id)
        peer.name = name

    return _modify(who, peer_id, settings, change, f"renamed to {name!r}")


def revoke_peer(who: Principal, peer_id: int, *, settings: Settings | None = None) -> PeerView:
    """Revoke a peer (owner or admin): it leaves the server config, its address is freed
    for reuse, its stored secrets are erased. The row stays for the record."""

    def change(_s: Session, peer: VpnPeer) -> None:
        peer.revoked_addresses = ", ".join(peer.addresses)
        peer.address_v4 = peer.address_v6 = None
        peer.preshared_key_enc = peer.private_key_enc = None
        peer.enabled = False
        peer.revoked_at, peer.revoked_by = time.time(), who.username

    return _modify(who, peer_id, settings, change, "revoked")


# ---------------------------------------------------------------- server config and status

def server_config(who: Principal, *, settings: Settings | None = None) -> str:
    """The server's ``wg0.conf`` with every enabled peer of an enabled user (admins only)."""
    _require_admin(who, "see the VPN server config (it holds the server's private key)")
    settings, engine = _engine(settings)
    with read_session(engine) as s:
        server = _server_params(_load_settings_row(s), settings, need_endpoint=False)
        disabled = set(s.exec(select(User.username).where(User.disabled == True)))  # noqa: E712
        peers = [_peer_params(p, settings) for p in _active_peers(s) if p.enabled and p.owner not in disabled]
    private = get_or_create_server_keypair(settings.data_dir).private_key
    return render_server(server, private, peers)


def peer_status(who: Principal, interface: str = DEFAULT_INTERFACE, *,
                settings: Settings | None = None) -> VpnStatus:
    """Live handshake/transfer of the caller's peers (admins: all), or why it is unavailable."""
    status = read_status(interface)
    if not status.available:
        return status
    visible = {p.public_key for p in list_peers(who, settings=settings)}
    return VpnStatus(status.interface, True, "", {k: v for k, v in status.peers.items() if k in visible})
