"""Address pools: which addresses of a VPN subnet a peer may get.

Reserved in every pool: the network address, the last address (IPv4
broadcast; in IPv6 skipped too so both families follow one rule) and the
server's address, the first host. Peers get the lowest free address above the
server, so addresses freed by revoked peers are handed out again first.

These functions are pure; the service calls :func:`first_free` inside a
``BEGIN IMMEDIATE`` transaction, and the peers table has a unique constraint on
each address column, so two processes can never hand out one address twice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from hivemind_core.errors import ValidationError
from hivemind_core.vpn.errors import AddressPoolFullError, PoolTooSmallError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESERVED_PER_POOL = 3  # network, server, last address

# Address blocks no VPN subnet may touch, each named after the ipaddress property
# (is_unspecified, is_loopback, is_link_local, is_multicast, is_reserved,
# is_site_local) of its addresses. Checked by overlap, not by the subnet's own
# properties: ipaddress calls a network loopback only when *both* ends are, so
# 0.0.0.0/1 or 160.0.0.0/3 (which holds 169.254.0.0/16) would slip through.
UNUSABLE_BLOCKS: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.ip_network("0.0.0.0/8"), "the unspecified address 0.0.0.0 ('this network', 0.0.0.0/8)"),
    (ipaddress.ip_network("127.0.0.0/8"), "loopback addresses (127.0.0.0/8)"),
    (ipaddress.ip_network("169.254.0.0/16"), "link-local addresses (169.254.0.0/16)"),
    (ipaddress.ip_network("224.0.0.0/4"), "multicast addresses (224.0.0.0/4)"),
    (ipaddress.ip_network("240.0.0.0/4"), "reserved addresses (240.0.0.0/4, with the broadcast 255.255.255.255)"),
    (ipaddress.ip_network("::/8"), "the unspecified address :: and loopback ::1 (reserved ::/8)"),
    (ipaddress.ip_network("fe80::/10"), "link-local addresses (fe80::/10)"),
    (ipaddress.ip_network("fec0::/10"), "deprecated site-local addresses (fec0::/10)"),
    (ipaddress.ip_network("ff00::/8"), "multicast addresses (ff00::/8)"),
)
PRIVATE_EXAMPLE = {4: "a private range such as 10.0.0.0/24 (or inside 172.16.0.0/12, 192.168.0.0/16)",
                   6: "a unique local (ULA) range such as fd00::/64 (RFC 4193: better a random fdXX:XXXX:XXXX::/64)"}


@dataclass(frozen=True)
class Pool:
    network: IPNetwork

    @property
    def server_address(self) -> IPAddress:
        return self.network.network_address + 1

    @property
    def first_peer_address(self) -> IPAddress:
        return self.network.network_address + 2

    @property
    def last_peer_address(self) -> IPAddress:
        return self.network.broadcast_address - 1

    @property
    def capacity(self) -> int:
        """How many peers fit."""
        return self.network.num_addresses - RESERVED_PER_POOL

    @property
    def host_prefix(self) -> int:
        return self.network.max_prefixlen

    def is_assignable(self, address: IPAddress) -> bool:
        return (
            address.version == self.network.version
            and self.first_peer_address <= address <= self.last_peer_address
        )

    def server_interface(self) -> str:
        """The server's ``Address`` entry, e.g. ``10.0.0.1/24``."""
        return f"{self.server_address}/{self.network.prefixlen}"


def parse_pool(cidr: str, field: str = "subnet", version: int | None = None) -> Pool:
    """A :class:`Pool` for ``cidr``; :class:`ValidationError` with a fix when unusable."""
    text = (cidr or "").strip()
    family = {4: "IPv4", 6: "IPv6", None: "IP"}[version]
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        example = "fd42:42:42::/64" if version == 6 else "10.0.0.0/24"
        raise ValidationError(
            f"{text!r} is not an {family} subnet; write it as address/prefix, e.g. {example}.", field=field
        ) from None
    if "/" not in text:
        raise ValidationError(
            f"{text!r} has no prefix length; write it as address/prefix, e.g. {network.network_address}/24.",
            field=field,
        )
    if version is not None and network.version != version:
        raise ValidationError(f"{text!r} is not an {family} subnet.", field=field)
    if network.network_address != ipaddress.ip_interface(text).ip:
        raise ValidationError(
            f"{text!r} has host bits set; the subnet it lies in is {network}. Use that.", field=field
        )
    check_usable(network, field)
    if network.num_addresses < RESERVED_PER_POOL + 1:
        largest = network.max_prefixlen - 2
        raise PoolTooSmallError(
            f"The subnet {network} has {network.num_addresses} address(es): too small for the network "
            f"address, the server, one peer and the {'broadcast' if network.version == 4 else 'last'} "
            f"address. Use a prefix of /{largest} or shorter (e.g. /{min(largest, 24 if network.version == 4 else 64)}).",
            field=field,
        )
    return Pool(network)


def check_usable(network: IPNetwork, field: str = "subnet") -> None:
    """:class:`ValidationError` when ``network`` is /0 or touches an :data:`UNUSABLE_BLOCKS` block.

    Such a subnet gives the server an address no host can use (0.0.0.1, ::1,
    a multicast address), and a /0 turns every "split tunnel" client config
    into a full tunnel."""
    fix = f"Use {PRIVATE_EXAMPLE[network.version]}."
    if network.prefixlen == 0:
        raise ValidationError(
            f"{network} is every {'IPv4' if network.version == 4 else 'IPv6'} address, so it cannot be a VPN "
            "subnet: the server would sit on an unusable address and split-tunnel clients would send all "
            f"their traffic through the VPN. {fix}", field=field,
        )
    hits = [why for block, why in UNUSABLE_BLOCKS if block.version == network.version and network.overlaps(block)]
    if hits:
        raise ValidationError(
            f"{network} cannot be a VPN subnet: it includes {' and '.join(hits)}, which cannot be given to "
            f"VPN hosts. {fix}", field=field,
        )


def first_free(pool: Pool, used: Iterable[IPAddress]) -> IPAddress:
    """The lowest assignable address not in ``used``; :class:`AddressPoolFullError` when none."""
    taken = {int(a) for a in used}
    start, end = int(pool.first_peer_address), int(pool.last_peer_address)
    candidate = start
    # at most len(taken) + 1 steps: cheap even in a /16 or an IPv6 /64
    while candidate <= end and candidate in taken:
        candidate += 1
    if candidate > end:
        raise AddressPoolFullError(
            f"The VPN subnet {pool.network} is full: all {pool.capacity} peer addresses are in use. "
            "Revoke peers that are no longer needed, or an admin can move the VPN to a larger subnet."
        )
    return ipaddress.ip_address(candidate) if pool.network.version == 4 else ipaddress.IPv6Address(candidate)
