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
    if network.num_addresses < RESERVED_PER_POOL + 1:
        largest = network.max_prefixlen - 2
        raise PoolTooSmallError(
            f"The subnet {network} has {network.num_addresses} address(es): too small for the network "
            f"address, the server, one peer and the {'broadcast' if network.version == 4 else 'last'} "
            f"address. Use a prefix of /{largest} or shorter (e.g. /{min(largest, 24 if network.version == 4 else 64)}).",
            field=field,
        )
    return Pool(network)


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
