"""Role-based network access on the server, as wg-quick ``PostUp``/``PostDown`` commands.

Everything arriving from the VPN interface goes through our own chains, which
accept only: replies to connections the server opened, ping to the server,
DNS to the server when it is the peers' DNS server, the node pool port from
worker peers, the web app port from user peers — each to the server's VPN
address only. Full-tunnel peers may additionally be forwarded out of the
server (NAT); nothing else is forwarded, so peers cannot reach each other.

The chains are rebuilt from scratch on each ``PostUp`` (create or flush), so
re-running it is safe. The rules name each peer's address, so they change when
peers are added or revoked: ``wg syncconf`` only updates peers, re-applying
the rules takes ``wg-quick down wg0 && wg-quick up wg0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hivemind_core.vpn.ipam import IPAddress, Pool

CHAIN_IN = "HIVEMIND-VPN-IN"
CHAIN_FWD = "HIVEMIND-VPN-FWD"


@dataclass(frozen=True)
class PeerAccess:
    kind: str  # user | worker
    addresses: tuple[IPAddress, ...]
    full_tunnel: bool = False


def _family_rules(tool: str, pool: Pool, peers: Sequence[PeerAccess], ports: dict[str, int],
                  dns_on_server: bool) -> tuple[list[str], list[str]]:
    server = f"{pool.server_address}/{pool.host_prefix}"
    icmp = "icmp" if pool.network.version == 4 else "ipv6-icmp"
    up = [
        f"{tool} -N {CHAIN_IN} 2>/dev/null || {tool} -F {CHAIN_IN}",
        f"{tool} -N {CHAIN_FWD} 2>/dev/null || {tool} -F {CHAIN_FWD}",
        f"{tool} -A {CHAIN_IN} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        f"{tool} -A {CHAIN_IN} -d {server} -p {icmp} -j ACCEPT",
    ]
    if dns_on_server:
        for proto in ("udp", "tcp"):
            up.append(f"{tool} -A {CHAIN_IN} -s {pool.network} -d {server} -p {proto} --dport 53 -j ACCEPT")
    full_tunnel = False
    for peer in peers:
        for address in peer.addresses:
            if address.version != pool.network.version:
                continue
            source = f"{address}/{pool.host_prefix}"
            up.append(f"{tool} -A {CHAIN_IN} -s {source} -d {server} -p tcp --dport {ports[peer.kind]} -j ACCEPT")
            if peer.full_tunnel:
                full_tunnel = True
                up.append(f"{tool} -A {CHAIN_FWD} -s {source} ! -o %i -j ACCEPT")
    up += [
        f"{tool} -A {CHAIN_IN} -j DROP",
        f"{tool} -A {CHAIN_FWD} -j DROP",
        f"{tool} -C INPUT -i %i -j {CHAIN_IN} 2>/dev/null || {tool} -I INPUT -i %i -j {CHAIN_IN}",
        f"{tool} -C FORWARD -i %i -j {CHAIN_FWD} 2>/dev/null || {tool} -I FORWARD -i %i -j {CHAIN_FWD}",
        # replies to forwarded full-tunnel traffic come back in through the other interface
        f"{tool} -C FORWARD -o %i -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT 2>/dev/null"
        f" || {tool} -I FORWARD -o %i -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    ]
    nat = f"POSTROUTING -s {pool.network} ! -o %i -j MASQUERADE"
    if full_tunnel:
        up.append(f"{tool} -t nat -C {nat} 2>/dev/null || {tool} -t nat -A {nat}")
    down = [
        f"{tool} -D INPUT -i %i -j {CHAIN_IN} 2>/dev/null || true",
        f"{tool} -D FORWARD -i %i -j {CHAIN_FWD} 2>/dev/null || true",
        f"{tool} -D FORWARD -o %i -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT 2>/dev/null || true",
        f"{tool} -t nat -D {nat} 2>/dev/null || true",
        f"{tool} -F {CHAIN_IN} 2>/dev/null || true",
        f"{tool} -X {CHAIN_IN} 2>/dev/null || true",
        f"{tool} -F {CHAIN_FWD} 2>/dev/null || true",
        f"{tool} -X {CHAIN_FWD} 2>/dev/null || true",
    ]
    return up, down


def firewall_commands(pools: Sequence[Pool], peers: Sequence[PeerAccess], *, node_pool_port: int,
                      web_port: int, dns_servers: Sequence[str] = ()) -> tuple[str, str]:
    """(PostUp, PostDown): each one shell line of ``;``-separated commands (one key per
    section keeps even the strictest parsers happy)."""
    ports = {"worker": node_pool_port, "user": web_port}
    up: list[str] = []
    down: list[str] = []
    for pool in pools:
        tool = "iptables" if pool.network.version == 4 else "ip6tables"
        dns_on_server = str(pool.server_address) in dns_servers
        u, d = _family_rules(tool, pool, peers, ports, dns_on_server)
        up += u
        down += d
    return "; ".join(up), "; ".join(down)
