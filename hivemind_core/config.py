"""All configuration, read from the environment in one place.

Every setting has a documented default; the seed's variable names are accepted
as aliases (the HiveMind name wins when both are set).

| variable                  | alias (seed)           | default                          |
|---------------------------|------------------------|----------------------------------|
| HIVEMIND_DATA_DIR         | UPLOAD_FOLDER          | ./.hivemind                      |
| HIVEMIND_NODE_POOL        | NODE_POOL_ADDRESS      | unset = embedded cluster         |
| HIVEMIND_CLUSTER_TOKEN    | —                      | generated into the data dir      |
| DATABASE_URL              | DATABASE_URL           | sqlite:///<data dir>/master.db   |
| HIVEMIND_SECRET_KEY       | SECRET_KEY             | generated into the data dir      |
| HIVEMIND_MAX_UPLOAD_MB    | MAX_CONTENT_LENGTH (B) | server.maxUploadSize in .streamlit/config.toml |
| HIVEMIND_VPN_ENDPOINT     | VPN_SERVER_IP          | set on the VPN page              |
| HIVEMIND_VPN_PORT         | VPN_PORT               | 51820                            |
| HIVEMIND_WORKERS          | —                      | CPU count (embedded workers)     |
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hivemind_core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STREAMLIT_CONFIG = PROJECT_ROOT / ".streamlit" / "config.toml"
DEFAULT_DATA_DIR = "./.hivemind"
DEFAULT_VPN_PORT = 51820
FALLBACK_UPLOAD_MB = 200  # Streamlit's own default when config.toml says nothing
FALLBACK_SERVER_PORT = 8501  # Streamlit's own default port


def _get(env: Mapping[str, str], name: str, alias: str | None = None) -> str | None:
    for key in (name, alias):
        if key and env.get(key, "").strip():
            return env[key].strip()
    return None


def _int(value: str, name: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}.") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {number}.")
    return number


def streamlit_upload_limit_mb(config_path: Path = STREAMLIT_CONFIG) -> int:
    """The upload limit (MB) that ``.streamlit/config.toml`` sets for the server."""
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return FALLBACK_UPLOAD_MB
    return int(data.get("server", {}).get("maxUploadSize", FALLBACK_UPLOAD_MB))


def streamlit_server_port(config_path: Path = STREAMLIT_CONFIG, env: Mapping[str, str] | None = None) -> int:
    """The TCP port the web app runs on: inside the app, Streamlit's ``server.port`` (whatever
    set it: ``--server.port``, ``STREAMLIT_SERVER_PORT``, a config file); elsewhere (the CLI)
    ``STREAMLIT_SERVER_PORT``, else ``server.port`` in ``.streamlit/config.toml``, else 8501."""
    if "streamlit" in sys.modules:  # never imported just for this (the CLI stays light)
        from streamlit import config as st_config, runtime

        if runtime.exists():
            return int(st_config.get_option("server.port"))
    env = os.environ if env is None else env
    raw = _get(env, "STREAMLIT_SERVER_PORT")
    if raw is not None:
        return _int(raw, "STREAMLIT_SERVER_PORT", 1)
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return FALLBACK_SERVER_PORT
    return int(data.get("server", {}).get("port", FALLBACK_SERVER_PORT))


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    node_pool: str | None
    cluster_token: str | None
    database_url: str
    secret_key: str | None
    max_upload_mb: int
    vpn_endpoint: str | None
    vpn_port: int
    workers: int

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def embedded(self) -> bool:
        """True when the master runs its own node pool and workers."""
        return self.node_pool is None


def get_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``) — always fresh."""
    env = os.environ if env is None else env
    data_dir = Path(_get(env, "HIVEMIND_DATA_DIR", "UPLOAD_FOLDER") or DEFAULT_DATA_DIR).expanduser()
    data_dir = data_dir.resolve()

    upload = _get(env, "HIVEMIND_MAX_UPLOAD_MB")
    if upload is not None:
        max_upload_mb = _int(upload, "HIVEMIND_MAX_UPLOAD_MB", 1)
    elif (raw := _get(env, "MAX_CONTENT_LENGTH")) is not None:
        max_upload_mb = max(1, _int(raw, "MAX_CONTENT_LENGTH", 1) // (1024 * 1024))
    else:
        max_upload_mb = streamlit_upload_limit_mb()

    port = _get(env, "HIVEMIND_VPN_PORT", "VPN_PORT")
    vpn_port = _int(port, "HIVEMIND_VPN_PORT", 1) if port else DEFAULT_VPN_PORT
    if vpn_port > 65535:
        raise ConfigError(f"HIVEMIND_VPN_PORT must be a UDP port (1-65535), got {vpn_port}.")

    workers_raw = _get(env, "HIVEMIND_WORKERS")
    workers = _int(workers_raw, "HIVEMIND_WORKERS", 0) if workers_raw else (os.cpu_count() or 1)

    return Settings(
        data_dir=data_dir,
        node_pool=_get(env, "HIVEMIND_NODE_POOL", "NODE_POOL_ADDRESS"),
        cluster_token=_get(env, "HIVEMIND_CLUSTER_TOKEN"),
        database_url=_get(env, "DATABASE_URL") or f"sqlite:///{data_dir / 'master.db'}",
        secret_key=_get(env, "HIVEMIND_SECRET_KEY", "SECRET_KEY"),
        max_upload_mb=max_upload_mb,
        vpn_endpoint=_get(env, "HIVEMIND_VPN_ENDPOINT", "VPN_SERVER_IP"),
        vpn_port=vpn_port,
        workers=workers,
    )
