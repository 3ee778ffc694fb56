"""VPN tables: one row of server settings, one row per peer (revoked ones kept for history).

Uniqueness that must hold across processes is enforced by the database, not
only by the code that checks first: each address column is UNIQUE (a revoked
peer's address is set to NULL, which frees it), and an active peer's name and
public key are unique through partial indexes.
"""

from __future__ import annotations

import time

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

DEFAULT_SUBNET = "10.0.0.0/24"
DEFAULT_KEEPALIVE = 25
DEFAULT_NODE_POOL_PORT = 50051
DEFAULT_INTERFACE = "wg0"
PEER_KINDS = ("user", "worker")


class VpnServerSettings(SQLModel, table=True):
    __tablename__ = "vpn_server_settings"

    id: int = Field(default=1, primary_key=True)
    endpoint: str | None = None  # None: HIVEMIND_VPN_ENDPOINT / VPN_SERVER_IP
    port: int | None = None  # None: HIVEMIND_VPN_PORT / VPN_PORT (default 51820)
    subnet: str = DEFAULT_SUBNET
    subnet_v6: str | None = None
    dns: str = ""  # comma-separated IP addresses; "" = no DNS line
    mtu: int | None = None
    keepalive: int = DEFAULT_KEEPALIVE
    node_pool_port: int = DEFAULT_NODE_POOL_PORT  # worker peers may reach this TCP port
    web_port: int = 0  # user peers may reach this TCP port; 0: the port the web app runs on
    updated_at: float = Field(default_factory=time.time)
    updated_by: str = ""


class VpnPeer(SQLModel, table=True):
    __tablename__ = "vpn_peers"
    __table_args__ = (
        Index("uq_vpn_peers_active_name", "name", unique=True, sqlite_where=text("revoked_at IS NULL")),
        Index("uq_vpn_peers_active_key", "public_key", unique=True, sqlite_where=text("revoked_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str
    owner: str = Field(index=True)
    kind: str = "user"  # user | worker
    public_key: str
    byok: bool = False  # the user brought their own key pair
    preshared_key_enc: str | None = None  # Fernet token (see secret_box)
    private_key_enc: str | None = None  # only when an admin chose to keep it
    full_tunnel: bool = False
    address_v4: str | None = Field(default=None, unique=True)
    address_v6: str | None = Field(default=None, unique=True)
    enabled: bool = True
    created_at: float = Field(default_factory=time.time)
    created_by: str = ""
    revoked_at: float | None = None
    revoked_by: str = ""
    revoked_addresses: str = ""  # what it had, for the record; the columns above are freed

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def addresses(self) -> list[str]:
        return [a for a in (self.address_v4, self.address_v6) if a]
