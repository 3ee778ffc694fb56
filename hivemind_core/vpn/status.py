"""Live peer status from ``wg show`` — handshakes and transfer, nothing secret.

Only ``wg show <iface> latest-handshakes`` and ``wg show <iface> transfer`` are
run: their output is public keys and numbers (plain ``wg show`` or
``wg showconf`` could print private or preshared keys). Where ``wg`` is
missing, not permitted, or the interface does not exist, the result says so
and why instead of failing.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field

log = logging.getLogger(__name__)
DEFAULT_INTERFACE = "wg0"
TIMEOUT_S = 5.0


@dataclass(frozen=True)
class PeerStatus:
    public_key: str
    latest_handshake: float | None  # unix seconds; None = never
    rx_bytes: int = 0
    tx_bytes: int = 0


@dataclass(frozen=True)
class VpnStatus:
    interface: str
    available: bool
    reason: str = ""   # why not available, technically (the failing command and its message): for admins
    peers: dict[str, PeerStatus] = field(default_factory=dict)
    summary: str = ""  # why not available, in words for everyone ("Live status is unavailable: ...")


UNAVAILABLE = "Live status (handshakes, transfer) is unavailable"


class _WgFailed(RuntimeError):
    def __init__(self, reason: str, summary: str) -> None:
        super().__init__(reason)
        self.summary = summary


def _explain(stderr: str, interface: str) -> _WgFailed:
    text = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    low = text.lower()
    if "operation not permitted" in low or "permission denied" in low:
        hint = "reading WireGuard status needs root or CAP_NET_ADMIN"
        summary = f"{UNAVAILABLE}: this server is not allowed to read the WireGuard interface {interface}."
    elif "no such device" in low or "protocol not supported" in low or "does not exist" in low:
        hint = f"there is no WireGuard interface {interface} on this machine (the server runs elsewhere or is down)"
        summary = f"{UNAVAILABLE}: the WireGuard interface {interface} is not up on this server."
    else:
        hint = "see the message"
        summary = f"{UNAVAILABLE}: reading the WireGuard interface {interface} failed."
    return _WgFailed(f"`wg show {interface}` failed: {text} — {hint}", summary)


def _run(wg: str, interface: str, what: str) -> str:
    result = subprocess.run(
        [wg, "show", interface, what], capture_output=True, text=True, timeout=TIMEOUT_S,
        env={**os.environ, "LC_ALL": "C"}, check=False,
    )
    if result.returncode != 0:
        raise _explain(result.stderr, interface)
    return result.stdout


def read_status(interface: str = DEFAULT_INTERFACE, wg: str | None = None) -> VpnStatus:
    """Each peer's latest handshake and transfer on ``interface``, or why that is unavailable."""
    wg_path = wg or shutil.which("wg")
    if not wg_path:
        return VpnStatus(interface, False, "the `wg` command is not installed on this machine "
                                           "(Debian/Ubuntu: apt install wireguard-tools)",
                         summary=f"{UNAVAILABLE}: the WireGuard tools are not installed on this server.")
    try:
        handshakes = _run(wg_path, interface, "latest-handshakes")
        transfer = _run(wg_path, interface, "transfer")
    except _WgFailed as exc:
        return VpnStatus(interface, False, str(exc), summary=exc.summary)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return VpnStatus(interface, False, f"`wg show {interface}` could not run: {exc}",
                         summary=f"{UNAVAILABLE}: reading the WireGuard interface {interface} failed.")
    peers: dict[str, PeerStatus] = {}
    for line in handshakes.splitlines():
        key, _, stamp = line.partition("\t")
        if key:
            seconds = int(stamp or 0)
            peers[key] = PeerStatus(key, float(seconds) if seconds else None)
    for line in transfer.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            key, rx, tx = parts
            old = peers.get(key, PeerStatus(key, None))
            peers[key] = PeerStatus(key, old.latest_handshake, int(rx), int(tx))
    log.debug("wg status for %s: %d peers", interface, len(peers))
    return VpnStatus(interface, True, "", peers)
