"""``python -m hivemind_core vpn ...`` — the VPN service from the command line.

The CLI has direct access to the data dir, which is admin power already, so it
acts as :data:`~hivemind_core.principal.LOCAL_ADMIN`. Files (configs) are
written 0600 via a temp file and an atomic rename.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from hivemind_core.principal import LOCAL_ADMIN
from hivemind_core.vpn import service
from hivemind_core.vpn.models import PEER_KINDS
from hivemind_core.vpn.output_file import prepare_output, write_output


def _write_or_print(text: str, output: Path | None) -> None:
    if output:
        print(f"wrote {write_output(output, text)} (mode 0600)")
    else:
        sys.stdout.write(text)


def _port_or_unset(text: str) -> int | str:
    """``--port``, ``--web-port``: a whole number (checked by the service, so 0 is refused) or '' to unset."""
    if not text.strip():
        return ""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None


def _settings(args: argparse.Namespace) -> int:
    changes = {
        key: getattr(args, key)
        for key in ("endpoint", "port", "subnet", "subnet_v6", "dns", "mtu", "keepalive",
                    "node_pool_port", "web_port")
        if getattr(args, key) is not None
    }
    view = (service.update_server_settings(LOCAL_ADMIN, **changes) if changes
            else service.get_server_settings(LOCAL_ADMIN))
    rows = [
        ("endpoint", f"{view.endpoint or '(not set)'}  [{view.endpoint_source}]"),
        ("port", f"{view.port}  [{view.port_source}]"),
        ("subnet", f"{view.subnet} (server {view.server_address}, room for {view.capacity} peers)"),
        ("subnet v6", f"{view.subnet_v6} (server {view.server_address_v6})" if view.subnet_v6 else "(none)"),
        ("dns", view.dns or "(none)"),
        ("mtu", str(view.mtu or "(automatic)")),
        ("keepalive", f"{view.keepalive} s" if view.keepalive else "off"),
        ("node pool port", str(view.node_pool_port)),
        ("web app port", f"{view.web_port}  [{view.web_port_source}]"),
        ("server public key", view.server_public_key),
        ("active peers", str(view.peers_active)),
    ]
    for key, value in rows:
        print(f"{key:<18} {value}")
    return 0


def _add_peer(args: argparse.Namespace) -> int:
    output = prepare_output(args.output) if args.output else None  # before anything is stored
    written: list[Path] = []

    def deliver(new: service.NewPeer) -> None:  # inside the peer's transaction: a failed write stores nothing
        if output:
            written.append(write_output(output, new.config))

    try:
        new = service.add_peer(
            LOCAL_ADMIN, args.name, owner=args.owner, kind=args.kind, public_key=args.public_key,
            preshared_key=args.preshared_key, full_tunnel=args.full_tunnel,
            keep_private_key=args.keep_private_key, deliver=deliver,
        )
    except BaseException:
        for path in written:  # written, but the peer was not stored after all
            path.unlink(missing_ok=True)
        raise
    if output:
        print(f"wrote {written[0]} (mode 0600)")
    else:
        sys.stdout.write(new.config)
    where = ", ".join(new.peer.addresses)
    note = "" if new.private_key_included else "; fill in your private key where the config says"
    print(f"added peer {new.peer.name!r} (owner {new.peer.owner}, {new.peer.kind}) at {where}{note}",
          file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    peers = service.list_peers(LOCAL_ADMIN, include_revoked=args.all)
    if not peers:
        print("no peers")
        return 0
    header = f"{'name':<24} {'owner':<14} {'kind':<7} {'state':<9} {'addresses':<30} public key"
    print(header)
    for p in peers:
        state = "revoked" if p.revoked_at else ("enabled" if p.enabled else "disabled")
        print(f"{p.name:<24} {p.owner:<14} {p.kind:<7} {state:<9} {', '.join(p.addresses) or '-':<30} "
              f"{p.public_key}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    peer = service.find_peer(LOCAL_ADMIN, args.name)
    service.revoke_peer(LOCAL_ADMIN, peer.id)
    print(f"revoked peer {peer.name!r}; freed {', '.join(peer.addresses)}. Apply on the server: "
          f"{service.APPLY_COMMAND}")
    return 0


def _enable(args: argparse.Namespace) -> int:
    peer = service.find_peer(LOCAL_ADMIN, args.name)
    service.set_peer_enabled(LOCAL_ADMIN, peer.id, args.command_name == "enable")
    print(f"{args.command_name}d peer {peer.name!r}. Apply on the server: {service.APPLY_COMMAND}")
    return 0


def _server_config(args: argparse.Namespace) -> int:
    output = prepare_output(args.output) if args.output else None
    _write_or_print(service.server_config(LOCAL_ADMIN), output)
    if args.output:
        print(f"apply it on the VPN server: {service.APPLY_COMMAND}")
    return 0


def _status(args: argparse.Namespace) -> int:
    status = service.peer_status(LOCAL_ADMIN, args.interface)
    if not status.available:
        print(f"status unavailable because {status.reason}")
        return 1
    names = {p.public_key: p.name for p in service.list_peers(LOCAL_ADMIN)}
    for key, st in status.peers.items():
        seen = dt.datetime.fromtimestamp(st.latest_handshake).isoformat(sep=" ", timespec="seconds") \
            if st.latest_handshake else "never"
        print(f"{names.get(key, key):<24} handshake {seen:<20} rx {st.rx_bytes} B  tx {st.tx_bytes} B")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    vpn = subparsers.add_parser("vpn", help="WireGuard VPN: server settings, peers, configs")
    sub = vpn.add_subparsers(dest="vpn_command", metavar="VPN_COMMAND", required=True)

    p = sub.add_parser("settings", help="show or change the VPN server settings")
    p.add_argument("--endpoint", help="public IPv4/IPv6 address or DNS name of the VPN server; "
                   "'' unsets it (then HIVEMIND_VPN_ENDPOINT is used)")
    p.add_argument("--port", type=_port_or_unset, help="UDP port the server listens on, 1-65535; "
                   "'' unsets it (then HIVEMIND_VPN_PORT or 51820)")
    p.add_argument("--subnet", help="IPv4 VPN subnet (default 10.0.0.0/24; server on the first address)")
    p.add_argument("--subnet-v6", dest="subnet_v6",
                   help="optional IPv6 VPN subnet, e.g. fd42:42:42::/64; '' removes it. Adding one gives "
                   "existing peers an IPv6 address too; changing or removing it is refused while peers "
                   "hold IPv6 addresses outside the new one (revoke them first)")
    p.add_argument("--dns", help="DNS servers for clients, comma-separated IPs; '' removes them")
    p.add_argument("--mtu", type=int, help="interface MTU (0 = automatic)")
    p.add_argument("--keepalive", type=int, help="PersistentKeepalive seconds for clients (0 = off, default 25)")
    p.add_argument("--node-pool-port", dest="node_pool_port", type=int, help="TCP port worker peers may reach (50051)")
    p.add_argument("--web-port", dest="web_port", type=_port_or_unset,
                   help="TCP port user peers may reach; '' (the default) follows the port the web app runs on "
                   "(Streamlit's server.port: STREAMLIT_SERVER_PORT or .streamlit/config.toml, else 8501)")
    p.set_defaults(func=_settings)

    p = sub.add_parser("add-peer", help="add a peer and print (or --output) its client config")
    p.add_argument("name")
    p.add_argument("--owner", help="existing, enabled app user the peer belongs to (they see and download it), "
                   "for worker peers too; default: the CLI's local admin 'admin'")
    p.add_argument("--kind", choices=PEER_KINDS, default="user", help="user (web app access) or worker (node pool)")
    p.add_argument("--public-key", dest="public_key", help="bring your own key: the device's public key")
    p.add_argument("--preshared-key", dest="preshared_key", action="store_true", help="add a preshared key")
    p.add_argument("--full-tunnel", dest="full_tunnel", action="store_true",
                   help="route all traffic through the VPN (default: only the VPN subnet)")
    p.add_argument("--keep-private-key", dest="keep_private_key", action="store_true",
                   help="store the generated private key (encrypted) so the config can be downloaded again")
    p.add_argument("--output", help="write the config to this file (0600) instead of stdout")
    p.set_defaults(func=_add_peer)

    p = sub.add_parser("list", help="list peers")
    p.add_argument("--all", action="store_true", help="include revoked peers")
    p.set_defaults(func=_list)

    p = sub.add_parser("revoke", help="revoke a peer (frees its address)")
    p.add_argument("name")
    p.set_defaults(func=_revoke)

    for name in ("enable", "disable"):
        p = sub.add_parser(name, help=f"{name} a peer in the server config")
        p.add_argument("name")
        p.set_defaults(func=_enable, command_name=name)

    p = sub.add_parser("server-config", help="print (or --output) the server's wg0.conf")
    p.add_argument("--output", help="write it to this file (0600) instead of stdout")
    p.set_defaults(func=_server_config)

    p = sub.add_parser("status", help="latest handshake and transfer per peer (needs wg and the interface)")
    p.add_argument("--interface", default="wg0")
    p.set_defaults(func=_status)
