"""The jobs CLI as a fresh user meets it (fixes from the first tester report):
``--output`` checked before anything is queued and written atomically, ``result``
of a failed task, Ctrl-C during ``--wait``, ``--pool`` without a token,
``list --limit/--offset``, ``delete``, and ``cancel`` / ``nodes`` that never
start a cluster — a cancellation made while none runs reaches the pool before
its workers start, so the cancelled shards never run.

Real processes throughout: the CLI in subprocesses, a separately started node
pool with two workers (``--pool``), and the embedded cluster of a data dir.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlmodel import select

from hivemind_core import db
from hivemind_core.config import get_settings
from hivemind_core.principal import LOCAL_ADMIN
from hivemind_core.sqlite import read_session, write_session
from hivemind_core.tasks import states
from hivemind_core.tasks.models import Subtask, Task, utcnow
from tests.engine_support import wait_until
from tests.pool_procs import cli_env, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
FILTER = {"pipeline": {"filter": [{"column": "dest", "op": "==", "value": "SFO"}],
                       "columns": ["month", "day", "carrier", "flight", "dest", "time_hour"]},
          "split": {"shards": 3}}
SLOW = {"script": "import time\n\ndef process(df):\n    time.sleep(300)\n    return df\n", "split": {"shards": 3}}
FAILING = {"script": "def process(df):\n    return df['distance'] // 0 if len(df) < 0 else 1 / 0\n",
           "split": {"shards": 2}, "max_attempts": 1}


def spec_file(tmp: Path, spec: dict, name: str = "spec.json") -> Path:
    path = tmp / name
    path.write_text(json.dumps(spec))
    return path


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def task_count() -> int:
    with read_session(db.get_engine()) as s:
        return len(s.exec(select(Task.id)).all())


def submitted_id(stdout: str) -> str:
    return re.search(r"submitted task (\w+)", stdout).group(1)


# ----------------------------------------------------------------- --output

def bad_outputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    a_file = tmp / "a-file.txt"
    a_file.write_text("x")
    (tmp / "a-folder").mkdir(exist_ok=True)
    return {
        "missing folder": (tmp / "no" / "such" / "out.csv", "does not exist"),
        "a folder": (tmp / "a-folder", "is a directory"),
        "under a file": (a_file / "out.csv", "is a file, not a directory"),
        "not writable": (Path("/proc/hivemind-out.csv"), "cannot create files in /proc"),
    }


def test_output_is_checked_before_anything_is_queued_and_written_atomically(cli_pool, subprocess_env, tmp_path,
                                                                            flights_csv):
    env = cli_env(subprocess_env, cli_pool)
    spec = spec_file(tmp_path, FILTER)
    with cli_pool.client() as client:
        before = {t.task_id for t in client.list_tasks()}
    for name, (target, words) in bad_outputs(tmp_path).items():
        proc = run_cli(["submit", str(spec), str(flights_csv), "--pool", cli_pool.address, "--wait", "--output",
                    str(target)], env, tmp_path)
        line = one_error_line(proc)
        assert "--output" in line and words in line, (name, line)
        assert proc.stdout == "", name
    with cli_pool.client() as client:
        assert {t.task_id for t in client.list_tasks()} == before
    assert task_count() == 0

    out_dir = tmp_path / "results"
    out_dir.mkdir()
    done = run_cli(["submit", str(spec), str(flights_csv), "--pool", cli_pool.address, "--wait"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    task_id = submitted_id(done.stdout)
    for name, (target, words) in bad_outputs(tmp_path).items():
        line = one_error_line(run_cli(["result", task_id, "--output", str(target), "--pool", cli_pool.address], env, tmp_path))
        assert "--output" in line and words in line, (name, line)
    (out_dir / "sfo.csv").write_text("old content that must be replaced whole\n")
    proc = run_cli(["result", task_id, "--output", str(out_dir / "sfo.csv"), "--pool", cli_pool.address], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(flights_csv)
    expected = frame[frame.dest == "SFO"][["month", "day", "carrier", "flight", "dest", "time_hour"]]
    assert (out_dir / "sfo.csv").read_text() == expected.to_csv(index=False)   # byte-identical to pandas
    assert sorted(p.name for p in out_dir.iterdir()) == ["sfo.csv"]            # no temp file left behind


# ----------------------------------------------------------------- failed task, token, list, delete

def test_failed_task_result_says_it_failed_with_the_users_error(cli_pool, subprocess_env, tmp_path, flights_csv):
    env = cli_env(subprocess_env, cli_pool)
    proc = run_cli(["submit", str(spec_file(tmp_path, FAILING)), str(flights_csv), "--pool", cli_pool.address, "--wait"],
               env, tmp_path)
    assert proc.returncode == 1
    task_id = submitted_id(proc.stdout)
    assert 'File "<script>", line 2, in process' in proc.stderr and "ZeroDivisionError: division by zero" in proc.stderr
    assert "hivemind_core" not in proc.stderr and "sandbox_child" not in proc.stderr, proc.stderr
    result = run_cli(["result", task_id, "--output", str(tmp_path / "r.csv"), "--pool", cli_pool.address], env, tmp_path)
    assert result.returncode == 1
    assert f"error: task {task_id} failed, so it has no result: shard " in result.stderr
    assert "ZeroDivisionError: division by zero" in result.stderr and "no result yet" not in result.stderr
    assert not (tmp_path / "r.csv").exists()


def test_pool_without_token_names_the_flag_and_the_variable(subprocess_env, tmp_path, flights_csv):
    spec = spec_file(tmp_path, FILTER)
    for args in (["submit", str(spec), str(flights_csv)], ["status", "abc"], ["cancel", "abc"], ["nodes"]):
        line = one_error_line(run_cli([*args, "--pool", "127.0.0.1:9"], subprocess_env, tmp_path, 60))
        assert "--pool 127.0.0.1:9" in line and "HIVEMIND_CLUSTER_TOKEN" in line, line
        assert "HIVEMIND_NODE_POOL" not in line


def test_list_limit_and_offset(subprocess_env, tmp_path):
    now = utcnow()
    with write_session(db.get_engine()) as s:
        s.add_all([Task(id=f"task{i}", owner="admin", name=f"n{i}", created_at=now.replace(microsecond=i))
                   for i in range(5)])
        s.commit()
    proc = run_cli(["list", "--limit", "2", "--offset", "1"], subprocess_env, tmp_path, 60)
    assert proc.returncode == 0, proc.stderr
    assert re.findall(r"^(task\d)", proc.stdout, re.MULTILINE) == ["task3", "task2"]   # newest first, one skipped
    assert "(2-3 of 5 tasks)" in proc.stdout
    for args, words in ((["--limit", "0"], "must be at least 1"), (["--limit", "-1"], "must be at least 1"),
                        (["--offset", "-1"], "must be at least 0"), (["--limit", "x"], "not a whole number")):
        bad = run_cli(["list", *args], subprocess_env, tmp_path, 60)
        assert bad.returncode == 2 and words in bad.stderr, (args, bad.stderr)


def test_list_and_other_task_commands_refuse_a_viewer_like_the_api(subprocess_env, tmp_path):
    from hivemind_core import auth
    from hivemind_core.principal import Principal

    auth.create_first_admin("root", "long enough 1")
    auth.create_user(Principal("root", "admin"), "victor", "long enough 1", "viewer")
    with write_session(db.get_engine()) as s:
        s.add(Task(id="vtask", owner="victor", name="n"))
        s.commit()
    for command in (["list"], ["status", "vtask"], ["cancel", "vtask"]):
        proc = run_cli([*command, "--user", "victor"], subprocess_env, tmp_path, 60)
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        assert proc.stderr.strip() == ("error: Viewers cannot use tasks; ask an administrator for the analyst "
                                       "role."), (command, proc.stderr)
        assert "tasks)" not in proc.stdout


def test_delete_removes_task_result_and_blobs(cli_pool, subprocess_env, tmp_path, flights_csv):
    from hivemind_core.client import NodePoolError

    env = cli_env(subprocess_env, cli_pool)
    # blobs are content-addressed and shared between tasks: this job's shards are its own
    own = {"pipeline": {"filter": [{"column": "origin", "op": "==", "value": "EWR"}],
                        "columns": ["origin", "air_time", "carrier"]}, "split": {"shards": 2}}
    proc = run_cli(["submit", str(spec_file(tmp_path, own)), str(flights_csv), "--pool", cli_pool.address, "--wait"],
               env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    task_id = submitted_id(proc.stdout)
    with read_session(db.get_engine()) as s:
        result_file = Path(s.get(Task, task_id).result_path)
        blobs = {sub.input_blob for sub in s.exec(select(Subtask).where(Subtask.task_id == task_id))}
        blobs |= {sub.result_blob for sub in s.exec(select(Subtask).where(Subtask.task_id == task_id))}
    assert result_file.is_file() and len(blobs) >= 2
    deleted = run_cli(["delete", task_id, "--pool", cli_pool.address], env, tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    assert f"task {task_id} deleted" in deleted.stdout
    assert not result_file.exists() and task_count() == 0
    with cli_pool.client() as client:
        assert client.status(task_id) == []
        for sha in blobs:
            with pytest.raises(NodePoolError):
                client.get_blob(sha)
    gone = one_error_line(run_cli(["status", task_id, "--pool", cli_pool.address], env, tmp_path))
    assert f"no task {task_id!r}" in gone


# ----------------------------------------------------------------- Ctrl-C during --wait

def test_ctrl_c_during_wait_says_the_task_runs_on_and_how_to_cancel_it(cli_pool, subprocess_env, tmp_path, flights_csv):
    env = cli_env(subprocess_env, cli_pool)
    proc = subprocess.Popen([sys.executable, "-m", "hivemind_core", "submit", str(spec_file(tmp_path, SLOW)),
                             str(flights_csv), "--pool", cli_pool.address, "--wait"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        task_id = submitted_id(proc.stdout.readline())
        with cli_pool.client() as client:
            wait_until(lambda: any(s.state == "running" for s in client.status(task_id)), 60, "a shard to run")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert f"task {task_id}, which was NOT cancelled" in err and "keeps running" in err
    assert f"python -m hivemind_core cancel {task_id} --pool {cli_pool.address}" in err
    with cli_pool.client() as client:
        assert not any(s.state == "cancelled" for s in client.status(task_id))   # it does run on
    cancel = run_cli(["cancel", task_id, "--pool", cli_pool.address], env, tmp_path)
    assert cancel.returncode == 0 and f"task {task_id} cancelled" in cancel.stdout
    with cli_pool.client() as client:
        wait_until(lambda: all(s.state == "cancelled" for s in client.status(task_id)), 30, "the cancellation")


# ----------------------------------------------------------------- cancel / nodes with no cluster running

def test_cancel_with_no_cluster_running_is_durable_and_the_shards_never_run(subprocess_env, tmp_path, flights_csv):
    """cancel and nodes start nothing; the next cluster start pushes the cancellation before its workers start."""
    from hivemind_core.tasks.connect import connect_master_cluster
    from hivemind_core.tasks.service import TaskService

    settings = get_settings()
    engine = db.get_engine(settings)
    logs = settings.data_dir / "nodepool" / "logs"
    # queue a job on a pool with no workers, then stop it: the job waits in the pool's own store
    client, cluster = connect_master_cluster(settings, engine, workers=0)
    try:
        task = TaskService(engine, client, settings).submit(LOCAL_ADMIN, SLOW, flights_csv, "flights.csv")
    finally:
        client.close()
        cluster.stop()
    assert not list(logs.glob("worker-*.log"))

    env = subprocess_env | {"HIVEMIND_WORKERS": "2"}
    proc = run_cli(["cancel", task.id], env, tmp_path, 60)
    assert proc.returncode == 0, proc.stderr
    assert f"task {task.id} cancelled" in proc.stdout and "told when the cluster next starts" in proc.stderr
    nodes = one_error_line(run_cli(["nodes"], env, tmp_path, 60))
    assert "no cluster is running" in nodes and "streamlit run app.py" in nodes
    assert not list(logs.glob("worker-*.log")), "cancel/nodes must not start a cluster"
    with read_session(engine) as s:
        recorded = s.get(Task, task.id)
        subs = s.exec(select(Subtask).where(Subtask.task_id == task.id)).all()
    assert recorded.status == states.CANCELLED and recorded.cancel_pending
    assert len(subs) == 3 and {sub.status for sub in subs} == {states.CANCELLED}

    # the cluster starts the way the app starts it: two workers this time
    client, cluster = connect_master_cluster(settings, engine, workers=2)
    try:
        assert cluster is not None and len(list(logs.glob("worker-*.log"))) == 2
        service = TaskService(engine, client, settings)
        quick = service.submit(LOCAL_ADMIN, FILTER, flights_csv, "flights.csv")
        done = wait_until(lambda: (t := service.sync_task(quick.id)).status in states.FINAL and t, 120, "a quick job")
        assert done.status == states.COMPLETED, done.error    # the workers were free and took work
        pool_states = client.status(task.id)
        assert len(pool_states) == 3
        assert all(st.state == "cancelled" and st.attempts == 0 and st.started_at is None for st in pool_states)
        with read_session(engine) as s:
            assert not s.get(Task, task.id).cancel_pending
    finally:
        client.close()
        cluster.stop()
