"""machine_learning and simulation jobs through the CLI on real clusters: the
embedded cluster the command starts (node pool + 2 worker processes) and, with
``--pool``, a separately started node pool and two workers. Results equal the
independent in-test computations of tests/test_jobs_ml.py and
tests/test_jobs_simulation.py; a simulation takes DATA as ``-`` or not at all;
bad specs exit non-zero with one line and queue nothing. The example specs of
the data_processing kinds are checked against pandas too."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from sqlmodel import Session, func, select

from hivemind_core.db import get_engine
from hivemind_core.tasks.models import Subtask, Task
from tests.jobs_local import run_in_process
from tests.pool_procs import cli_env, run_cli
from tests.test_jobs_exact import assert_same, expected_groupby
from tests.test_jobs_ml import assert_same_scores, expected_grid_search
from tests.test_jobs_simulation import (
    assert_same_moments,
    expected_moments,
    shard_outputs,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def task_id_of(stdout: str) -> str:
    return re.search(r"submitted task (\w+)", stdout).group(1)


def test_grid_search_example_on_embedded_cluster(subprocess_env, tmp_path, flights_csv, frame):
    out = tmp_path / "scores.csv"
    proc = run_cli(["submit", str(EXAMPLES / "delay_model_grid_search.json"), str(flights_csv), "--wait",
                "--output", str(out)], subprocess_env | {"HIVEMIND_WORKERS": "2"}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"completed: 6 rows written to", proc.stdout), proc.stdout
    assert_same_scores(pd.read_csv(out), expected_grid_search(frame, example("delay_model_grid_search.json")))
    # several subtasks (a few per worker slot), one stored dataset shared by all of them
    with Session(get_engine()) as s:
        subs = s.exec(select(Subtask).where(Subtask.task_id == task_id_of(proc.stdout))).all()
    assert len(subs) == 6 and len({sub.input_blob for sub in subs}) == 1 and subs[0].input_blob
    assert all(sub.status == "completed" for sub in subs)


def test_simulation_example_on_embedded_cluster_without_data(subprocess_env, tmp_path):
    spec = example("pi_simulation.json")
    out = tmp_path / "pi.csv"
    proc = run_cli(["submit", str(EXAMPLES / "pi_simulation.json"), "--wait", "--output", str(out)],
               subprocess_env | {"HIVEMIND_WORKERS": "2"}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "4 shards, no input data" in proc.stdout
    shards = spec["split"]["shards"]
    expected = expected_moments(shard_outputs(spec["script"], spec["trials"], spec["seed"], shards))
    assert_same_moments(pd.read_csv(out), expected)


def test_simulation_with_dash_for_data_through_pool(cli_pool, subprocess_env, tmp_path):
    from tests.test_jobs_simulation import FRAME_SCRIPT

    spec = {"type": "simulation", "script": FRAME_SCRIPT, "trials": 5_000, "seed": 77, "split": {"shards": 3}}
    spec_file = tmp_path / "walks.json"
    spec_file.write_text(json.dumps(spec))
    out = tmp_path / "walks.csv"
    proc = run_cli(["submit", str(spec_file), "-", "--pool", cli_pool.address, "--wait", "--output", str(out)],
               cli_env(subprocess_env, cli_pool), tmp_path)
    assert proc.returncode == 0, proc.stderr
    expected = pd.concat(shard_outputs(FRAME_SCRIPT, 5_000, 77, 3), ignore_index=True)
    pd.testing.assert_frame_equal(pd.read_csv(out), expected, check_exact=False, rtol=1e-15)


def test_grid_search_through_pool(cli_pool, subprocess_env, tmp_path, flights_csv, frame):
    spec = example("delay_model_grid_search.json") | {"split": {"shards": 4}, "folds": 4,
                                                       "grid": {"features": ["dep_delay", "dep_delay+hour"],
                                                                "alpha": [10.0]}}
    spec_file = tmp_path / "ml.json"
    spec_file.write_text(json.dumps(spec))
    out = tmp_path / "scores.csv"
    proc = run_cli(["submit", str(spec_file), str(flights_csv), "--pool", cli_pool.address, "--wait", "--output", str(out)],
               cli_env(subprocess_env, cli_pool), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_same_scores(pd.read_csv(out), expected_grid_search(frame, spec))


def _bad(tmp: Path, flights_csv: Path) -> dict[str, tuple[dict, list[str], str]]:
    ml = example("delay_model_grid_search.json")
    sim = example("pi_simulation.json")
    data = [str(flights_csv)]
    return {
        "grid not a dict of lists": (ml | {"grid": {"alpha": 1.0}}, data, "grid.alpha: must be a non-empty list"),
        "empty grid": (ml | {"grid": {}}, data, "grid: must name at least one parameter"),
        "folds < 2": (ml | {"folds": 1}, data, "folds: must be between 2"),
        "folds > rows": (ml | {"folds": 7}, [str(tmp / "six.csv")], "folds: 7 folds need at least 7 rows"),
        "unknown target": (ml | {"target": "delay"}, data, "target: unknown column 'delay'"),
        "no fit_score": (ml | {"script": "def fit(train, test, params):\n    return 1\n"}, data,
                         "script: must define a function fit_score(train, test, params)"),
        "ml syntax error": (ml | {"script": "def fit_score(train, test, params):\nreturn 1\n"}, data,
                            "script: is not valid Python (line 2"),
        "ml without data": (ml, ["-"], "input: a machine_learning job needs a dataset"),
        "trials <= 0": (sim | {"trials": 0}, [], "trials: must be between 1"),
        "no simulate": (sim | {"script": "def run(rng, n):\n    return {}\n"}, [],
                        "script: must define a function simulate(rng, n)"),
        "simulation given data": (sim, data, "input: a simulation job reads no data"),
    }


def test_bad_specs_exit_nonzero_with_one_line_and_queue_nothing(cli_pool, subprocess_env, tmp_path, flights_csv):
    pd.DataFrame({"dep_delay": range(6), "arr_delay": [1.0] * 6}).to_csv(tmp_path / "six.csv", index=False)
    env = cli_env(subprocess_env, cli_pool)
    with cli_pool.client() as client:
        before = {t.task_id for t in client.list_tasks()}
    with Session(get_engine()) as s:
        tasks_before = s.exec(select(func.count()).select_from(Task)).one()
    for name, (spec, data, reason) in _bad(tmp_path, flights_csv).items():
        spec_file = tmp_path / "spec.json"
        spec_file.write_text(json.dumps(spec))
        proc = run_cli(["submit", str(spec_file), *data, "--pool", cli_pool.address, "--wait"], env, tmp_path, 60)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode != 0, name
        assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], (name, proc.stderr)
        assert proc.stdout == "", name
    with cli_pool.client() as client:
        assert {t.task_id for t in client.list_tasks()} == before
    with Session(get_engine()) as s:
        assert s.exec(select(func.count()).select_from(Task)).one() == tasks_before


def test_data_processing_examples_equal_pandas(tmp_path, flights_csv, frame):
    result, _ = run_in_process(example("delays_by_carrier.json"), flights_csv, tmp_path / "groupby")
    aggregate = {"arr_delay": ["mean", "count", "std", "median"], "distance": ["sum"]}
    expected = expected_groupby(frame[frame.origin == "JFK"], ["carrier"], aggregate)
    assert_same(result, expected.sort_values("arr_delay_mean", ascending=False, kind="stable").head(10))

    result, _ = run_in_process(example("long_flights_to_sfo.json"), flights_csv, tmp_path / "filter")
    expected = frame[(frame.dest == "SFO") & (frame.arr_delay > 60)]
    pd.testing.assert_frame_equal(
        result, expected[["month", "day", "carrier", "flight", "origin", "arr_delay"]].reset_index(drop=True))

    result, _ = run_in_process(example("late_departures_script.json"), flights_csv, tmp_path / "script")
    late = frame[frame.dep_delay > 120][["carrier", "flight", "origin", "dest", "dep_delay"]].copy()
    late["hours_late"] = late.dep_delay / 60
    late["speed_mph"] = (frame.distance / frame.air_time * 60)[late.index].round(1)
    pd.testing.assert_frame_equal(result, late.reset_index(drop=True))
