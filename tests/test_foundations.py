"""Config, secrets, atomic writes and the SQLite write discipline."""

from __future__ import annotations

import multiprocessing as mp
import os
import stat
from pathlib import Path

import pytest
from sqlmodel import Field, SQLModel

from hivemind_core.config import get_settings, streamlit_upload_limit_mb
from hivemind_core.errors import ConfigError
from hivemind_core.fileutil import atomic_write
from hivemind_core.secrets_store import get_or_create_secret
from hivemind_core.sqlite import make_engine, read_session, write_session


def test_defaults_and_seed_aliases(tmp_path: Path) -> None:
    s = get_settings({})
    assert s.data_dir == Path(".hivemind").resolve()
    assert s.node_pool is None and s.embedded
    assert s.vpn_port == 51820
    assert s.database_url == f"sqlite:///{s.data_dir / 'master.db'}"
    assert s.max_upload_mb == streamlit_upload_limit_mb()

    seed = get_settings({
        "UPLOAD_FOLDER": str(tmp_path), "NODE_POOL_ADDRESS": "pool:50051",
        "MAX_CONTENT_LENGTH": str(16 * 1024 * 1024), "VPN_SERVER_IP": "10.0.0.1", "VPN_PORT": "51821",
        "SECRET_KEY": "k",
    })
    assert seed.data_dir == tmp_path and seed.node_pool == "pool:50051"
    assert seed.max_upload_mb == 16 and seed.vpn_endpoint == "10.0.0.1" and seed.vpn_port == 51821
    assert seed.secret_key == "k"
    # the HiveMind name wins over the alias
    assert get_settings({"HIVEMIND_VPN_PORT": "1", "VPN_PORT": "2"}).vpn_port == 1


@pytest.mark.parametrize("env", [{"HIVEMIND_VPN_PORT": "abc"}, {"HIVEMIND_VPN_PORT": "70000"},
                                 {"HIVEMIND_WORKERS": "-1"}, {"HIVEMIND_MAX_UPLOAD_MB": "0"}])
def test_bad_settings_name_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(env))):
        get_settings(env)


def test_atomic_write_is_0600(tmp_path: Path) -> None:
    p = atomic_write(tmp_path / "a" / "key", "secret")
    assert p.read_text() == "secret"
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    atomic_write(p, b"new")
    assert p.read_bytes() == b"new"
    assert [f.name for f in p.parent.iterdir()] == ["key"]


def test_secret_generated_once_0600(tmp_path: Path) -> None:
    a = get_or_create_secret(tmp_path, "cookie_key")
    b = get_or_create_secret(tmp_path, "cookie_key")
    assert a == b and len(a) >= 40
    path = tmp_path / "secrets" / "cookie_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert get_or_create_secret(tmp_path, "other") != a


class _Counter(SQLModel, table=True):
    __tablename__ = "test_counter"
    id: int = Field(primary_key=True)
    n: int


def _bump(url: str, times: int) -> None:
    engine = make_engine(url)
    for _ in range(times):
        with write_session(engine) as s:
            row = s.get(_Counter, 1)
            row.n += 1
            s.add(row)
            s.commit()


def test_read_modify_write_across_processes_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = make_engine(url)
    SQLModel.metadata.create_all(engine, tables=[_Counter.__table__])
    with write_session(engine) as s:
        s.add(_Counter(id=1, n=0))
        s.commit()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_bump, args=(url, 100)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with read_session(engine) as s:
        assert s.get(_Counter, 1).n == 400
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
