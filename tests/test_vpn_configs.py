"""Every client and server config we render parses with the real `wg` tools and
passes the official apps' stricter rules (see tests/vpn_wg.py)."""

from __future__ import annotations

import base64
import ipaddress
import re
import subprocess
from pathlib import Path

import pytest

from hivemind_core.config import streamlit_server_port
from hivemind_core.principal import Principal
from hivemind_core.vpn import service
from hivemind_core.vpn.render import BYOK_PLACEHOLDER
from tests.vpn_wg import ConfigRejected, strict_parse, wg_check, wg_genkey, wg_pubkey

ADMIN = Principal("root", "admin")
ALICE = Principal("alice", "analyst")

SETTINGS = {
    "ipv4 endpoint, defaults": dict(endpoint="203.0.113.7"),
    "ipv6 endpoint, dns+mtu": dict(endpoint="2001:db8::42", dns="10.8.0.1, 2606:4700:4700::1111", mtu=1380,
                                   subnet="10.8.0.0/16", subnet_v6="fd42:42:42::/64"),
    "dns-name endpoint, no keepalive": dict(endpoint="localhost", port=443, keepalive=0, subnet="172.16.5.0/29"),
    "bracketed v6 input, mtu only": dict(endpoint="[::1]", mtu=1500, subnet="192.168.77.0/24"),
}
PEERS = {
    "generated": dict(),
    "psk": dict(preshared_key=True),
    "full tunnel": dict(full_tunnel=True),
    "psk full tunnel": dict(preshared_key=True, full_tunnel=True),
    "byok": "byok",
}


def _hex(b64: str) -> str:
    return base64.b64decode(b64).hex()


def _expect_parsed(parsed: dict | None, private_key: str, server_pub: str, strict: dict) -> None:
    """When wg could apply it to a userspace device, compare what wg parsed with what we meant."""
    if parsed is None:
        return
    assert parsed["private_key"] == [_hex(private_key)]
    assert parsed["public_key"] == [_hex(server_pub)]
    peer = strict["peers"][0]
    wanted_ips = [str(ipaddress.ip_network(x.strip())) for x in peer["allowedips"].split(",")]
    assert parsed["allowed_ip"] == wanted_ips
    assert parsed.get("persistent_keepalive_interval", ["0"]) == [peer.get("persistentkeepalive", "0")]
    if "presharedkey" in peer:
        assert parsed["preshared_key"] == [_hex(peer["presharedkey"])]


@pytest.mark.parametrize("settings_name", list(SETTINGS))
def test_client_and_server_configs_parse(settings_name: str, tmp_path: Path) -> None:
    service.update_server_settings(ADMIN, **SETTINGS[settings_name])
    server_pub = service.get_server_settings(ADMIN).server_public_key
    made = []
    for i, (peer_name, options) in enumerate(PEERS.items()):
        if options == "byok":
            own_private = wg_genkey()
            new = service.add_peer(ALICE if i % 2 else ADMIN, f"peer {peer_name}", public_key=wg_pubkey(own_private))
            assert not new.private_key_included
            assert BYOK_PLACEHOLDER in new.config and "Replace" in new.config
            with pytest.raises(ConfigRejected):  # unfilled: neither wg nor the apps import it
                wg_check(new.config, tmp_path / f"c{i}-raw")
            with pytest.raises(ConfigRejected):
                strict_parse(new.config, client=True)
            config, private = new.config.replace(BYOK_PLACEHOLDER, own_private), own_private
        else:
            new = service.add_peer(ADMIN, f"peer {peer_name}", kind="worker" if i % 2 else "user", **options)
            assert new.private_key_included
            config = new.config
            private = strict_parse(config, client=True)["interface"]["privatekey"]
            assert wg_pubkey(private) == new.peer.public_key
        strict = strict_parse(config, client=True)
        _expect_parsed(wg_check(config, tmp_path / f"c{i}"), private, server_pub, strict)
        made.append((new, strict))
        assert not re.search(r"(?m)^\s*\w+\s*=\s*$", config)  # no empty `KEY =` line

    for new, strict in made:
        iface, peer = strict["interface"], strict["peers"][0]
        view = service.get_server_settings(ADMIN)
        # DNS, MTU and keepalive lines only when set
        assert ("dns" in iface) == bool(view.dns)
        assert ("mtu" in iface) == bool(view.mtu)
        assert ("persistentkeepalive" in peer) == bool(view.keepalive)
        assert ("presharedkey" in peer) == new.peer.has_preshared_key
        allowed = [a.strip() for a in peer["allowedips"].split(",")]
        if new.peer.full_tunnel:
            assert allowed == ["0.0.0.0/0", "::/0"]
        else:
            assert allowed == [view.subnet] + ([view.subnet_v6] if view.subnet_v6 else [])
        host = view.endpoint
        expected_endpoint = f"[{host}]:{view.port}" if ":" in host else f"{host}:{view.port}"
        assert peer["endpoint"] == expected_endpoint
        assert iface["address"] == ", ".join(
            f"{a}/{32 if ipaddress.ip_address(a).version == 4 else 128}" for a in new.peer.addresses)

    server_text = service.server_config(ADMIN)
    strict = strict_parse(server_text, client=False)
    parsed = wg_check(server_text, tmp_path / "server")
    peers = service.list_peers(ADMIN)
    assert [p["publickey"] for p in strict["peers"]] == [p.public_key for p in peers]
    for p, section in zip(peers, strict["peers"]):
        hosts = [ipaddress.ip_network(x.strip()) for x in section["allowedips"].split(",")]
        assert all(h.num_addresses == 1 for h in hosts)  # single-host AllowedIPs
        assert sorted(str(h.network_address) for h in hosts) == sorted(p.addresses)
    if parsed is not None:
        assert parsed["private_key"] == [_hex(strict["interface"]["privatekey"])]
        assert len(parsed["public_key"]) == len(peers)
        assert int(parsed["listen_port"][0]) == service.get_server_settings(ADMIN).port


def test_server_config_lists_only_enabled_peers_and_role_rules(tmp_path: Path) -> None:
    service.update_server_settings(ADMIN, endpoint="vpn.example.org", subnet_v6="fd00:1::/64")
    worker = service.add_peer(ADMIN, "worker-1", kind="worker").peer
    user = service.add_peer(ALICE, "alice laptop").peer
    off = service.add_peer(ADMIN, "spare").peer
    service.set_peer_enabled(ADMIN, off.id, False)
    text = service.server_config(ADMIN)
    strict = strict_parse(text, client=False)
    keys = [p["publickey"] for p in strict["peers"]]
    assert keys == [worker.public_key, user.public_key]
    wg_check(text, tmp_path)
    post_up = strict["interface"]["postup"]
    w4, w6 = worker.addresses
    u4, u6 = user.addresses
    assert f"iptables -A HIVEMIND-VPN-IN -s {w4}/32 -d 10.0.0.1/32 -p tcp --dport 50051 -j ACCEPT" in post_up
    assert f"iptables -A HIVEMIND-VPN-IN -s {u4}/32 -d 10.0.0.1/32 -p tcp --dport 8501 -j ACCEPT" in post_up
    assert f"ip6tables -A HIVEMIND-VPN-IN -s {w6}/128 -d fd00:1::1/128 -p tcp --dport 50051 -j ACCEPT" in post_up
    assert "--dport 8501 -j ACCEPT" not in post_up.split(f"-s {w4}/32")[1].split(";")[0]
    assert "-j DROP" in post_up and "MASQUERADE" not in post_up  # no full-tunnel peer: nothing forwarded
    # PostUp/PostDown are valid shell once wg-quick substitutes %i
    for key in ("postup", "postdown"):
        script = strict["interface"][key].replace("%i", "wg0")
        subprocess.run(["bash", "-n", "-c", script], check=True, timeout=10)
    service.update_server_settings(ADMIN, node_pool_port=6000, web_port=9000)
    assert f"-s {w4}/32 -d 10.0.0.1/32 -p tcp --dport 6000" in service.server_config(ADMIN)
    assert f"-s {u4}/32 -d 10.0.0.1/32 -p tcp --dport 9000" in service.server_config(ADMIN)


def test_web_port_follows_the_port_the_app_runs_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """User peers may reach the web app's real port (Streamlit's server.port), not a fixed 8501."""
    service.update_server_settings(ADMIN, endpoint="vpn.example.org")
    u4 = service.add_peer(ALICE, "alice laptop").peer.addresses[0]

    def rule(port: int) -> str:
        return f"iptables -A HIVEMIND-VPN-IN -s {u4}/32 -d 10.0.0.1/32 -p tcp --dport {port} -j ACCEPT"

    monkeypatch.setenv("STREAMLIT_SERVER_PORT", "8642")  # how `streamlit run` is told its port, too
    view = service.get_server_settings(ADMIN)
    assert (view.web_port, view.web_port_source) == (8642, "app")
    assert rule(8642) in service.server_config(ADMIN) and "--dport 8501" not in service.server_config(ADMIN)
    service.update_server_settings(ADMIN, web_port=8642)  # the page's form sends the shown value back
    monkeypatch.setenv("STREAMLIT_SERVER_PORT", "8643")
    assert rule(8643) in service.server_config(ADMIN)     # ... and it keeps following the app
    service.update_server_settings(ADMIN, web_port=9000)  # a different port is a choice: it stays
    monkeypatch.setenv("STREAMLIT_SERVER_PORT", "8644")
    assert service.get_server_settings(ADMIN).web_port_source == "settings" and rule(9000) in service.server_config(ADMIN)
    service.update_server_settings(ADMIN, web_port="")    # '' follows the app again
    assert rule(8644) in service.server_config(ADMIN)
    # without the variable: server.port in the project's .streamlit/config.toml, else Streamlit's 8501
    monkeypatch.delenv("STREAMLIT_SERVER_PORT")
    config = tmp_path / "config.toml"
    config.write_text("[server]\nport = 8777\nheadless = true\n")
    assert streamlit_server_port(config) == 8777
    config.write_text("[server]\nheadless = true\n")
    assert streamlit_server_port(config) == 8501


def test_full_tunnel_peer_gets_forwarding_and_nat(tmp_path: Path) -> None:
    service.update_server_settings(ADMIN, endpoint="198.51.100.1")
    peer = service.add_peer(ALICE, "phone", full_tunnel=True).peer
    text = service.server_config(ADMIN)
    assert f"iptables -A HIVEMIND-VPN-FWD -s {peer.addresses[0]}/32 ! -o %i -j ACCEPT" in text
    assert "iptables -t nat -A POSTROUTING -s 10.0.0.0/24 ! -o %i -j MASQUERADE" in text
    wg_check(text, tmp_path)


def test_the_check_itself_rejects_broken_configs(tmp_path: Path) -> None:
    """The checker must be able to fail: known-bad configs are refused."""
    service.update_server_settings(ADMIN, endpoint="192.0.2.1", dns="10.0.0.1")
    good = service.add_peer(ADMIN, "x").config
    wg_check(good, tmp_path / "ok")
    for bad, by_wg in [
        (good.replace("DNS = 10.0.0.1", "DNS ="), False),         # empty value (wg-quick strips DNS)
        (good.replace("PersistentKeepalive = 25", "PersistentKeepalive ="), True),  # empty value
        (good.replace("AllowedIPs", "AllowedIP"), True),          # unknown key
        (good.replace("Endpoint = 192.0.2.1:51820", "Endpoint = 192.0.2.1"), True),
        (good.replace("PublicKey = ", "PublicKey = A"), True),    # wrong length
        (good + "DNS = 10.0.0.1\n", False),                        # DNS inside [Peer]: apps refuse
        (good.replace("10.0.0.0/24", "10.0.0.1/24"), False),       # not normalized
    ]:
        with pytest.raises(ConfigRejected):
            strict_parse(bad, client=True)
        if by_wg:
            with pytest.raises(ConfigRejected):
                wg_check(bad, tmp_path / "bad")
