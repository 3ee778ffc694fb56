"""How a task ends, on a real node pool with real worker processes and the master's real
syncer: a failing shard stops the rest of its task at once (fail fast) and every subtask of a
failed task ends in a final state; a long combine of one task's results does not hold up the
status of the others."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from hivemind_core import db
from hivemind_core.config import get_settings
from hivemind_core.principal import Principal
from hivemind_core.sqlite import write_session
from hivemind_core.tasks import states
from hivemind_core.tasks.models import Subtask, Task, utcnow
from hivemind_core.tasks.service import TaskService, TaskSyncer
from tests.engine_support import wait_until
from tests.pool_procs import PoolProcs

pytestmark = pytest.mark.timeout(400)
ALICE = Principal("alice", "analyst")


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[PoolProcs]:
    procs = PoolProcs(tmp_path / "pool").start(workers=2)
    try:
        yield procs
    finally:
        procs.stop()


@pytest.fixture
def service(pool: PoolProcs) -> Iterator[TaskService]:
    settings = get_settings()
    with pool.client() as client:
        yield TaskService(db.get_engine(settings), client, settings)


@pytest.fixture
def syncer(service: TaskService) -> Iterator[TaskSyncer]:
    """The master's background syncer, as the app runs it."""
    running = TaskSyncer(service, interval=0.2).start()
    try:
        yield running
    finally:
        running.stop()


def _status(service: TaskService, task_id: str) -> str:
    return service.get(ALICE, task_id).status


def test_a_failing_shard_stops_its_task_and_every_subtask_ends(pool, service, syncer, flights_csv):
    """Shard 0 raises at once; the other shards would sleep for 5 minutes. The user's error is not
    retried, the task fails within seconds, the shards still running are stopped (the workers are
    free again), and no subtask stays pending/assigned/running in the master's database."""
    script = ("import time\n\ndef process(df):\n"
              "    if df['month'].iloc[0] == 1:\n"          # the first shard: January
              "        raise ValueError('no January please')\n"
              "    time.sleep(300)\n"
              "    return df\n")
    started = time.monotonic()
    task = service.submit(ALICE, {"script": script, "split": {"shards": 4}, "timeout_s": 600, "max_attempts": 3},
                          flights_csv, "flights.csv")
    wait_until(lambda: _status(service, task.id) in states.FINAL, 120, "the task to end")
    failed = service.get(ALICE, task.id)
    assert failed.status == "failed" and "ValueError: no January please" in failed.error
    assert failed.error.startswith("shard 0 failed after 1 attempt(s)")      # a user error is not retried
    subs = {sub.shard: sub for sub in service.subtasks(ALICE, task.id)}
    assert subs[0].status == "failed" and subs[0].attempts == 1
    assert {sub.status for sub in subs.values()} <= set(states.FINAL)
    for shard in (1, 2, 3):
        assert subs[shard].status == "cancelled", subs[shard]
        assert subs[shard].error == "cancelled: shard 0 failed, so the rest of the task was stopped"
        assert subs[shard].finished_at is not None
    with pool.client() as c:
        pool_states = {s.subtask_id: s.state for s in c.status(task.id)}
        assert sorted(pool_states.values()) == ["cancelled", "cancelled", "cancelled", "failed"]
        # the shards that were running are killed: both workers report nothing running
        wait_until(lambda: all(n.running == 0 for n in c.nodes()), 30, "the workers to be free again")
    assert time.monotonic() - started < 200    # far from the 300 s the sleeping shards would take


def test_leftover_subtasks_of_ended_tasks_are_closed_at_syncer_start():
    """Rows left unfinished by a master that did not close them when the task failed (or was
    cancelled) are closed when the syncer starts: failed -> cancelled naming the failed shard."""
    settings = get_settings()
    ended = utcnow()
    with write_session(db.get_engine(settings)) as s:
        s.add(Task(id="tfailed", owner="alice", status="failed", finished_at=ended, error="shard 1 failed"))
        s.add(Task(id="tcancel", owner="alice", status="cancelled", finished_at=ended))
        s.add(Task(id="trun", owner="alice", status="running"))
        s.flush()
        for task_id, shard_states in (("tfailed", ["completed", "failed", "running", "assigned", "pending"]),
                                      ("tcancel", ["cancelled", "running"]), ("trun", ["running", "pending"])):
            s.add_all([Subtask(task_id=task_id, pool_id=f"{task_id}.{i}", pool_task=task_id, shard=i, status=st)
                       for i, st in enumerate(shard_states)])
        s.commit()
    service = TaskService(db.get_engine(settings), None, settings)
    assert service.close_leftover_subtasks() == 4
    shown = {t: [(x.status, x.error) for x in service.subtasks(Principal("root", "admin"), t)]
             for t in ("tfailed", "tcancel", "trun")}
    stopped = "cancelled: shard 1 failed, so the rest of the task was stopped"
    assert shown["tfailed"] == [("completed", ""), ("failed", ""), ("cancelled", stopped),
                                ("cancelled", stopped), ("cancelled", stopped)]
    assert shown["tcancel"] == [("cancelled", ""), ("cancelled", "")]
    assert shown["trun"] == [("running", ""), ("pending", "")]      # an active task is the syncer's business
    assert service.close_leftover_subtasks() == 0


def test_a_long_combine_does_not_hold_up_other_tasks_status(pool, service, syncer, flights_csv, tmp_path):
    """While the syncer combines a big result (here: two copies of every flight, written as CSV),
    a small task that finishes meanwhile is shown completed within a few seconds: the combine
    runs beside the status sync, not inside it. (QA saw a task's status trail its shards by ~50 s.)"""
    big = service.submit(ALICE, {"script": "import pandas as pd\n\ndef process(df):\n    return pd.concat([df, df])\n",
                                 "split": {"shards": 2}}, flights_csv, "flights.csv")

    def combining() -> bool:
        task = service.get(ALICE, big.id)
        assert task.status not in states.FINAL, task.error   # still combining when we look
        return task.combine_claim is not None

    wait_until(combining, 180, "the big task's results to be combined")
    small_csv = tmp_path / "small.csv"
    pd.DataFrame({"k": ["a", "b"], "v": [1, 2]}).to_csv(small_csv, index=False)
    small = service.submit(ALICE, {"script": "def process(df):\n    return df\n", "split": {"shards": 1}},
                           small_csv, "small.csv")
    with pool.client() as c:
        wait_until(lambda: [s.state for s in c.status(small.id)] == ["completed"], 60, "the small task's shard")
    shard_done = time.monotonic()
    big_still_combining = service.get(ALICE, big.id).combine_claim is not None
    wait_until(lambda: _status(service, small.id) == "completed", 60, "the small task to be completed")
    lag = time.monotonic() - shard_done
    assert lag < 5, f"the small task's status trailed its shard by {lag:.1f} s"
    assert big_still_combining, "the big combine ended before the small shard did: nothing was measured"
    wait_until(lambda: _status(service, big.id) == "completed", 300, "the big task's combine")
    assert service.get(ALICE, big.id).result_rows == 2 * len(pd.read_csv(flights_csv, usecols=["year"]))
