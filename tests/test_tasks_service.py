"""TaskService on a real SQLite file and (where the pool matters) a real node
pool with real worker processes: status derivation, permissions, listing 10,000
tasks through indexes, restart of the master mid-job, retry, delete with blobs."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from hivemind_core import db
from hivemind_core.config import get_settings
from hivemind_core.errors import NotFoundError, PermissionDeniedError, ValidationError
from hivemind_core.principal import Principal
from hivemind_core.sqlite import write_session
from hivemind_core.tasks import states
from hivemind_core.tasks.models import Task, utcnow
from hivemind_core.tasks.service import TaskService, TaskSyncer
from tests.flights import write_flights_csv
from tests.pool_procs import PoolProcs
from tests.test_jobs_exact import assert_same, expected_groupby

ALICE = Principal("alice", "analyst")
BOB = Principal("bob", "analyst")
VIEWER = Principal("vera", "viewer")
ADMIN = Principal("root", "admin")
SPEC = {"pipeline": {"group_by": ["origin"], "aggregate": {"arr_delay": ["mean", "std", "count"]}},
        "split": {"shards": 4}}


@pytest.mark.parametrize("subtask_states,status", [
    ([], "pending"),
    (["pending", "pending"], "pending"),
    (["assigned", "pending"], "assigned"),
    (["running", "pending"], "running"),
    (["completed", "pending"], "running"),
    (["completed", "completed"], "completed"),
    (["completed", "failed", "running"], "failed"),
    (["cancelled", "completed"], "cancelled"),
    (["cancelled", "running"], "running"),
])
def test_overall_status_from_subtasks(subtask_states, status):
    assert states.overall_status(subtask_states) == status


def test_progress_is_completed_share():
    assert states.progress(["completed", "running", "completed", "pending"]) == 50.0
    assert states.progress([]) == 0.0


def _offline_service() -> TaskService:
    settings = get_settings()
    return TaskService(db.get_engine(settings), None, settings)


def _insert_tasks(n: int, owners: tuple[str, ...]) -> None:
    engine = db.get_engine()
    now = utcnow()
    rows = [Task(id=uuid.uuid4().hex[:16], owner=owners[i % len(owners)], name=f"t{i}",
                 status=states.STATUSES[i % len(states.STATUSES)], created_at=now - timedelta(seconds=i),
                 finished_at=now - timedelta(minutes=i % 300) if i % 6 >= 3 else None)
            for i in range(n)]
    with write_session(engine) as s:
        s.add_all(rows)
        s.commit()


def test_list_10000_tasks_pages_counts_and_permissions():
    _insert_tasks(10_000, ("alice", "bob"))
    service = _offline_service()
    page, total = service.list(ALICE, limit=50)
    assert total == 5000 and len(page) == 50 and {t.owner for t in page} == {"alice"}
    assert [t.created_at for t in page] == sorted((t.created_at for t in page), reverse=True)
    page2, _ = service.list(ALICE, offset=50, limit=50)
    assert not {t.id for t in page} & {t.id for t in page2}
    _, total_all = service.list(ADMIN)
    assert total_all == 10_000
    running, n_running = service.list(ALICE, status="running", limit=10)
    assert n_running == sum(1 for i in range(0, 10_000, 2) if states.STATUSES[i % 6] == "running")
    assert all(t.status == "running" and t.owner == "alice" for t in running)
    counts = service.counts_by_status(BOB)
    assert sum(counts.values()) == 5000 and set(counts) == set(states.STATUSES)
    hourly = service.finished_per_hour(ADMIN, hours=24)
    assert len(hourly) == 24 and sum(n for _, n in hourly) > 0
    with pytest.raises(ValidationError):
        service.list(ALICE, status="bogus")


def test_system_wide_numbers_count_every_owner():
    """The dashboard's numbers for every role: all owners' tasks, whoever asks (no principal needed)."""
    _insert_tasks(600, ("alice", "bob"))
    service = _offline_service()
    assert service.system_counts_by_status() == {s: 100 for s in states.STATUSES} == service.counts_by_status(ADMIN)
    assert sum(service.counts_by_status(ALICE).values()) == 300
    finished = [n for _, n in service.system_finished_per_hour(24)]   # finished 0-299 minutes ago: all in the window
    assert len(finished) == 24 and sum(finished) == 300 == sum(1 for i in range(600) if i % 6 >= 3)
    assert sum(n for _, n in service.finished_per_hour(ALICE, 24)) == 100   # alice: the even rows


def test_list_queries_use_indexes():
    db.get_engine()
    with db.get_engine().connect() as conn:
        for where in ("owner = 'alice'", "status = 'running'", "owner = 'alice' AND status = 'running'"):
            plan = " ".join(str(r[-1]) for r in conn.execute(text(
                f"EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE {where} ORDER BY created_at DESC LIMIT 50")))
            assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, (where, plan)


def test_users_see_only_their_own_tasks():
    _insert_tasks(4, ("alice", "bob"))
    service = _offline_service()
    bobs, _ = service.list(BOB)
    with pytest.raises(NotFoundError):
        service.get(ALICE, bobs[0].id)
    assert service.get(ADMIN, bobs[0].id).owner == "bob"
    with pytest.raises(NotFoundError):
        service.result_path(BOB, bobs[0].id)


def test_viewer_cannot_submit(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n")
    with pytest.raises(PermissionDeniedError):
        _offline_service().submit(VIEWER, SPEC, data, "d.csv")


# ------------------------------------------------------------------ with a real pool


@pytest.fixture(scope="module")
def flights_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_flights_csv(tmp_path_factory.mktemp("flights") / "flights.csv")


@pytest.fixture
def pool(tmp_path: Path):
    procs = PoolProcs(tmp_path / "pool").start(workers=2)
    try:
        yield procs
    finally:
        procs.stop()


def _wait_final(service: TaskService, task_id: str, timeout: float = 120) -> Task:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = service.sync_task(task_id)
        if task.status in states.FINAL:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} not finished after {timeout} s")


def test_master_restart_mid_job_resumes_and_result_is_right(pool, flights_csv):
    settings = get_settings()
    client = pool.client()
    first = TaskService(db.get_engine(settings), client, settings)
    slow_first = {"script": ("import time\n\ndef process(df):\n    time.sleep(1)\n"
                             "    return df.groupby('origin', as_index=False)['distance'].sum()\n"),
                  "split": {"shards": 4}}
    task = first.submit(ALICE, slow_first, flights_csv, "flights.csv")
    first.sync_task(task.id)
    client.close()
    db.reset_engines()   # the master "restarts": new engine, new client, new service, same data dir

    with pool.client() as client2:
        second = TaskService(db.get_engine(get_settings()), client2, get_settings())
        syncer = TaskSyncer(second, interval=0.2).start()
        try:
            deadline = time.monotonic() + 120
            while second.get(ALICE, task.id).status not in states.FINAL and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            syncer.stop()
        done = second.get(ALICE, task.id)
        assert done.status == "completed" and done.progress == 100.0, done.error
        frame = pd.read_csv(flights_csv)
        # process(df) runs once per shard: the expected result is pandas on each shard's rows, in order
        parts = [frame.iloc[a:b].groupby("origin", as_index=False)["distance"].sum()
                 for a, b in _row_ranges(second, task.id)]
        assert second.preview_result(ALICE, task.id, n=1000).equals(pd.concat(parts, ignore_index=True))


def _row_ranges(service: TaskService, task_id: str) -> list[tuple[int, int]]:
    """(start, end) input rows of each shard, in shard order (a rows split keeps input order)."""
    out, start = [], 0
    for sub in service.subtasks(ALICE, task_id):
        out.append((start, start + sub.rows))
        start += sub.rows
    return out


def _fails_while_marker(tmp_path: Path, result: str) -> tuple[Path, dict]:
    """A marker file and a 4-shard script job whose second-half-of-the-year shards fail while the
    marker exists (so a retry after removing it succeeds); ``result`` is what process returns."""
    marker = tmp_path / "fail-while-this-exists"
    marker.write_text("x")
    script = ("import os\n\ndef process(df):\n"
              f"    if os.path.exists({str(marker)!r}) and df['month'].iloc[0] >= 7:\n"
              "        raise ValueError('second half of the year is not ready')\n"
              f"    return {result}\n")
    return marker, {"script": script, "split": {"shards": 4}, "max_attempts": 1}


def test_failed_shard_then_retry_and_delete_removes_blobs(pool, flights_csv, tmp_path):
    settings = get_settings()
    marker, spec = _fails_while_marker(tmp_path, "df[df['arr_delay'] > 300][['month', 'carrier', 'arr_delay']]")
    with pool.client() as client:
        service = TaskService(db.get_engine(settings), client, settings)
        task = service.submit(ALICE, spec, flights_csv, "flights.csv")
        failed = _wait_final(service, task.id)
        assert failed.status == "failed"
        assert "ValueError: second half of the year is not ready" in failed.error
        assert 'File "<script>", line 5, in process' in failed.error
        with pytest.raises(NotFoundError):
            service.result_path(ALICE, task.id)

        marker.unlink()
        service.retry(ALICE, task.id)
        done = _wait_final(service, task.id)
        assert done.status == "completed", done.error
        frame = pd.read_csv(flights_csv)
        expected = frame[frame["arr_delay"] > 300][["month", "carrier", "arr_delay"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(pd.read_csv(service.result_path(ALICE, task.id)), expected)

        blobs = {s.input_blob for s in service.subtasks(ALICE, task.id)}
        result_file = service.result_path(ALICE, task.id)
        with pytest.raises(NotFoundError):
            service.delete(BOB, task.id)
        service.delete(ALICE, task.id)
        assert not result_file.exists()
        with pytest.raises(NotFoundError):
            service.get(ADMIN, task.id)
        assert client.status(task.id) == [] and client.status(f"{task.id}.r1") == []
        from hivemind_core.client import NodePoolError

        for sha in blobs:
            with pytest.raises(NodePoolError):
                client.get_blob(sha)


def _utc(when):  # noqa: ANN001, ANN202 - SQLite gives datetimes back naive (UTC) or aware
    from datetime import UTC

    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def test_retry_run_time_is_the_latest_run(pool, flights_csv, tmp_path):
    """After a retry started_at is when a rerun shard started (not the first run's start), and
    finished_at is cleared until the rerun ends: the run time shown excludes the wait in between."""
    settings = get_settings()
    marker, spec = _fails_while_marker(tmp_path, "df[['month']].head(1)")
    with pool.client() as client:
        service = TaskService(db.get_engine(settings), client, settings)
        task = service.submit(ALICE, spec, flights_csv, "flights.csv")
        failed = _wait_final(service, task.id)
        assert failed.status == "failed" and failed.started_at is not None and failed.finished_at is not None
        first_starts = [_utc(s.started_at) for s in service.subtasks(ALICE, task.id) if s.started_at]
        time.sleep(1.5)   # the wait before the retry must not count as run time
        marker.unlink()
        retried_at = utcnow()
        again = service.retry(ALICE, task.id)
        assert again.started_at is None and again.finished_at is None
        done = _wait_final(service, task.id)
        assert done.status == "completed", done.error
        assert max(first_starts) < retried_at <= _utc(done.started_at) <= _utc(done.finished_at)
        rerun = [s for s in service.subtasks(ALICE, task.id) if s.pool_task == f"{task.id}.r1"]
        # the first rerun start seen (a shard whose lease expired under load starts again later)
        assert rerun and _utc(done.started_at) <= min(_utc(s.started_at) for s in rerun)


def test_submit_equals_pandas_and_json_spec_roundtrip(pool, flights_csv):
    settings = get_settings()
    with pool.client() as client:
        service = TaskService(db.get_engine(settings), client, settings)
        task = service.submit(BOB, json.dumps(SPEC), flights_csv, "flights.csv")
        assert task.owner == "bob" and task.subtasks_total == len(service.subtasks(BOB, task.id)) >= 4
        done = _wait_final(service, task.id)
        assert done.status == "completed" and done.started_at is not None and done.finished_at is not None
        frame = pd.read_csv(flights_csv)
        assert_same(pd.read_csv(service.result_path(BOB, task.id)),
                    expected_groupby(frame, ["origin"], {"arr_delay": ["mean", "std", "count"]}))
        with pytest.raises(ValidationError):
            service.cancel(BOB, task.id)   # completed: nothing to cancel


def test_script_over_its_time_limit_fails_with_a_plain_message(pool, flights_csv):
    settings = get_settings()
    script = "import time\n\ndef process(df):\n    time.sleep(120)\n    return df\n"
    with pool.client() as client:
        service = TaskService(db.get_engine(settings), client, settings)
        task = service.submit(ALICE, {"script": script, "timeout_s": 2, "max_attempts": 1,
                                      "split": {"strategy": "unsplit"}}, flights_csv, "flights.csv")
        failed = _wait_final(service, task.id, timeout=60)
        assert failed.status == "failed"
        assert "time limit of 2 s exceeded" in failed.error and "Traceback" not in failed.error


@pytest.mark.parametrize("status,error,words", [
    ("failed", "shard 2 failed after 1 attempt(s): ZeroDivisionError: division by zero",
     "failed, so it has no result: shard 2 failed after 1 attempt(s): ZeroDivisionError: division by zero"),
    ("cancelled", "cancelled by alice", "was cancelled, so it has no result"),
    ("running", "", "has no result yet (status: running, 50% done)"),
])
def test_result_of_an_unfinished_task_says_why_there_is_none(status, error, words):
    with write_session(db.get_engine()) as s:
        s.add(Task(id="t" + status, owner="alice", status=status, error=error, progress=50.0))
        s.commit()
    with pytest.raises(NotFoundError) as err:
        _offline_service().result_path(ALICE, "t" + status)
    assert words in str(err.value)


def test_abandoned_staged_uploads_go_after_a_day_also_while_the_app_runs(tmp_path):
    """A staged upload nobody submitted (browser closed mid-form) is removed once it is a day
    old: at app start and whenever another upload is staged. A younger one is kept."""
    import io
    import os

    from hivemind_core.tasks.staging import STALE_AFTER_S, remove_stale, stage_upload, staging_dir

    settings = get_settings()
    old = stage_upload(io.BytesIO(b"a,b\n1,2\n"), "old.csv", settings)
    young = stage_upload(io.BytesIO(b"a,b\n1,2\n"), "young.csv", settings)
    day_ago = time.time() - STALE_AFTER_S - 60
    os.utime(old, (day_ago, day_ago))
    new = stage_upload(io.BytesIO(b"x\n1\n"), "new.csv", settings)
    assert not old.exists() and young.is_file() and new.read_bytes() == b"x\n1\n"
    assert new.parent == staging_dir(settings) and new.name.endswith("-new.csv")
    assert remove_stale(settings) == 0 and young.is_file()
