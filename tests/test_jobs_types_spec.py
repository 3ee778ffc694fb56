"""The machine_learning and simulation parts of the job spec: parsed and
checked on their own, before anything is stored or queued; every error names
its field. The example specs under examples/ all parse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hivemind_core.errors import ValidationError
from hivemind_core.jobs.spec import parse_spec, validate_against_schema

ROOT = Path(__file__).resolve().parent.parent
FIT = "def fit_score(train, test, params):\n    return 1.0\n"
SIM = "def simulate(rng, n):\n    return {'x': rng.random(n)}\n"
ML = {"type": "machine_learning", "script": FIT, "grid": {"alpha": [0.1, 1.0]}}
SIMULATION = {"type": "simulation", "script": SIM, "trials": 1000}


def test_examples_parse_and_round_trip():
    examples = sorted((ROOT / "examples").glob("*.json"))
    assert {json.loads(p.read_text())["type"] for p in examples} == {"data_processing", "machine_learning",
                                                                      "simulation"}
    for path in examples:
        spec = parse_spec(path.read_text())
        assert parse_spec(spec.to_dict()) == spec, path.name


def test_defaults():
    ml = parse_spec(ML).grid_search
    assert (ml.folds, ml.seed, ml.maximize, ml.target, ml.metric) == (5, 0, True, None, None)
    assert ml.combinations() == [{"alpha": 0.1}, {"alpha": 1.0}] and ml.evaluations == 10
    sim = parse_spec(SIMULATION).simulation
    assert (sim.trials, sim.seed) == (1000, 0)


def test_grid_combinations_vary_the_last_parameter_fastest():
    spec = parse_spec(ML | {"grid": {"a": [1, 2], "b": ["x", "y", "z"], "c": [True]}})
    assert [tuple(c.values()) for c in spec.grid_search.combinations()] == [
        (1, "x", True), (1, "y", True), (1, "z", True), (2, "x", True), (2, "y", True), (2, "z", True)]


@pytest.mark.parametrize("raw,field,words", [
    (ML | {"grid": [0.1, 1.0]}, "grid", "JSON object mapping each parameter to a list"),
    (ML | {"grid": {}}, "grid", "at least one parameter"),
    ({k: v for k, v in ML.items() if k != "grid"}, "grid", "needs a grid"),
    (ML | {"grid": {"alpha": 0.1}}, "grid.alpha", "non-empty list"),
    (ML | {"grid": {"alpha": []}}, "grid.alpha", "non-empty list"),
    (ML | {"grid": {"alpha": [1, "two"]}}, "grid.alpha", "mixes number and text"),
    (ML | {"grid": {"alpha": [1, [2]]}}, "grid.alpha[1]", "plain value"),
    (ML | {"grid": {"alpha": [1, 1]}}, "grid.alpha", "twice"),
    (ML | {"grid": {f"p{i}": list(range(10)) for i in range(5)}}, "grid", "at most 10000"),
    (ML | {"folds": 1}, "folds", "between 2 and"),
    (ML | {"folds": "5"}, "folds", "whole number"),
    (ML | {"seed": -1}, "seed", "between 0 and"),
    (ML | {"maximize": "yes"}, "maximize", "true or false"),
    (ML | {"target": ""}, "target", "must not be empty"),
    (ML | {"trials": 10}, "trials", "only simulation jobs take 'trials'"),
    (ML | {"pipeline": {"columns": ["a"]}}, "pipeline", "described by its script"),
    (ML | {"split": {"strategy": "key"}}, "split.strategy", "leave strategy out"),
    ({k: v for k, v in ML.items() if k != "script"}, "script", "needs a script defining fit_score"),
    (ML | {"script": "def process(df):\n    return df\n"}, "script", "must define a function fit_score("),
    (ML | {"script": "def fit_score(train, test):\n    return 1\n"}, "script", "must take 3 argument"),
    (ML | {"script": "def fit_score(train, test, params)\n    return 1\n"}, "script", "not valid Python (line 1"),
    (SIMULATION | {"trials": 0}, "trials", "between 1 and"),
    (SIMULATION | {"trials": -5}, "trials", "between 1 and"),
    (SIMULATION | {"trials": 2.5}, "trials", "whole number"),
    ({k: v for k, v in SIMULATION.items() if k != "trials"}, "trials", "needs the total number of trials"),
    (SIMULATION | {"trials": 3, "split": {"shards": 4}}, "split.shards", "at most as many shards as trials"),
    (SIMULATION | {"grid": {"a": [1]}}, "grid", "only machine_learning jobs take 'grid'"),
    (SIMULATION | {"script": FIT}, "script", "must define a function simulate(rng, n)"),
    (SIMULATION | {"script": "def simulate(rng, n):\n  return {\n"}, "script", "not valid Python"),
    ({"pipeline": {"columns": ["a"]}, "seed": 3}, "seed", "only machine_learning and simulation jobs"),
    ({"pipeline": {"columns": ["a"]}, "folds": 3}, "folds", "only machine_learning jobs take 'folds'"),
])
def test_bad_type_fields_name_their_field(raw, field, words):
    with pytest.raises(ValidationError) as err:
        parse_spec(raw)
    assert err.value.field == field, str(err.value)
    assert words in str(err.value) and str(err.value).startswith(f"{field}: ")


def test_target_is_checked_against_the_dataset():
    spec = parse_spec(ML | {"target": "arr_delay"})
    validate_against_schema(spec, {"arr_delay": "float", "carrier": "string"})
    with pytest.raises(ValidationError) as err:
        validate_against_schema(spec, {"dep_delay": "float"})
    assert err.value.field == "target" and "unknown column 'arr_delay'" in str(err.value)


def test_other_types_still_run_a_process_script_unsplit():
    spec = parse_spec({"type": "report", "script": "def process(df):\n    return df\n"})
    assert spec.runs_unsplit and spec.grid_search is None and spec.simulation is None
