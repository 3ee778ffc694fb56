"""Address allocation: odd pools, churn, full and too-small pools, /16 past 255
peers, IPv6, and two processes allocating at once — never a duplicate, never a
reserved address."""

from __future__ import annotations

import ipaddress
import multiprocessing as mp
import os
import random

import pytest

from hivemind_core.errors import ValidationError
from hivemind_core.principal import Principal
from hivemind_core.vpn import service
from hivemind_core.vpn.errors import AddressPoolFullError, PoolTooSmallError
from hivemind_core.vpn.ipam import first_free, parse_pool

ADMIN = Principal("root", "admin")


def _reserved(cidr: str) -> set:
    net = ipaddress.ip_network(cidr)
    return {net.network_address, net.network_address + 1, net.broadcast_address}


def _assert_invariants(cidr: str, cidr_v6: str | None = None) -> list[service.PeerView]:
    peers = service.list_peers(ADMIN)
    for pool_cidr, version in ((cidr, 4), (cidr_v6, 6)):
        if not pool_cidr:
            continue
        net = ipaddress.ip_network(pool_cidr)
        addrs = [ipaddress.ip_address(a) for p in peers for a in p.addresses
                 if ipaddress.ip_address(a).version == version]
        assert len(addrs) == len(peers), "every active peer has an address of each family"
        assert len(set(addrs)) == len(addrs), "no address handed out twice"
        assert all(a in net for a in addrs)
        assert not set(addrs) & _reserved(pool_cidr), "no network/server/broadcast address"
    return peers


@pytest.mark.parametrize("cidr", ["10.0.0.0/31", "10.0.0.0/32", "fd00::/127", "fd00::/128"])
def test_too_small_pools_say_so(cidr: str) -> None:
    with pytest.raises(PoolTooSmallError, match="too small.*Use a prefix of /(30|126) or shorter"):
        parse_pool(cidr)
    field = "subnet_v6" if ":" in cidr else "subnet"
    with pytest.raises(PoolTooSmallError):
        service.update_server_settings(ADMIN, **{field: cidr})


@pytest.mark.parametrize("bad", ["10.0.0.7/24", "10.0.0.0", "300.0.0.0/24", "banana"])
def test_bad_subnets_rejected_with_a_fix(bad: str) -> None:
    with pytest.raises(ValidationError) as err:
        service.update_server_settings(ADMIN, subnet=bad)
    assert err.value.field == "subnet"


def test_slash30_has_exactly_one_peer_then_full_then_reuse() -> None:
    service.update_server_settings(ADMIN, endpoint="192.0.2.1", subnet="10.1.2.4/30")
    first = service.add_peer(ADMIN, "only")
    assert first.peer.addresses == ("10.1.2.6",)
    with pytest.raises(AddressPoolFullError, match="full: all 1 peer addresses"):
        service.add_peer(ADMIN, "second")
    assert [p.name for p in service.list_peers(ADMIN)] == ["only"]  # the failed add stored nothing
    service.revoke_peer(ADMIN, first.peer.id)
    again = service.add_peer(ADMIN, "second")
    assert again.peer.addresses == ("10.1.2.6",)


def test_churn_in_a_small_pool_against_a_model() -> None:
    cidr = "10.20.30.0/27"  # 29 peer addresses
    service.update_server_settings(ADMIN, endpoint="192.0.2.1", subnet=cidr)
    pool = parse_pool(cidr)
    rng = random.Random(1234)
    model: dict[int, str] = {}  # peer id -> address, our own bookkeeping
    counter = 0
    for step in range(400):
        if model and (len(model) == pool.capacity or rng.random() < 0.45):
            victim = rng.choice(sorted(model))
            service.revoke_peer(ADMIN, victim)
            del model[victim]
        else:
            counter += 1
            new = service.add_peer(ADMIN, f"p{counter}").peer
            expected = first_free(pool, [ipaddress.ip_address(a) for a in model.values()])
            assert new.addresses == (str(expected),), "lowest free address, freed ones reused first"
            model[new.id] = new.addresses[0]
        if step % 25 == 0:
            peers = _assert_invariants(cidr)
            assert {p.id: p.addresses[0] for p in peers} == model
    # fill it up completely, then it is full
    while len(model) < pool.capacity:
        counter += 1
        new = service.add_peer(ADMIN, f"p{counter}").peer
        model[new.id] = new.addresses[0]
    peers = _assert_invariants(cidr)
    assert len(peers) == 29
    with pytest.raises(AddressPoolFullError):
        service.add_peer(ADMIN, "one too many")


@pytest.mark.slow
def test_slash16_past_255_peers_with_ipv6() -> None:
    cidr, cidr6 = "10.50.0.0/16", "fd42:50::/64"
    service.update_server_settings(ADMIN, endpoint="192.0.2.1", subnet=cidr, subnet_v6=cidr6)
    for i in range(300):
        service.add_peer(ADMIN, f"n{i}", public_key=None)
    peers = _assert_invariants(cidr, cidr6)
    v4 = sorted(ipaddress.ip_address(p.addresses[0]) for p in peers)
    assert v4[0] == ipaddress.ip_address("10.50.0.2")
    assert v4[-1] == ipaddress.ip_address("10.50.1.45")  # 300 addresses from .0.2, crossing .0.255/.1.0
    assert ipaddress.ip_address("10.50.0.255") in v4 and ipaddress.ip_address("10.50.1.0") in v4
    # revoke a spread of them and re-add: the freed ones come back, nothing collides
    freed = sorted((p for p in peers[::7]), key=lambda p: ipaddress.ip_address(p.addresses[0]))
    for p in freed:
        service.revoke_peer(ADMIN, p.id)
    for i, p in enumerate(freed):
        new = service.add_peer(ADMIN, f"again{i}").peer
        assert new.addresses == p.addresses
    _assert_invariants(cidr, cidr6)


def test_pool_edges_pure() -> None:
    pool = parse_pool("10.0.0.0/16")
    assert pool.capacity == 65536 - 3
    used = [ipaddress.ip_address(int(pool.first_peer_address) + i) for i in range(pool.capacity - 1)]
    assert first_free(pool, used) == ipaddress.ip_address("10.0.255.254")
    with pytest.raises(AddressPoolFullError):
        first_free(pool, used + [ipaddress.ip_address("10.0.255.254")])
    v6 = parse_pool("fd00::/64")
    assert str(first_free(v6, [])) == "fd00::2"
    small6 = parse_pool("fd00::/126")
    assert small6.capacity == 1 and str(first_free(small6, [])) == "fd00::2"


def test_subnet_change_refused_when_peers_would_fall_outside() -> None:
    service.update_server_settings(ADMIN, endpoint="192.0.2.1", subnet="10.0.0.0/24")
    a = service.add_peer(ADMIN, "a").peer
    with pytest.raises(ValidationError, match="Revoke the peers outside"):
        service.update_server_settings(ADMIN, subnet="10.9.0.0/24")
    service.update_server_settings(ADMIN, subnet="10.0.0.0/16")  # still contains 10.0.0.2
    assert service.list_peers(ADMIN)[0].addresses == a.addresses
    # adding an IPv6 subnet where there was none gives existing peers an IPv6 address (documented):
    # their IPv4 addresses stay, so configs already handed out keep working over IPv4
    service.update_server_settings(ADMIN, subnet_v6="fd77::/64")
    assert service.list_peers(ADMIN)[0].addresses == (a.addresses[0], "fd77::2")


def test_ipv6_subnet_change_or_removal_refused_while_peers_hold_ipv6_addresses() -> None:
    """Moving or removing the IPv6 subnet would renumber or strip peers whose configs are out there."""
    service.update_server_settings(ADMIN, endpoint="192.0.2.1", subnet="10.0.0.0/24", subnet_v6="fd42::/64")
    alice = service.add_peer(ADMIN, "alice").peer
    bob = service.add_peer(ADMIN, "bob").peer
    assert (alice.addresses, bob.addresses) == (("10.0.0.2", "fd42::2"), ("10.0.0.3", "fd42::3"))
    for new in ("fd43::/64", "", None):
        with pytest.raises(ValidationError, match="Revoke") as err:
            service.update_server_settings(ADMIN, subnet_v6=new)
        assert err.value.field == "subnet_v6" and "'alice'" in str(err.value) and "fd42::2" in str(err.value)
        assert [p.addresses for p in service.list_peers(ADMIN)] == [alice.addresses, bob.addresses]
        assert service.get_server_settings(ADMIN).subnet_v6 == "fd42::/64"
    service.update_server_settings(ADMIN, subnet_v6="fd42::/48")  # still holds every peer's address
    assert [p.addresses for p in service.list_peers(ADMIN)] == [alice.addresses, bob.addresses]
    service.revoke_peer(ADMIN, alice.id)
    with pytest.raises(ValidationError, match="'bob'"):
        service.update_server_settings(ADMIN, subnet_v6="")
    service.revoke_peer(ADMIN, bob.id)
    service.update_server_settings(ADMIN, subnet_v6="fd43::/64")  # nobody holds an IPv6 address now
    assert service.add_peer(ADMIN, "carol").peer.addresses == ("10.0.0.2", "fd43::2")
    service.revoke_peer(ADMIN, service.find_peer(ADMIN, "carol").id)
    service.update_server_settings(ADMIN, subnet_v6="")
    assert service.get_server_settings(ADMIN).subnet_v6 is None


def _add_many(data_dir: str, prefix: str, n: int, queue: mp.Queue) -> None:
    os.environ["HIVEMIND_DATA_DIR"] = data_dir
    got = []
    for i in range(n):
        got.append(service.add_peer(ADMIN, f"{prefix}{i}").peer.addresses[0])
    queue.put(got)


def test_two_processes_never_get_the_same_address(data_dir) -> None:  # noqa: ANN001
    service.update_server_settings(ADMIN, endpoint="192.0.2.1", subnet="10.7.0.0/24")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_add_many, args=(str(data_dir), f"proc{k}-", 20, queue)) for k in range(3)]
    for p in procs:
        p.start()
    try:
        results = [queue.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    addresses = [a for r in results for a in r]
    assert len(addresses) == 60 and len(set(addresses)) == 60
    peers = _assert_invariants("10.7.0.0/24")
    assert sorted(p.addresses[0] for p in peers) == sorted(addresses)


# Subnets no VPN can use, with the ipaddress property (or prefix) that makes each unusable,
# checked here independently of the code under test.
UNUSABLE_SUBNETS = [
    ("0.0.0.0/0", "every"), ("0.0.0.0/8", "unspecified"), ("0.0.0.0/1", "unspecified"),
    ("127.0.0.0/24", "loopback"), ("169.254.0.0/16", "link-local"), ("224.0.0.0/24", "multicast"),
    ("240.0.0.0/24", "reserved"), ("255.255.255.0/24", "reserved"), ("160.0.0.0/3", "link-local"),
    ("::/0", "every"), ("::/64", "unspecified"), ("::/120", "unspecified"), ("ff00::/64", "multicast"),
    ("fe80::/64", "link-local"), ("fec0::/64", "site-local"),
]


def _has_property(cidr: str, word: str) -> bool:
    """Does some address of ``cidr`` have the ipaddress property the word names?"""
    net = ipaddress.ip_network(cidr)
    if word == "every":
        return net.prefixlen == 0
    prop = {"unspecified": "is_unspecified", "loopback": "is_loopback", "link-local": "is_link_local",
            "multicast": "is_multicast", "reserved": "is_reserved", "site-local": "is_site_local"}[word]
    probes = {"link-local": ["169.254.0.1", "fe80::1"], "unspecified": ["0.0.0.0", "::"]}.get(word, [])
    candidates = [net.network_address, net.broadcast_address] + [ipaddress.ip_address(p) for p in probes]
    return any(a.version == net.version and a in net and getattr(a, prop) for a in candidates)


@pytest.mark.parametrize(("cidr", "word"), UNUSABLE_SUBNETS)
def test_unusable_subnets_rejected_with_reason_and_a_private_range(cidr: str, word: str) -> None:
    assert _has_property(cidr, word), "the example really is what it is said to be"
    service.update_server_settings(ADMIN, endpoint="192.0.2.1", subnet="10.3.0.0/24", subnet_v6="fd03::/64")
    field = "subnet_v6" if ":" in cidr else "subnet"
    with pytest.raises(ValidationError) as err:
        service.update_server_settings(ADMIN, **{field: cidr})
    message = str(err.value)
    assert err.value.field == field and word in message and cidr in message
    assert ("10.0.0.0/24" if field == "subnet" else "fd00::/64") in message  # a range that works
    view = service.get_server_settings(ADMIN)
    assert (view.subnet, view.subnet_v6) == ("10.3.0.0/24", "fd03::/64")  # nothing changed


@pytest.mark.parametrize("cidr", ["10.0.0.0/24", "172.16.5.0/29", "192.168.77.0/24", "100.64.0.0/10",
                                  "203.0.113.0/24", "fd00::/64", "fd42:42:42::/64", "2001:db8:5::/64"])
def test_usable_subnets_still_accepted(cidr: str) -> None:
    field = "subnet_v6" if ":" in cidr else "subnet"
    view = service.update_server_settings(ADMIN, **{field: cidr})
    assert getattr(view, field) == cidr
