"""`python -m hivemind_core vpn ...` end to end in a subprocess with its own data dir."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vpn_wg import strict_parse, wg_check, wg_genkey, wg_pubkey


@pytest.fixture
def vpn(subprocess_env: dict[str, str], repo_root: Path):
    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "hivemind_core", "vpn", *args], cwd=repo_root,
                                env=subprocess_env, capture_output=True, text=True, timeout=60)
        if ok:
            assert result.returncode == 0, result.stderr
        return result
    return run


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def users() -> None:
    """App accounts the peers below belong to (same data dir as the CLI subprocesses)."""
    from hivemind_core import auth
    from hivemind_core.principal import Principal

    auth.create_first_admin("root", PASSWORD)
    for name in ("alice", "bob", "ops"):
        auth.create_user(Principal("root", "admin"), name, PASSWORD, "analyst")


PASSWORD = "a long enough passphrase 42"


def test_cli_end_to_end(vpn, users: None, tmp_path: Path, data_dir: Path) -> None:
    out = vpn("settings", "--endpoint", "vpn.example.org", "--port", "51888", "--subnet", "10.44.0.0/16",
              "--subnet-v6", "fd44::/64", "--dns", "10.44.0.1", "--mtu", "1400", "--keepalive", "15").stdout
    assert "vpn.example.org" in out and "10.44.0.0/16 (server 10.44.0.1, room for 65533 peers)" in out

    client = tmp_path / "out" / "alice.conf"
    added = vpn("add-peer", "alice laptop", "--owner", "alice", "--preshared-key", "--output", str(client))
    assert f"wrote {client}" in added.stdout and "10.44.0.2, fd44::2" in added.stderr
    assert mode(client) == 0o600
    text = client.read_text()
    parsed = strict_parse(text, client=True)
    assert parsed["interface"]["address"] == "10.44.0.2/32, fd44::2/128"
    assert parsed["interface"]["mtu"] == "1400" and parsed["peers"][0]["persistentkeepalive"] == "15"
    assert parsed["peers"][0]["endpoint"] == "vpn.example.org:51888"
    wg_check(text.replace("vpn.example.org", "localhost"), tmp_path / "chk1")  # wg resolves names: offline here
    assert wg_pubkey(parsed["interface"]["privatekey"]) in vpn("list").stdout

    own_private = wg_genkey()
    byok = vpn("add-peer", "worker-7", "--owner", "ops", "--public-key", wg_pubkey(own_private),
               "--kind", "worker").stdout  # no --output: the config goes to stdout
    assert "REPLACE_WITH_YOUR_PRIVATE_KEY" in byok and "PrivateKey = REPLACE_WITH_YOUR_PRIVATE_KEY" in byok
    strict_parse(byok.replace("REPLACE_WITH_YOUR_PRIVATE_KEY", own_private), client=True)

    listing = vpn("list").stdout
    assert "alice laptop" in listing and "worker-7" in listing and "worker" in listing

    server = tmp_path / "wg0.conf"
    vpn("server-config", "--output", str(server))
    assert mode(server) == 0o600
    server_text = server.read_text()
    assert server_text.count("[Peer]") == 2 and "--dport 50051" in server_text
    wg_check(server_text, tmp_path / "chk2")

    vpn("disable", "worker-7")
    assert vpn("server-config").stdout.count("[Peer]") == 1
    vpn("enable", "worker-7")
    revoked = vpn("revoke", "alice laptop").stdout
    assert "freed 10.44.0.2, fd44::2" in revoked and "wg syncconf wg0 <(wg-quick strip wg0)" in revoked
    assert "alice laptop" not in vpn("list").stdout and "revoked" in vpn("list", "--all").stdout
    assert vpn("server-config").stdout.count("[Peer]") == 1

    again = vpn("add-peer", "bob pc", "--owner", "bob").stderr
    assert "10.44.0.2, fd44::2" in again  # the freed addresses are handed out again

    # files holding secrets in the data dir are private too
    for secret in (data_dir / "secrets").iterdir():
        assert mode(secret) == 0o600


def test_cli_errors_are_one_line_and_exit_1(vpn) -> None:
    r = vpn("settings", "--subnet", "10.0.0.0/31", ok=False)
    assert r.returncode == 1 and r.stderr.startswith("error: The subnet 10.0.0.0/31") and "/30" in r.stderr
    r = vpn("add-peer", "x", ok=False)
    assert r.returncode == 1 and "endpoint is not set" in r.stderr
    r = vpn("revoke", "nobody", ok=False)
    assert r.returncode == 1 and "no active VPN peer called 'nobody'" in r.stderr
    r = vpn("settings", "--endpoint", "host:51820", ok=False)
    assert r.returncode == 1 and "port separately" in r.stderr
    r = vpn("settings", "--endpoint", "192.0.2.1", "--mtu", "100", ok=False)
    assert r.returncode == 1 and "MTU must be between 576" in r.stderr
    r = vpn("add-peer", "bad", "--public-key", "not-a-key", ok=False)
    assert r.returncode == 1 and "not a WireGuard key" in r.stderr


def test_cli_refuses_unusable_subnets(vpn) -> None:
    """The tester's inputs: each is refused with one line naming what is wrong, nothing stored."""
    vpn("settings", "--endpoint", "192.0.2.1")
    for flag, cidr, word in [
        ("--subnet", "0.0.0.0/0", "every"), ("--subnet", "0.0.0.0/8", "unspecified"),
        ("--subnet", "127.0.0.0/24", "loopback"), ("--subnet", "224.0.0.0/24", "multicast"),
        ("--subnet", "240.0.0.0/24", "reserved"), ("--subnet", "255.255.255.0/24", "reserved"),
        ("--subnet-v6", "::/0", "every"), ("--subnet-v6", "ff00::/64", "multicast"),
        ("--subnet-v6", "fe80::/64", "link-local"),
    ]:
        r = vpn("settings", flag, cidr, ok=False)
        assert r.returncode == 1, (cidr, r.stdout)
        assert r.stderr.startswith(f"error: {cidr} ") and word in r.stderr and len(r.stderr.splitlines()) == 1
        assert ("10.0.0.0/24" if flag == "--subnet" else "fd00::/64") in r.stderr
    out = vpn("settings").stdout
    assert "10.0.0.0/24 (server 10.0.0.1" in out and "(none)" in out
    assert "AllowedIPs = 0.0.0.0/0" not in vpn("add-peer", "laptop").stdout


def test_cli_refuses_the_all_zero_public_key(vpn) -> None:
    vpn("settings", "--endpoint", "192.0.2.1")
    r = vpn("add-peer", "weak", "--public-key", "A" * 43 + "=", ok=False)
    assert r.returncode == 1 and "low-order" in r.stderr and len(r.stderr.splitlines()) == 1
    assert vpn("list").stdout.strip() == "no peers"


def test_cli_refuses_to_renumber_or_drop_ipv6_addresses(vpn) -> None:
    vpn("settings", "--endpoint", "192.0.2.1", "--subnet-v6", "fd42::/64")
    vpn("add-peer", "alice")
    for value in ("fd43::/64", ""):
        r = vpn("settings", "--subnet-v6", value, ok=False)
        assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
        assert "'alice' has fd42::2" in r.stderr and "Revoke" in r.stderr
        assert "remove the IPv6 subnet" not in r.stderr  # that path renumbered everyone before
        assert "10.0.0.2, fd42::2" in vpn("list").stdout
    help_text = vpn("settings", "--help").stdout
    assert "existing peers" in help_text  # adding a v6 subnet gives them addresses; it says so


def test_cli_port_zero_refused_and_blank_means_unset(vpn, subprocess_env: dict[str, str]) -> None:
    vpn("settings", "--endpoint", "vpn.example.org", "--port", "51888")
    r = vpn("settings", "--port", "0", ok=False)
    assert r.returncode == 1 and "port must be between 1 and 65535, got 0" in r.stderr
    assert "51888  [settings]" in vpn("settings").stdout  # unchanged
    # '' is the documented way to unset: back to the environment / default
    out = vpn("settings", "--port", "", "--endpoint", "").stdout
    assert "51820  [environment/default]" in out and "(not set)  [unset]" in out
    subprocess_env["HIVEMIND_VPN_ENDPOINT"] = "env.example.org"
    assert "env.example.org  [environment]" in vpn("settings").stdout
    help_text = " ".join(vpn("settings", "--help").stdout.split())
    assert "'' unsets it (then HIVEMIND_VPN_ENDPOINT is used)" in help_text
    assert "'' unsets it (then HIVEMIND_VPN_PORT or 51820)" in help_text


def test_service_refuses_port_zero() -> None:
    from hivemind_core.errors import ValidationError
    from hivemind_core.principal import Principal
    from hivemind_core.vpn import service

    admin = Principal("root", "admin")
    service.update_server_settings(admin, port=4500)
    with pytest.raises(ValidationError, match="between 1 and 65535"):
        service.update_server_settings(admin, port=0)
    assert service.get_server_settings(admin).port == 4500
    assert service.update_server_settings(admin, port=None).port == 51820  # None unsets


def test_cli_owner_must_be_an_existing_enabled_user(vpn, users: None) -> None:
    from hivemind_core import auth
    from hivemind_core.principal import Principal

    auth.set_disabled(Principal("root", "admin"), "bob", True)
    vpn("settings", "--endpoint", "192.0.2.1")
    for owner, words in [("nosuchuser", "no user 'nosuchuser'"), ("bob", "'bob' is disabled")]:
        for kind in ("user", "worker"):
            r = vpn("add-peer", f"{owner}-{kind}", "--owner", owner, "--kind", kind, ok=False)
            assert r.returncode == 1 and words in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert vpn("list").stdout.strip() == "no peers"
    assert "owner alice" in vpn("add-peer", "alice-pc", "--owner", "ALICE").stderr
    assert "owner admin" in vpn("add-peer", "node-1", "--kind", "worker").stderr  # no --owner: the CLI's admin
    assert "existing, enabled" in " ".join(vpn("add-peer", "--help").stdout.split())


def test_cli_bad_output_paths_fail_before_anything_is_stored(vpn, tmp_path: Path) -> None:
    """A directory, a path under a file, an unwritable place: one line, exit 1, no peer left behind."""
    vpn("settings", "--endpoint", "192.0.2.1")
    a_dir = tmp_path / "configs"
    a_dir.mkdir()
    a_file = tmp_path / "plain.txt"
    a_file.write_text("not a directory")
    cases = [(a_dir, "is a directory"), (a_file / "x.conf", "is a file, not a directory"),
             (a_file / "sub" / "x.conf", "is a file, not a directory"), (Path("/proc/x.conf"), "cannot create files")]
    for target, words in cases:
        for command in (["add-peer", "laptop"], ["server-config"]):
            r = vpn(*command, "--output", str(target), ok=False)
            assert r.returncode == 1, r.stdout
            lines = r.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], r.stderr
            assert str(target) in lines[0] and "Traceback" not in r.stderr
    assert vpn("list", "--all").stdout.strip() == "no peers"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["configs", "hivemind-data", "plain.txt"]
    assert list(a_dir.iterdir()) == []
    # the address that was never handed out goes to the next peer, whose file is written
    good = tmp_path / "new" / "laptop.conf"
    assert "at 10.0.0.2" in vpn("add-peer", "laptop", "--output", str(good)).stderr
    assert good.exists() and mode(good) == 0o600


def test_web_port_follows_the_app_unless_set(vpn, subprocess_env: dict[str, str]) -> None:
    subprocess_env["STREAMLIT_SERVER_PORT"] = "8642"  # the port `streamlit run` serves the app on
    assert re.search(r"web app port\s+8642  \[app\]", vpn("settings").stdout)
    assert re.search(r"web app port\s+9000  \[settings\]", vpn("settings", "--web-port", "9000").stdout)
    assert re.search(r"web app port\s+8642  \[app\]", vpn("settings", "--web-port", "").stdout)
    assert "must be" in vpn("settings", "--web-port", "0", ok=False).stderr
