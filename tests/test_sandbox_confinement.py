"""User code in the worker sandbox is confined (Landlock): a script on the
embedded cluster cannot read the master's secrets, databases or other tasks'
data — it gets a PermissionError as its own script's error — while its scratch
dir, its input and ordinary jobs keep working. Also: what the child writes to
the worker's pipe is never unpickled, and a result path it names is only used
when it is a regular file in its scratch dir.

Real parts only: the ``landlock`` module in a fresh child process, the worker's
real sandbox child, and the real embedded cluster (node pool + worker
processes) driven through TaskService."""

from __future__ import annotations

import json
import os
import pickle
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from hivemind_core import db
from hivemind_core.cluster import connect_cluster
from hivemind_core.config import get_settings
from hivemind_core.jobs.operations import SCRIPT_OP
from hivemind_core.jobs.results import write_ipc
from hivemind_core.principal import Principal
from hivemind_core.secrets_store import cookie_key, secret_path
from hivemind_core.tasks.service import TaskService
from hivemind_core.worker import landlock
from hivemind_core.worker.sandbox import Sandbox, SandboxJob
from tests.flights import write_flights_csv
from tests.test_jobs_script_errors import sandbox  # noqa: F401 - the module's real sandbox child
from tests.test_tasks_service import _wait_final

ROOT = Path(__file__).resolve().parent.parent
ABI = landlock.abi_version()
needs_landlock = pytest.mark.skipif(ABI == 0, reason="this kernel has no Landlock (Linux >= 5.13 with "
                                                      "Landlock enabled): user code cannot be confined here")
ALICE = Principal("alice", "analyst")
BOB = Principal("bob", "analyst")


# ------------------------------------------------------------------ the landlock module, in a child process

PROBE = textwrap.dedent("""
    import json, os, socket, sys
    from pathlib import Path
    from hivemind_core.worker import landlock
    allowed, scratch, secret, port = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    read = [Path(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path[1:]} if p]
    done = landlock.confine(read + [allowed], [scratch], [Path("/dev/null")])
    out = {"abi": done.abi, "confined": landlock.current().confined}

    def attempt(name, fn):
        try:
            out[name] = fn()
        except OSError as exc:
            out[name] = type(exc).__name__

    attempt("read_allowed", lambda: (allowed / "ok.txt").read_text())
    attempt("read_secret", lambda: secret.read_text())
    attempt("list_secret_dir", lambda: os.listdir(secret.parent))
    attempt("write_allowed", lambda: (allowed / "new.txt").write_text("x"))
    attempt("write_scratch", lambda: ((scratch / "sub").mkdir(), (scratch / "sub" / "f").write_text("w"),
                                      (scratch / "sub" / "f").read_text())[-1])
    attempt("remove_scratch", lambda: ((scratch / "sub" / "f").unlink(), (scratch / "sub").rmdir(), "gone")[-1])
    attempt("dev_null", lambda: open("/dev/null", "w").write("x"))
    attempt("tcp", lambda: socket.create_connection(("127.0.0.1", port), timeout=5).close() or "connected")
    print(json.dumps(out))
""")


@needs_landlock
def test_landlock_confines_a_process_to_its_rules(tmp_path: Path) -> None:
    allowed, scratch, secrets_dir = tmp_path / "allowed", tmp_path / "scratch", tmp_path / "secrets"
    for d in (allowed, scratch, secrets_dir):
        d.mkdir()
    (allowed / "ok.txt").write_text("fine")
    secret = secrets_dir / "cookie_key"
    secret.write_text("s3cr3t")
    assert secret.read_text() == "s3cr3t"  # the file permissions allow it: only Landlock can deny it
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-c", PROBE, str(allowed), str(scratch), str(secret),
                               str(listener.getsockname()[1])],
                              capture_output=True, text=True, timeout=60, env=env, cwd=scratch)
    finally:
        listener.close()
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["abi"] == ABI and out["confined"] is True
    assert out["read_allowed"] == "fine"
    assert out["read_secret"] == "PermissionError"
    assert out["list_secret_dir"] == "PermissionError"
    assert out["write_allowed"] == "PermissionError"       # read-only rule
    assert out["write_scratch"] == "w" and out["remove_scratch"] == "gone"
    assert out["dev_null"] == 1
    if ABI >= 4:
        assert out["tcp"] == "PermissionError"
    assert not (allowed / "new.txt").exists()


def test_only_rights_the_kernel_abi_knows_are_handled() -> None:
    # include/uapi/linux/landlock.h: ABI 1 has 13 filesystem rights, 2 adds REFER,
    # 3 TRUNCATE, 4 only network rights, 5 IOCTL_DEV; later ABIs add no filesystem right
    assert landlock.handled_fs(1) == 0x1FFF
    assert landlock.handled_fs(2) == 0x3FFF
    assert landlock.handled_fs(3) == landlock.handled_fs(4) == 0x7FFF
    assert landlock.handled_fs(5) == landlock.handled_fs(7) == 0xFFFF


# A kernel without Landlock, made for real: a seccomp filter (inherited by every child)
# makes the Landlock syscalls fail with ENOSYS, as on Linux < 5.13.
NO_LANDLOCK = textwrap.dedent("""
    import ctypes, json, logging, struct, sys
    from pathlib import Path

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    ENOSYS, ERRNO, ALLOW = 38, 0x00050000, 0x7FFF0000
    rules = [Filter(0x20, 0, 0, 0)]                                   # load the syscall number
    for nr in (444, 445, 446):
        rules += [Filter(0x15, 0, 1, nr), Filter(0x06, 0, 0, ERRNO | ENOSYS)]
    rules.append(Filter(0x06, 0, 0, ALLOW))
    program = (Filter * len(rules))(*rules)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0                            # PR_SET_NO_NEW_PRIVS
    assert libc.prctl(22, 2, ctypes.byref(Prog(len(rules), program)), 0, 0) == 0, ctypes.get_errno()

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from hivemind_core.jobs.operations import SCRIPT_OP
    from hivemind_core.jobs.results import read_ipc
    from hivemind_core.worker import hostinfo
    from hivemind_core.worker.sandbox import Sandbox, SandboxJob

    root, shard, secret = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    script = "def process(df):\\n    return df.assign(key=open(%r).read())\\n" % secret
    out = {"label": hostinfo.sandbox_confinement(), "keys": []}
    for slot in ("a", "b"):
        sb = Sandbox(root / slot)
        result = sb.run(SandboxJob("s", "t", SCRIPT_OP, json.dumps({"script": script}).encode(), shard, 60, 512))
        assert result.ok, result.message
        out["keys"].append(read_ipc(result.path).column("key")[0].as_py())
        out["confined"], out["confinement"] = sb.confined, sb.confinement
        sb.clean()
        sb.close()
    print(json.dumps(out))
""")


def test_without_landlock_user_code_still_runs_and_the_worker_warns_once(tmp_path: Path, shard) -> None:
    secret = tmp_path / "cookie_key"
    secret.write_text("plain")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", NO_LANDLOCK, str(tmp_path / "work"), str(shard), str(secret)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["label"] == "UNCONFINED"
    assert out["confined"] is False and out["confinement"].startswith("NOT confined: this kernel has no Landlock")
    assert out["keys"] == ["plain", "plain"]   # unconfined: it runs, and it can read what its user can
    warnings = [ln for ln in proc.stderr.splitlines() if "UNCONFINED" in ln]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING:"), proc.stderr


# ------------------------------------------------------------------ the worker's sandbox child


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ipc(pd.DataFrame({"x": [1, 2, 3]}), tmp_path_factory.mktemp("shard") / "shard.arrow")


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    secret = tmp_path_factory.mktemp("outside") / "cookie_key"
    secret.write_text("s3cr3t-outside")
    return secret


def run(sandbox: Sandbox, shard: Path, script: str, subtask_id: str = "s"):
    result = sandbox.run(SandboxJob(subtask_id=subtask_id, task_id="t", operation=SCRIPT_OP,
                                    params=json.dumps({"script": script}).encode(), input_path=shard,
                                    timeout_s=60, memory_mb=512))
    data = result.data if result.path is None else result.path.read_bytes()
    sandbox.clean()
    return result, data


def info(sandbox: Sandbox) -> dict:
    result = sandbox.run(SandboxJob(subtask_id="i", task_id="t", operation="sandbox_info", params=b"",
                                    input_path=None, timeout_s=60, memory_mb=0))
    assert result.ok, result.message
    return json.loads(result.data)


@needs_landlock
def test_sandbox_child_is_confined_and_says_so(sandbox):
    seen = info(sandbox)
    assert seen["confined"] is True and sandbox.confined is True
    assert f"Landlock ABI {ABI}" in seen["confinement"] and f"Landlock ABI {ABI}" in sandbox.confinement
    assert stat.S_IMODE(sandbox.root.stat().st_mode) == 0o700


@needs_landlock
def test_reply_written_by_user_code_is_never_unpickled(sandbox, shard, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bomb = pickle.dumps(Evil())   # what the worker would run if it unpickled the child's replies
    script = textwrap.dedent(f"""
        import os, struct, stat

        def process(df):
            for fd in range(3, 64):
                try:
                    if stat.S_ISFIFO(os.fstat(fd).st_mode):
                        os.write(fd, struct.pack("!I", {len(bomb)}) + {bomb!r})
                except OSError:
                    pass
            return df
    """)
    result, _ = run(sandbox, shard, script)
    assert result.status == "crashed" and "malformed reply" in result.message
    assert not marker.exists()
    result, data = run(sandbox, shard, "def process(df):\n    return df * 2\n")  # a fresh child takes over
    assert result.ok, result.message


@needs_landlock
@pytest.mark.parametrize("how", ["path outside scratch", "symlink in scratch"])
def test_a_forged_result_path_is_not_uploaded(sandbox, shard, outside, how):
    target = (f"os.symlink({str(outside)!r}, 'evil.arrow') or os.path.abspath('evil.arrow')"
              if how == "symlink in scratch" else repr(str(outside)))
    script = textwrap.dedent(f"""
        import json, os, stat, struct

        def process(df):
            meta = json.dumps({{"status": "ok", "subtask_id": "forged", "path": {target}}}).encode()
            for fd in range(3, 64):
                try:
                    if stat.S_ISFIFO(os.fstat(fd).st_mode):
                        os.write(fd, struct.pack("!I", len(meta)) + meta + struct.pack("!I", 0))
                except OSError:
                    pass
            return df
    """)
    result, data = run(sandbox, shard, script, subtask_id="forged")
    assert not result.ok
    assert "s3cr3t" not in result.message and "s3cr3t" not in (data or b"").decode(errors="replace")
    assert "regular file directly in its scratch dir" in result.message
    result, _ = run(sandbox, shard, "def process(df):\n    return df\n")   # the stale real reply is not taken
    assert result.ok, result.message


def test_scratch_and_cwd_are_writable_and_input_readable(sandbox, shard):
    script = textwrap.dedent("""
        import os, tempfile

        def process(df):
            with open("note.txt", "w") as fh:
                fh.write("kept")
            os.makedirs("sub/dir")
            with tempfile.NamedTemporaryFile("w", delete=False) as fh:   # TMPDIR is the scratch dir
                fh.write("tmp")
            df["note"] = open("note.txt").read() + open(fh.name).read()
            df["same_dir"] = os.path.dirname(fh.name) == os.getcwd()
            return df
    """)
    result, data = run(sandbox, shard, script)
    assert result.ok, result.message
    import pyarrow as pa

    frame = pa.ipc.open_file(pa.BufferReader(data)).read_pandas()
    assert frame["x"].tolist() == [1, 2, 3]
    assert set(frame["note"]) == {"kepttmp"} and frame["same_dir"].all()


# ------------------------------------------------------------------ end to end: the embedded cluster


@pytest.fixture
def cluster(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TaskService]:
    monkeypatch.setenv("HIVEMIND_WORKERS", "1")
    settings = get_settings()
    engine = db.get_engine(settings)
    cookie_key(settings)   # the app creates it on first start
    client, embedded = connect_cluster(settings)
    try:
        yield TaskService(engine, client, settings)
    finally:
        client.close()
        if embedded is not None:
            embedded.stop()


PROBE_SCRIPT = """
import os

PATHS = {paths!r}

def process(df):
    rows = []
    for name, path in PATHS.items():
        try:
            with open(path, "rb") as fh:
                outcome = "read " + fh.read(64).hex()
        except OSError as exc:
            outcome = type(exc).__name__
        rows.append({{"name": name, "outcome": outcome}})
    try:
        outcome = "listed " + ",".join(os.listdir({data_dir!r}))
    except OSError as exc:
        outcome = type(exc).__name__
    rows.append({{"name": "list data dir", "outcome": outcome}})
    with open("scratch.txt", "w") as fh:
        fh.write("written")
    rows.append({{"name": "scratch", "outcome": open("scratch.txt").read()}})
    return df.__class__(rows)
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
@needs_landlock
def test_script_on_the_embedded_cluster_cannot_read_the_masters_data(cluster, data_dir, tmp_path):
    service = cluster
    flights = write_flights_csv(tmp_path / "flights.csv")
    bob = service.submit(BOB, {"pipeline": {"group_by": ["origin"], "aggregate": {"distance": ["sum"]}},
                               "split": {"shards": 2}}, flights, "flights.csv")
    assert _wait_final(service, bob.id).status == "completed"

    secret = secret_path(data_dir, "cookie_key")
    key = secret.read_text().strip()
    pool = data_dir / "nodepool"
    targets = {
        "cookie_key": secret,
        "master.db": data_dir / "master.db",
        "pool db": pool / "nodepool.db",
        "cluster token": pool / "secrets" / "cluster_token",
        "worker identity": next((pool / "secrets").glob("node-local-*.json")),
        "a blob of another task": next(p for p in (pool / "blobs").rglob("*") if p.is_file()),
        "bob's result": service.result_path(BOB, bob.id),
        "the checkout around hivemind_core": ROOT / "README.md",
    }
    for path in targets.values():
        assert path.read_bytes()  # they exist and this (unconfined) user may read them

    # a script that opens the key fails, with a PermissionError shown as its own error
    steal = f"def process(df):\n    return df.assign(key=open({str(secret)!r}).read())\n"
    task = service.submit(ALICE, {"script": steal, "max_attempts": 1, "split": {"shards": 1}},
                          flights, "flights.csv")
    failed = _wait_final(service, task.id)
    assert failed.status == "failed"
    assert "PermissionError: [Errno 13] Permission denied" in failed.error and str(secret) in failed.error
    assert key not in failed.error and "sandbox_child" not in failed.error

    # probing every file: each one is denied, the scratch dir works
    probe = PROBE_SCRIPT.format(paths={k: str(v) for k, v in targets.items()}, data_dir=str(data_dir))
    task = service.submit(ALICE, {"script": probe, "max_attempts": 1, "split": {"shards": 1}},
                          flights, "flights.csv")
    done = _wait_final(service, task.id)
    assert done.status == "completed", done.error
    outcomes = dict(pd.read_csv(service.result_path(ALICE, task.id)).itertuples(index=False))
    assert outcomes == {**{name: "PermissionError" for name in targets},
                        "list data dir": "PermissionError", "scratch": "written"}

    # the operator sees it: the node's sandbox label
    assert {n.labels.get("sandbox") for n in service.client.nodes()} == {f"landlock ABI {ABI}"}

    # private data dirs
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(pool.stat().st_mode) == 0o700
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert key == secret.read_text().strip()
    assert os.access(secret, os.R_OK)
