"""Test helpers that check VPN configs with the real WireGuard tools and with the
rules of the official apps' stricter parsers.

* :func:`wg_pubkey` — ``/usr/bin/wg pubkey``.
* :func:`wg_check` — ``wg-quick strip`` on a copy, then ``wg setconf`` on it.
  There is no WireGuard kernel module here (``ip link add … type wireguard``
  says "Unknown device type", also in a fresh network namespace), so setconf
  cannot apply the config; it parses the whole file first and only then talks
  to the kernel. A parse error prints ``Configuration parsing error`` (after
  ``Line unrecognized`` / ``Key is not the correct length`` …) and never gets
  to "Unable to modify interface"; a config that parsed does. When root, a
  userspace-API socket in /var/run/wireguard (what wireguard-go serves) lets
  setconf succeed, and the settings wg parsed are returned for inspection.
* :func:`strict_parse` — the union of the checks of wireguard-windows
  ``conf/parser.go`` (FromWgQuick), wireguard-apple
  ``TunnelConfiguration+WgQuickConfig.swift`` and wireguard-android
  ``Config.parse``: sections, known keys only, no duplicate keys, no empty
  values, keys base64 of exactly 32 bytes, comma-separated lists without empty
  items, CIDRs, DNS as IPs, MTU 576-65535, ports and keepalive 0-65535,
  IPv6 endpoints bracketed, one [Interface] with a PrivateKey, every peer with
  a PublicKey. Plus our own rules: canonical base64, normalized networks.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import shutil
import socket
import subprocess
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

WG = shutil.which("wg") or "/usr/bin/wg"
WG_QUICK = shutil.which("wg-quick") or "/usr/bin/wg-quick"
UAPI_DIR = Path("/var/run/wireguard")
PARSE_ERROR_MARKERS = ("Configuration parsing error", "Line unrecognized", "Unable to parse", "not the correct length")


class ConfigRejected(AssertionError):
    pass


def wg_pubkey(private_key: str) -> str:
    out = subprocess.run([WG, "pubkey"], input=private_key + "\n", capture_output=True, text=True,
                         timeout=10, check=True)
    return out.stdout.strip()


def wg_genkey() -> str:
    return subprocess.run([WG, "genkey"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()


def wg_quick_strip(text: str, workdir: Path) -> str:
    """``wg-quick strip`` of ``text`` (written 0600 as ``hmcheck.conf``: the name must be an interface name)."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    path = workdir / "hmcheck.conf"
    path.write_text(text)
    os.chmod(path, 0o600)
    # wg-quick re-executes itself with sudo unless root; a user namespace makes us root enough
    prefix = [] if os.geteuid() == 0 else ["unshare", "--map-root-user"]
    out = subprocess.run([*prefix, WG_QUICK, "strip", str(path)], capture_output=True, text=True,
                         timeout=20, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise ConfigRejected(f"wg-quick strip rejected the config: {out.stderr}\n{text}")
    return out.stdout


class _UapiDevice:
    """A userspace WireGuard API endpoint (the protocol wireguard-go speaks) that
    records what ``wg set``/``setconf`` sends and answers ``wg show`` with ``peers``."""

    def __init__(self, name: str, peers: list[dict[str, str]] | None = None) -> None:
        self.name = name
        self.path = UAPI_DIR / f"{name}.sock"
        self.sets: list[str] = []
        self.peers = peers or []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._stop = threading.Event()

    def start(self) -> "_UapiDevice":
        UAPI_DIR.mkdir(parents=True, exist_ok=True)
        self._sock.bind(str(self.path))
        self._sock.listen(4)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while not data.endswith(b"\n\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                text = data.decode()
                if text.startswith("set=1"):
                    self.sets.append(text)
                    conn.sendall(b"errno=0\n\n")
                elif text.startswith("get=1"):
                    lines = ["listen_port=51820"]
                    for peer in self.peers:
                        lines += [f"{k}={v}" for k, v in peer.items()]
                    conn.sendall(("\n".join(lines) + "\nerrno=0\n\n").encode())

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)


def uapi_available() -> bool:
    return os.geteuid() == 0 and os.access(UAPI_DIR.parent, os.W_OK)


@contextmanager
def uapi_device(peers: list[dict[str, str]] | None = None):
    name = "hm" + uuid.uuid4().hex[:10]
    device = _UapiDevice(name, peers).start()
    try:
        yield device
    finally:
        device.stop()


def wg_check(text: str, workdir: Path) -> dict[str, list[str]] | None:
    """Check ``text`` with the real tools; raise :class:`ConfigRejected` if they refuse it.

    Returns what ``wg setconf`` parsed (UAPI key -> values) when a UAPI socket
    could be used, else None (parse-only check)."""
    stripped = wg_quick_strip(text, workdir)
    conf = workdir / "stripped.conf"
    conf.write_text(stripped)
    if uapi_available():
        with uapi_device() as device:
            out = subprocess.run([WG, "setconf", device.name, str(conf)], capture_output=True, text=True, timeout=20)
            if out.returncode != 0:
                raise ConfigRejected(f"wg setconf rejected the config: {out.stderr}\n{stripped}")
            parsed: dict[str, list[str]] = {}
            for line in device.sets[0].splitlines():
                if "=" in line:
                    key, value = line.split("=", 1)
                    parsed.setdefault(key, []).append(value)
            return parsed
    out = subprocess.run([WG, "setconf", "hmnoexist" + uuid.uuid4().hex[:6], str(conf)],
                         capture_output=True, text=True, timeout=20)
    if any(marker in out.stderr for marker in PARSE_ERROR_MARKERS):
        raise ConfigRejected(f"wg setconf could not parse the config: {out.stderr}\n{stripped}")
    if out.returncode != 0 and "Unable to modify interface" not in out.stderr:
        raise ConfigRejected(f"unexpected wg setconf failure: {out.stderr}")
    return None


# ------------------------------------------------------------------ strict parser

INTERFACE_KEYS = {"privatekey", "address", "dns", "mtu", "listenport", "preup", "postup", "predown",
                  "postdown", "table", "saveconfig", "fwmark"}
PEER_KEYS = {"publickey", "presharedkey", "allowedips", "endpoint", "persistentkeepalive"}
CLIENT_INTERFACE_KEYS = {"privatekey", "address", "dns", "mtu", "listenport"}


def _key(value: str) -> None:
    raw = base64.b64decode(value, validate=True)
    if len(raw) != 32 or base64.b64encode(raw).decode() != value:
        raise ConfigRejected(f"key {value!r} is not canonical base64 of 32 bytes")


def _list(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",")]
    if any(not v for v in items):
        raise ConfigRejected(f"empty item in list {value!r} (two commas in a row)")
    return items


def _cidr(value: str, normalized: bool) -> None:
    network = ipaddress.ip_network(value, strict=normalized)
    if normalized and str(network) != value:
        raise ConfigRejected(f"{value!r} is not written in normal form ({network})")
    if "/" not in value:
        raise ConfigRejected(f"{value!r} has no prefix length")


def _endpoint(value: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ConfigRejected(f"endpoint {value!r} has no port")
    if not 0 < int(port) <= 65535:
        raise ConfigRejected(f"endpoint port out of range in {value!r}")
    if host.startswith("[") or host.endswith("]") or ":" in host:
        if not (host.startswith("[") and host.endswith("]")):
            raise ConfigRejected(f"IPv6 endpoint {value!r} must be bracketed")
        if ipaddress.ip_address(host[1:-1]).version != 6:
            raise ConfigRejected(f"brackets must contain an IPv6 address: {value!r}")


def strict_parse(text: str, *, client: bool) -> dict:
    """Parse like the strictest official app; raise :class:`ConfigRejected` on anything they refuse."""
    try:
        return _strict_parse(text, client)
    except ValueError as exc:  # bad numbers, addresses, base64 (binascii.Error is a ValueError)
        raise ConfigRejected(f"invalid value: {exc}") from exc


def _strict_parse(text: str, client: bool) -> dict:
    if any(ord(ch) > 126 or (ord(ch) < 32 and ch not in "\n") for ch in text):
        raise ConfigRejected("config has non-ASCII or control characters")
    interface: dict[str, str] | None = None
    peers: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for raw_line in text.split("\n"):
        line = raw_line.split("#", 1)[0].strip()
        if not line:
            continue
        lower = line.lower()
        if lower == "[interface]":
            if interface is not None:
                raise ConfigRejected("more than one [Interface]")
            interface = current = {}
            continue
        if lower == "[peer]":
            current = {}
            peers.append(current)
            continue
        if current is None:
            raise ConfigRejected(f"line outside a section: {line!r}")
        if "=" not in line:
            raise ConfigRejected(f"line without '=': {line!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        key = key.lower()
        if not value:
            raise ConfigRejected(f"key {key} has no value")
        allowed = (CLIENT_INTERFACE_KEYS if client else INTERFACE_KEYS) if current is interface else PEER_KEYS
        if key not in allowed:
            raise ConfigRejected(f"unknown key {key!r} in {'[Interface]' if current is interface else '[Peer]'}")
        if key in current:
            raise ConfigRejected(f"duplicate key {key!r}")
        current[key] = value
        if key in ("privatekey", "publickey", "presharedkey"):
            _key(value)
        elif key == "address":
            for item in _list(value):
                ipaddress.ip_interface(item)
                if "/" not in item:
                    raise ConfigRejected(f"address {item!r} without prefix")
        elif key == "allowedips":
            for item in _list(value):
                _cidr(item, normalized=True)
        elif key == "dns":
            for item in _list(value):
                ipaddress.ip_address(item)
        elif key == "mtu":
            if not 576 <= int(value) <= 65535:
                raise ConfigRejected(f"MTU {value} out of range")
        elif key in ("listenport", "persistentkeepalive"):
            if not 0 <= int(value) <= 65535:
                raise ConfigRejected(f"{key} {value} out of range")
        elif key == "endpoint":
            _endpoint(value)
    if interface is None or "privatekey" not in interface:
        raise ConfigRejected("no [Interface] with a PrivateKey")
    for peer in peers:
        if "publickey" not in peer:
            raise ConfigRejected("a peer without PublicKey")
    return {"interface": interface, "peers": peers}
