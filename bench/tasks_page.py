"""How fast the task list stays with many tasks: 10,000 tasks of one user in a
fresh SQLite database, then the first and last page through
``TaskService.list`` (the query the Tasks page and ``GET /api/tasks`` run),
the status counts, and the Tasks page itself rendered by Streamlit's AppTest.

    .venv/bin/python -m bench.tasks_page [N]

Prints wall times; no assertions (see tests/test_app_pages.py for correctness).
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from hivemind_core.sqlite import write_session
from hivemind_core.tasks.models import Task, utcnow
from hivemind_core.tasks.states import FINAL


def insert_tasks(engine: Engine, owner: str, n: int) -> None:
    """``n`` finished task rows for ``owner`` (completed / failed / cancelled in turn), one per second back
    in time. Finished, because the task syncer would chase active ones in the node pool, which never saw them."""
    now = utcnow()
    statuses = itertools.cycle(FINAL)
    rows = [{"id": uuid.uuid4().hex[:16], "owner": owner, "name": f"bulk job {i}", "status": next(statuses),
             "progress": float(i % 101), "created_at": now - timedelta(seconds=i), "updated_at": now,
             "input_name": "bulk.csv", "subtasks_total": 4}
            for i in range(n)]
    with write_session(engine) as s:
        s.execute(insert(Task), rows)
        s.commit()


def _timed(label: str, fn, repeat: int = 5) -> None:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    print(f"{label:<48} {best * 1000:8.1f} ms (best of {repeat})")


def main(n: int = 10_000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HIVEMIND_DATA_DIR"] = tmp
        os.environ["HIVEMIND_WORKERS"] = "1"
        from hivemind_core import auth
        from hivemind_core.principal import Principal
        from hivemind_core.runtime import install_runtime, start_runtime

        rt = start_runtime()
        install_runtime(rt)
        try:
            auth.create_first_admin("root", "bench password")
            auth.create_user(Principal("root", "admin"), "bulk", "bench password", "analyst")
            t0 = time.perf_counter()
            insert_tasks(rt.engine, "bulk", n)
            print(f"inserted {n} tasks in {time.perf_counter() - t0:.2f} s")
            who = Principal("bulk", "analyst")
            _timed("list(): first page of 50", lambda: rt.tasks.list(who, None, 0, 50))
            _timed(f"list(): last page (offset {n - 50})", lambda: rt.tasks.list(who, None, n - 50, 50))
            _timed("list(status='failed'): first page", lambda: rt.tasks.list(who, "failed", 0, 50))
            _timed("counts_by_status()", lambda: rt.tasks.counts_by_status(who))
            from streamlit.testing.v1 import AppTest

            app = str(Path(__file__).resolve().parent.parent / "app.py")
            at = AppTest.from_file(app, default_timeout=60).run()
            at.text_input[0].input("bulk")
            at.text_input[1].input("bench password")
            next(b for b in at.button if b.label == "Login").click().run()
            at.run()

            def render() -> None:
                at.switch_page("pages/tasks.py").run()

            _timed(f"Tasks page (AppTest run, {n} tasks in the DB)", render, repeat=3)
            # what was timed must be the logged-in Tasks page with its table, not a login form
            assert not at.exception and not [b for b in at.button if b.label == "Login"], "not logged in"
            assert at.title and at.title[0].value == "Tasks" and len(at.dataframe) >= 1, "no task table"
        finally:
            install_runtime(None)
            rt.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
