"""What user code leaves behind in a worker slot never reaches another task.

The sandbox child is reused across subtasks, tasks and users. A script may
leave a background process (also one that called ``setsid`` and double-forked)
or a thread in its slot; here such a leftover — a spy that keeps reading every
file of the slot's scratch and input dirs and writes down what it saw — is left
behind by task A, then task B (another owner) runs on the same slot: the spy is
gone and never saw B's input. Pipeline work keeps one warm child across tasks;
user code followed by another task's subtask gets a new child. Landlock rules
hold on to inodes: a process confined to a dir cannot reach a new dir made at
the same path.

Real parts only: the worker's real sandbox child (in this process) and the real
embedded cluster (node pool + worker process) driven through TaskService."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest

from hivemind_core import db
from hivemind_core.cluster import connect_cluster
from hivemind_core.config import get_settings
from hivemind_core.jobs.operations import SCRIPT_OP
from hivemind_core.jobs.results import read_ipc, write_ipc
from hivemind_core.secrets_store import cookie_key
from hivemind_core.tasks.service import TaskService
from hivemind_core.worker.sandbox import Sandbox, SandboxJob
from tests.engine_support import wait_until
from tests.flights import write_flights_csv
from tests.test_sandbox_confinement import ALICE, BOB, ROOT, needs_landlock
from tests.test_tasks_service import _wait_final

pytestmark = pytest.mark.timeout(180)

# The spy: every 20 ms, every file in the given dirs, its name and contents (Arrow files decoded)
# appended to the log (kept open) the first time it is seen; the whole log written anew whenever
# its file was removed. Run as `python -c SPY LOG DIR...` or in a thread.
SPY = textwrap.dedent("""
    import os, sys, time

    def spy(log, dirs):
        import resource
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))   # not the subtask's memory limit
        notes = []
        out = open(log, "a")

        def note(line):
            notes.append(line + "\\n")
            out.write(notes[-1])
            out.flush()

        note("started %d" % os.getpid())
        seen = set()
        while True:
            for d in dirs:
                try:
                    names = os.listdir(d)
                except OSError:
                    continue
                for name in names:
                    path = os.path.join(d, name)
                    if path == log:
                        continue
                    try:
                        with open(path, "rb") as fh:
                            data = fh.read()
                    except OSError:
                        continue
                    if (name, len(data)) in seen:
                        continue
                    seen.add((name, len(data)))
                    text = repr(data)
                    try:
                        import pyarrow as pa
                        text += " " + repr(pa.ipc.open_file(pa.BufferReader(data)).read_all().to_pydict())
                    except Exception:
                        pass
                    note("saw %s: %s" % (name, text))
            if not os.path.exists(log):   # emptied away with the scratch dir: write it all down again
                try:
                    with open(log, "w") as fresh:
                        fresh.write("".join(notes))
                except OSError:
                    pass
            time.sleep(0.02)

    if __name__ == "__main__":
        spy(sys.argv[1], sys.argv[2:])
""")

# Task A's script: leave a spy behind (how: below), wait until it saw A's own input, return its pid.
LEAVE_SPY = textwrap.dedent("""
    import os, subprocess, sys, threading, time

    SPY = {spy!r}
    HOW = {how!r}
    MARK = {mark!r}

    def process(df):
        scratch = os.getcwd()
        log = os.path.join(scratch, "spy.log")
        args = [sys.executable, "-c", SPY, log, scratch, os.path.join(os.path.dirname(scratch), "input")]
        if HOW == "popen new session":
            pid = subprocess.Popen(args, start_new_session=True, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid
        elif HOW == "fork setsid fork exec":
            r, w = os.pipe()
            middle = os.fork()
            if middle == 0:
                os.setsid()
                if os.fork():
                    os._exit(0)
                os.write(w, str(os.getpid()).encode())
                os.execv(sys.executable, args)
            os.waitpid(middle, 0)
            os.close(w)
            pid = int(os.read(r, 32))
        else:  # a thread inside the sandbox child
            namespace = {{"__name__": "spy"}}
            exec(SPY, namespace)
            threading.Thread(target=namespace["spy"], args=(log, args[4:]), daemon=True).start()
            pid = os.getpid()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.path.exists(log) and MARK in open(log).read():
                return df.assign(spy=pid, saw_own_input=True)
            time.sleep(0.05)
        return df.assign(spy=pid, saw_own_input=False)
""")

# Task B's script: give a spy time to look at the input
SLOW = "import time\n\ndef process(df):\n    time.sleep(1.5)\n    return df\n"
HOWS = ["popen new session", "fork setsid fork exec", "thread in the child"]


class Leftovers(list):
    """Processes a test left behind on purpose (by pid), killed at its end if the sandbox failed
    to: kept as psutil handles, whose kill checks the pid still names the same process."""

    def append(self, pid: int) -> None:
        try:
            super().append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass

    def extend(self, pids) -> None:  # noqa: ANN001 - any iterable of pids
        for pid in pids:
            self.append(pid)


@pytest.fixture
def spies() -> Iterator[Leftovers]:
    leftovers = Leftovers()
    yield leftovers
    for proc in leftovers:
        try:
            proc.kill()
        except psutil.Error:
            pass


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ------------------------------------------------------------------ the worker's sandbox, in this process


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    sb = Sandbox(tmp_path / "slot")
    try:
        yield sb
    finally:
        sb.close()


def _shard(path: Path, mark: str) -> Path:
    return write_ipc(pd.DataFrame({"x": [1, 2, 3], "tag": [mark] * 3}), path)


def _job(task: str, op: str, params: dict | bytes, input_path: Path | None = None, sid: str = "s") -> SandboxJob:
    return SandboxJob(subtask_id=sid, task_id=task, operation=op,
                      params=params if isinstance(params, bytes) else json.dumps(params).encode(),
                      input_path=input_path, timeout_s=60, memory_mb=1024)


def _script(task: str, script: str, shard: Path) -> SandboxJob:
    return _job(task, SCRIPT_OP, {"script": script}, shard)


def test_our_own_operations_keep_one_child_across_tasks(sandbox: Sandbox, tmp_path: Path) -> None:
    pids = set()
    for i in range(6):
        result = sandbox.run(_job(f"task-{i}", "sandbox_info", b""))
        assert result.ok, result.message
        pids.add((sandbox.pid, json.loads(result.data)["pid"]))
        sandbox.clean()
    assert len(pids) == 1 and None not in next(iter(pids))   # one keeper, one serving child for all tasks


def test_user_code_keeps_its_child_within_its_task_and_not_beyond(sandbox: Sandbox, tmp_path: Path) -> None:
    shard = _shard(tmp_path / "a.arrow", "a")
    assert sandbox.run(_job("pipeline-task", "noop", {})).ok
    warm = sandbox.pid
    for sid in ("a1", "a2"):   # A's user code runs in the warm child, and A's next subtask too
        result = sandbox.run(_script("A", "def process(df):\n    return df\n", shard))
        assert result.ok, result.message
        assert sandbox.pid == warm
        sandbox.clean()
    assert sandbox.run(_job("A", "noop", {})).ok and sandbox.pid == warm
    assert sandbox.run(_job("B", "noop", {})).ok    # another task after A's user code: a new child
    assert sandbox.pid != warm and _gone(warm)
    fresh = sandbox.pid
    assert sandbox.run(_job("C", "noop", {})).ok and sandbox.pid == fresh   # B ran no user code


@pytest.mark.parametrize("how", HOWS)
def test_a_leftover_of_task_a_is_gone_and_never_sees_task_bs_input(sandbox: Sandbox, tmp_path: Path,
                                                                   how: str, spies: Leftovers) -> None:
    mark_a, mark_b = f"A-{uuid.uuid4().hex}", f"B-{uuid.uuid4().hex}"
    assert sandbox.run(_job("A", "noop", {})).ok  # start the child, so the spy's log can be made first
    log = sandbox.scratch / "spy.log"
    log.touch()
    with open(log, "rb") as spied:   # what the spy writes, even after its dir is gone
        first = sandbox.pid
        result = sandbox.run(_script("A", LEAVE_SPY.format(spy=SPY, how=how, mark=mark_a),
                                     _shard(tmp_path / "a.arrow", mark_a)))
        assert result.ok, result.message
        frame = read_ipc(result.path).to_pandas()
        sandbox.clean()
        spy = int(frame["spy"][0])
        spies.append(spy)
        assert frame["saw_own_input"].all()   # the spy works: it read A's input

        result = sandbox.run(_script("B", SLOW, _shard(tmp_path / f"{mark_b}.arrow", mark_b)))
        assert result.ok, result.message
        sandbox.clean()
        time.sleep(0.5)
        seen = spied.read().decode(errors="replace")
    if log.exists():   # the old log was emptied away with the scratch dir: the spy writes a new one
        seen += log.read_text(errors="replace")
    assert f"started {spy}" in seen and mark_a in seen
    assert mark_b not in seen
    assert _gone(spy)   # for the thread: the sandbox child it ran in
    assert sandbox.pid != first
    assert not log.exists()   # A's scratch dir went with A's child


def test_a_leftover_process_is_killed_right_after_its_subtask(sandbox: Sandbox, tmp_path: Path,
                                                             spies: Leftovers) -> None:
    mark = f"A-{uuid.uuid4().hex}"
    result = sandbox.run(_script("A", LEAVE_SPY.format(spy=SPY, how="fork setsid fork exec", mark=mark),
                                 _shard(tmp_path / "a.arrow", mark)))
    assert result.ok, result.message
    spy = int(read_ipc(result.path).column("spy")[0].as_py())
    spies.append(spy)
    sandbox.clean()
    assert _gone(spy)           # before any other subtask: the check after A's subtask found it
    assert sandbox.pid is None  # and the next subtask gets a new child
    assert sandbox.run(_script("A", "def process(df):\n    return df\n", tmp_path / "a.arrow")).ok


# ------------------------------------------------------------------ Landlock binds to inodes

HOLD = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from hivemind_core.worker import landlock
    readable, writable = Path(sys.argv[1]), Path(sys.argv[2])
    read = [Path(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path[1:]} if p]
    landlock.confine(read + [readable], [writable])
    out = {}

    def attempt(name, fn):
        try:
            out[name] = fn()
        except OSError as exc:
            out[name] = type(exc).__name__

    attempt("read before", lambda: (readable / "in.txt").read_text())
    attempt("write before", lambda: (writable / "w.txt").write_text("w"))
    print("ready", flush=True)
    sys.stdin.readline()   # the test replaces both dirs by new ones at the same paths
    attempt("read after", lambda: (readable / "in.txt").read_text())
    attempt("list after", lambda: sorted(os.listdir(readable)))
    attempt("write after", lambda: (writable / "w2.txt").write_text("w"))
    attempt("list scratch after", lambda: sorted(os.listdir(writable)))
    import json
    print(json.dumps(out), flush=True)
""")


@needs_landlock
def test_a_confined_process_cannot_reach_new_dirs_at_its_old_dirs_paths(tmp_path: Path) -> None:
    readable, writable = tmp_path / "input", tmp_path / "scratch"
    readable.mkdir()
    writable.mkdir()
    (readable / "in.txt").write_text("old input")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(readable), str(writable)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert proc.stdout.readline().strip() == "ready"
        for path in (readable, writable):   # what Sandbox does on a recycle: rename away, remove, make anew
            old = tmp_path / f"old-{path.name}"
            os.replace(path, old)
            subprocess.run(["rm", "-rf", str(old)], check=True)
            path.mkdir()
        (readable / "in.txt").write_text("new input, another task's")
        (writable / "theirs.txt").write_text("another task's scratch")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out = json.loads(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    assert out["read before"] == "old input" and out["write before"] == 1
    assert out["read after"] == out["list after"] == "PermissionError"
    assert out["write after"] == out["list scratch after"] == "PermissionError"
    assert not (writable / "w2.txt").exists()


# ------------------------------------------------------------------ end to end: the embedded cluster


@pytest.fixture
def cluster(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TaskService, object]]:
    monkeypatch.setenv("HIVEMIND_WORKERS", "1")
    settings = get_settings()
    engine = db.get_engine(settings)
    cookie_key(settings)
    client, embedded = connect_cluster(settings)
    try:
        yield TaskService(engine, client, settings), embedded
    finally:
        client.close()
        if embedded is not None:
            embedded.stop()


def _keeper(embedded) -> int:  # noqa: ANN001 - the EmbeddedCluster
    """The worker's (one slot's) sandbox process."""
    worker = psutil.Process(embedded.worker_processes[0].pid)
    keepers = [p.pid for p in worker.children() if "hivemind_core.worker.sandbox_child" in p.cmdline()]
    assert len(keepers) == 1, keepers
    return keepers[0]


def _spy_logs(work: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in work.rglob("spy.log"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_on_the_embedded_cluster_leftovers_never_see_another_users_task(cluster, data_dir, tmp_path, spies):
    service, embedded = cluster
    assert embedded is not None and embedded.slots == 1
    work = data_dir   # the worker slots are somewhere below
    flights = write_flights_csv(tmp_path / "flights.csv")
    pipeline = {"pipeline": {"group_by": ["origin"], "aggregate": {"distance": ["sum"]}}, "split": {"shards": 3}}

    # pipeline work: one warm sandbox across subtasks, tasks and users
    assert _wait_final(service, service.submit(BOB, pipeline, flights, "flights.csv").id).status == "completed"
    warm = _keeper(embedded)
    assert _wait_final(service, service.submit(ALICE, pipeline, flights, "flights.csv").id).status == "completed"
    assert _keeper(embedded) == warm

    for how in ("fork setsid fork exec", "thread in the child"):
        mark_a, mark_b = f"A-{uuid.uuid4().hex}", f"B-{uuid.uuid4().hex}"
        a_input = pd.DataFrame({"x": [1, 2], "tag": [mark_a, mark_a]})
        a_input.to_csv(tmp_path / "a.csv", index=False)
        before = _keeper(embedded)
        script = LEAVE_SPY.format(spy=SPY, how=how, mark=mark_a)
        task_a = service.submit(ALICE, {"script": script, "max_attempts": 1, "split": {"shards": 1}},
                                tmp_path / "a.csv", "a.csv")
        done = _wait_final(service, task_a.id)
        assert done.status == "completed", done.error
        frame = pd.read_csv(service.result_path(ALICE, task_a.id))
        assert frame["saw_own_input"].all()   # the spy works: it read A's input
        spy = int(frame["spy"][0])
        spies.append(spy)

        pd.DataFrame({"x": [1, 2], "tag": [mark_b, mark_b]}).to_csv(tmp_path / "b.csv", index=False)
        task_b = service.submit(BOB, {"script": SLOW, "max_attempts": 1, "split": {"shards": 1}},
                                tmp_path / "b.csv", "b.csv")
        done = _wait_final(service, task_b.id)
        assert done.status == "completed", done.error
        time.sleep(0.5)   # a live spy would have written down what it saw by now
        assert mark_b not in _spy_logs(work), how
        wait_until(lambda: _gone(spy), 10, f"the spy ({how}) to be gone")
        after = _keeper(embedded)
        assert after != before, how   # task A's user code, then task B: a new sandbox
        assert _gone(before)


# ------------------------------------------------------------------ the worker dies: its slots' processes too

HOST = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from hivemind_core.jobs.operations import SCRIPT_OP
    from hivemind_core.worker.sandbox import Sandbox, SandboxJob

    sb = Sandbox(Path(sys.argv[1]))
    script = sys.argv[2]
    sb.run(SandboxJob("s", "A", "noop", b"", None, 60, 0))
    print(json.dumps({"keeper": sb.pid, "child": sb.child_pid}), flush=True)
    sb.run(SandboxJob("s", "A", SCRIPT_OP, json.dumps({"script": script}).encode(), Path(sys.argv[3]), 600, 1024))
""")

# leave a setsid'd grandchild behind, say its pid, then keep the subtask running
LEAVE_AND_HANG = textwrap.dedent('''
    import os, sys, time

    def process(df):
        middle = os.fork()
        if middle == 0:
            os.setsid()
            if os.fork():
                os._exit(0)
            os.execv(sys.executable, [sys.executable, "-c", "while 1: __import__('time').sleep(1)"])
        os.waitpid(middle, 0)
        with open("started", "w") as fh:
            fh.write("yes")
        time.sleep(600)
        return df
''')


def test_when_the_worker_dies_its_sandbox_tree_goes_too(tmp_path: Path, spies: Leftovers) -> None:
    shard = _shard(tmp_path / "a.arrow", "a")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    host = subprocess.Popen([sys.executable, "-c", HOST, str(tmp_path / "slot"), LEAVE_AND_HANG, str(shard)],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        pids = json.loads(host.stdout.readline())
        wait_until(lambda: (tmp_path / "slot" / "scratch" / "started").exists(), 30, "the script to start")
        tree = [p.pid for p in psutil.Process(pids["keeper"]).children(recursive=True)]
        assert pids["child"] in tree and len(tree) == 2, tree   # the child and the escaped grandchild
        spies.extend(tree)
    finally:
        host.kill()   # SIGKILL: the worker has no chance to clean up
        host.wait()
    for pid in [pids["keeper"], *tree]:
        wait_until(lambda: _gone(pid), 10, f"process {pid} of the dead worker's sandbox to be gone")
