"""What makes a registering worker the same node as before.

The cluster token lets anyone register *a* node; it does not say *which*.
A node's identity is its **node credentials** — the node id and node token
the pool issued at its first registration. Rules, in order:

1. **Credentials**: a worker presenting a valid (node id, node token) pair is
   that node again (``resumed``), from any host — the credentials are the
   identity, so a worker keeps them in a 0600 file (``--identity-file``) and
   whoever holds that file is the node. A worker process that just started
   (``fresh_process``) holds no leases, so the ones the node had are voided
   (requeued as if they had expired) instead of waiting out their expiry.
2. **Same name from the same host, once it is gone**: no valid credentials, but
   a node with the same name last registered from the same peer host (the IP
   address the pool saw, never what the worker claims) and is *offline* (no
   heartbeat for ``offline_after_s``). The newcomer takes it over
   (``adopted``): same node id, a new node token (the old one stops working),
   its open leases voided. A live node is never taken over, and a node on
   another machine never matches — so a name alone cannot steal a node, and two
   workers that happen to share a name both keep working as separate nodes.
3. Otherwise a **new** node.

Nodes offline for longer than the pool's node retention are forgotten
(:meth:`hivemind_core.nodepool.store.Store.prune_nodes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RESUMED, ADOPTED, NEW = "resumed", "adopted", "new"


@dataclass(frozen=True)
class Claim:
    """What a registering worker says (and where the pool saw it come from)."""

    name: str
    peer_host: str          # from the connection, "" if unknown
    node_id: str = ""
    node_token: str = ""
    fresh_process: bool = False


@dataclass(frozen=True)
class Decision:
    node_id: str
    how: str                # resumed | adopted | new
    new_token: bool         # a new node token is issued (adopted, new)
    void_leases: bool       # the node's open leases are no longer held by anyone


def peer_host(peer: str) -> str:
    """The host part of a gRPC peer string: ``ipv4:10.0.0.7:5123`` -> ``10.0.0.7``,
    ``ipv6:[::1]:5123`` -> ``::1``; "" when there is none."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit("]", 1)[0].lstrip("[") if rest.startswith("[") else rest.rsplit(":", 1)[0]
    return ""


def decide(claim: Claim, credentials_valid: bool, same_name_same_host: list[dict[str, Any]],
           now: float, offline_after_s: float, new_node_id: str) -> Decision:
    """Apply the rules above. ``same_name_same_host``: nodes with the claim's name
    last registered from its peer host (each with ``node_id`` and ``last_heartbeat``)."""
    if credentials_valid:
        return Decision(claim.node_id, RESUMED, new_token=False, void_leases=claim.fresh_process)
    if claim.peer_host:
        gone = [n for n in same_name_same_host if now - n["last_heartbeat"] > offline_after_s]
        if gone:
            latest = max(gone, key=lambda n: n["last_heartbeat"])
            return Decision(latest["node_id"], ADOPTED, new_token=True, void_leases=True)
    return Decision(new_node_id, NEW, new_token=True, void_leases=False)
