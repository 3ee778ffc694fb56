"""simulation jobs: seeded Monte Carlo shards through the real splitter, worker
operation and master combine equal an in-process run of the same ``simulate``
over the same seed streams (``SeedSequence(seed).spawn(shards)``), written here
in plain numpy/pandas: per-key count/sum/mean/std/var/min/max over every
outcome for dict results, shard-order concatenation for DataFrame results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hivemind_core.jobs.script import ScriptError
from hivemind_core.jobs.simulation import trial_counts
from tests.jobs_local import run_in_process

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = json.loads((ROOT / "examples" / "pi_simulation.json").read_text())
FRAME_SCRIPT = ("def simulate(rng, n):\n"
                "    steps = rng.choice([-1, 1], size=(n, 20))\n"
                "    walk = steps.cumsum(axis=1)\n"
                "    return pd.DataFrame({'final': walk[:, -1], 'peak': walk.max(axis=1),\n"
                "                         'noise': rng.normal(size=n)})\n")


def user_function(script: str, name: str):  # noqa: ANN201 - the user's function
    namespace: dict = {"pd": pd, "np": np}
    exec(compile(script, "<user script>", "exec"), namespace)  # noqa: S102 - the test's own simulation code
    return namespace[name]


def shard_outputs(script: str, trials: int, seed: int, shards: int) -> list:
    """``simulate`` on each shard's seed stream and trial count, in this process."""
    simulate = user_function(script, "simulate")
    streams = np.random.SeedSequence(seed).spawn(shards)
    counts = [trials // shards + (1 if i < trials % shards else 0) for i in range(shards)]
    return [simulate(np.random.default_rng(stream), n) for stream, n in zip(streams, counts)]


def expected_moments(outputs: list[dict]) -> pd.DataFrame:
    keys = list(dict.fromkeys(k for out in outputs for k in out))
    rows = []
    for key in keys:
        values = np.concatenate([np.asarray(out[key], dtype=float).reshape(-1) for out in outputs if key in out])
        values = values[~np.isnan(values)]
        var = values.var(ddof=1) if len(values) > 1 else np.nan   # pandas: NaN for one outcome
        rows.append({"key": key, "count": len(values), "sum": values.sum(), "mean": values.mean(),
                     "std": np.sqrt(var), "var": var, "min": values.min(), "max": values.max()})
    return pd.DataFrame(rows)


def assert_same_moments(result: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(result.columns) == list(expected.columns)
    pd.testing.assert_series_equal(result["key"], expected["key"], check_dtype=False)
    for col in ("count", "min", "max"):   # exact
        assert result[col].tolist() == expected[col].tolist(), col
    for col, rtol in (("sum", 1e-12), ("mean", 1e-12), ("std", 1e-9), ("var", 1e-9)):
        # the merge adds shard partials in another order than one numpy pass (and Chan's M2 merge)
        np.testing.assert_allclose(result[col], expected[col], rtol=rtol, err_msg=col)


def test_trials_are_dealt_evenly():
    assert trial_counts(10, 4) == [3, 3, 2, 2]
    assert trial_counts(8, 8) == [1] * 8
    assert sum(trial_counts(2_000_001, 7)) == 2_000_001


@pytest.mark.parametrize("shards", [1, 4, 7])
def test_dict_outcomes_equal_an_in_process_run_on_the_same_seed_streams(tmp_path, shards):
    spec = EXAMPLE | {"trials": 300_001, "split": {"shards": shards}}
    result, split = run_in_process(spec, None, tmp_path)
    assert split.shards == [] and [u.rows for u in split.units] == trial_counts(300_001, shards)
    expected = expected_moments(shard_outputs(spec["script"], 300_001, spec["seed"], shards))
    assert_same_moments(result, expected)
    assert result["key"].tolist() == ["pi", "distance", "farthest"]   # the dict's own order
    assert result.loc[0, "count"] == 300_001 and result.loc[2, "count"] == shards   # a number is one outcome
    assert abs(result.loc[0, "mean"] - np.pi) < 0.02


def test_reproducible_for_a_shard_count_and_seeded(tmp_path):
    spec = EXAMPLE | {"trials": 50_000, "split": {"shards": 3}}
    first, _ = run_in_process(spec, None, tmp_path / "a")
    again, _ = run_in_process(spec, None, tmp_path / "b")
    pd.testing.assert_frame_equal(first, again)
    other_seed, _ = run_in_process(spec | {"seed": spec["seed"] + 1}, None, tmp_path / "c")
    assert other_seed.loc[0, "sum"] != first.loc[0, "sum"]


def test_default_shard_count_comes_from_the_spec_not_the_cluster(tmp_path):
    spec = {k: v for k, v in EXAMPLE.items() if k != "split"} | {"trials": 20_000}
    small, split_small = run_in_process(spec, None, tmp_path / "a", slots=1)
    big, split_big = run_in_process(spec, None, tmp_path / "b", slots=16)
    assert len(split_small.units) == len(split_big.units) == 8
    pd.testing.assert_frame_equal(small, big)
    _, split_few = run_in_process(spec | {"trials": 3}, None, tmp_path / "c")
    assert [u.rows for u in split_few.units] == [1, 1, 1]


def test_nan_outcomes_are_skipped_like_pandas(tmp_path):
    script = ("def simulate(rng, n):\n"
              "    x = rng.normal(size=n)\n"
              "    return {'positive_only': np.where(x > 0, x, np.nan), 'all': x}\n")
    spec = {"type": "simulation", "script": script, "trials": 10_001, "seed": 3, "split": {"shards": 3}}
    result, _ = run_in_process(spec, None, tmp_path)
    assert_same_moments(result, expected_moments(shard_outputs(script, 10_001, 3, 3)))
    assert 0 < result.loc[0, "count"] < result.loc[1, "count"] == 10_001


@pytest.mark.parametrize("shards", [1, 5])
def test_dataframe_outcomes_are_concatenated_in_shard_order(tmp_path, shards):
    spec = {"type": "simulation", "script": FRAME_SCRIPT, "trials": 4_003, "seed": 11,
            "split": {"shards": shards}, "output": {"format": "parquet"}}
    result, _ = run_in_process(spec, None, tmp_path)
    expected = pd.concat(shard_outputs(FRAME_SCRIPT, 4_003, 11, shards), ignore_index=True)
    pd.testing.assert_frame_equal(result, expected)


@pytest.mark.parametrize("body,words", [
    ("    return 3.0\n", "simulate(rng, n) must return a dict {name: per-trial numbers} (e.g. {\"hit\": "
                        "rng.random(n) < 0.5}) or a pandas DataFrame, got float 3.0"),
    ("    return {}\n", "empty dict"),
    ("    return {'a': np.ones((n, 2))}\n", "1-D array"),
    ("    return {'a': ['x'] * n}\n", "must be numbers"),
    ("    return {1: rng.random(n)}\n", "keys must be non-empty text"),
    ("    return {'a': rng.random(n)} if n > 3 else pd.DataFrame({'a': [1.0]})\n", "the same kind every time"),
    ("    raise RuntimeError('bad luck')\n", "RuntimeError: bad luck"),
])
def test_user_errors_are_reported_to_the_user(tmp_path, body, words):
    spec = {"type": "simulation", "script": "def simulate(rng, n):\n" + body, "trials": 7,
            "split": {"shards": 2}}
    with pytest.raises(ScriptError) as err:
        run_in_process(spec, None, tmp_path)
    assert words in str(err.value)
