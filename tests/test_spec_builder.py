"""The upload form's spec builder: typed filter and grid values, field paths in
errors, specs the job-spec parser accepts against a real dataset's schema, and
script templates that run as they are (checked in process against the same
independent cross-validation and seed-stream computations the job tests use)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hivemind_core.errors import ValidationError
from hivemind_core.jobs.inputs import takes_data
from hivemind_core.jobs.readers import preview
from hivemind_core.jobs.spec import MIN_MEMORY_MB, parse_spec, validate_against_schema
from hivemind_core.jobs.spec_builder import (
    DEFAULT_GRID,
    SIMULATION_TEMPLATE,
    FilterRow,
    GridRow,
    SortRow,
    SpecForm,
    build_spec,
    default_target,
    ml_template,
    output_columns,
)
from tests.jobs_local import run_in_process
from tests.test_jobs_ml import assert_same_scores, expected_grid_search
from tests.test_jobs_simulation import assert_same_moments, expected_moments, shard_outputs

TYPES = {"carrier": "string", "arr_delay": "float", "distance": "int", "cancelled": "bool"}


def test_group_by_spec_round_trips_through_the_parser(tmp_path: Path) -> None:
    csv = tmp_path / "f.csv"
    pd.DataFrame({"carrier": ["AA", "UA", "AA"], "arr_delay": [1.5, None, 3.0], "distance": [100, 200, 300],
                  "cancelled": [True, False, False]}).to_csv(csv, index=False)
    _, types = preview(csv)
    assert types == TYPES
    form = SpecForm(
        name="delays", group_by=["carrier"], aggregate={"arr_delay": ["mean", "count"], "distance": ["sum"]},
        filters=[FilterRow("distance", ">=", "150"), FilterRow("carrier", "in", "AA, UA"),
                 FilterRow("arr_delay", "not_null"), FilterRow("cancelled", "==", "false")],
        sort=[SortRow("arr_delay_mean", True)], limit=10, shards=3, priority=7, output_format="parquet",
    )
    spec = build_spec(form, types)
    assert spec["pipeline"]["filter"] == [
        {"column": "distance", "op": ">=", "value": 150},
        {"column": "carrier", "op": "in", "value": ["AA", "UA"]},
        {"column": "arr_delay", "op": "not_null"},
        {"column": "cancelled", "op": "==", "value": False},
    ]
    assert spec["split"] == {"shards": 3} and spec["priority"] == 7 and spec["output"] == {"format": "parquet"}
    parsed = parse_spec(spec)
    validate_against_schema(parsed, types)
    assert parsed.pipeline.output_columns() == output_columns(form, list(types)) == [
        "carrier", "arr_delay_mean", "arr_delay_count", "distance_sum"]


@pytest.mark.parametrize("row,field", [
    (FilterRow("distance", "==", "far"), "pipeline.filter[0].value"),
    (FilterRow("cancelled", "==", "maybe"), "pipeline.filter[0].value"),
    (FilterRow("arr_delay", ">", ""), "pipeline.filter[0].value"),
])
def test_bad_filter_values_name_their_field(row: FilterRow, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        build_spec(SpecForm(filters=[row]), TYPES)
    assert err.value.field == field


def test_script_mode_and_plain_columns() -> None:
    spec = build_spec(SpecForm(mode="script", script="def process(df):\n    return df\n"), TYPES)
    assert "pipeline" not in spec and parse_spec(spec).script
    form = SpecForm(columns=["carrier", "distance"])
    assert build_spec(form, TYPES)["pipeline"] == {"columns": ["carrier", "distance"]}
    assert output_columns(form, list(TYPES)) == ["carrier", "distance"]
    assert output_columns(SpecForm(), list(TYPES)) == list(TYPES)


# ---- machine_learning and simulation ------------------------------------------------------------

ML_TYPES = {"carrier": "string", "dist": "int", "late": "float", "night": "bool"}


def ml_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 240
    dist = rng.integers(100, 3000, n)
    night = rng.random(n) < 0.3
    late = 0.01 * dist + 20 * night + rng.normal(0, 5, n)
    late[::17] = np.nan   # rows without a target are left out
    carrier = np.where(dist > 1500, "UA", np.where(night, "AA", "DL"))
    return pd.DataFrame({"carrier": carrier, "dist": dist, "late": late, "night": night})


def test_machine_learning_form_builds_the_spec_and_the_parser_takes_it() -> None:
    form = SpecForm(name="late model", type="machine_learning", mode="pipeline",
                    script=ml_template("late", ML_TYPES).script,
                    grid=[GridRow("alpha", "0.1, 1, 10"), GridRow("", ""), GridRow("kind", "mean, median"),
                          GridRow("center", "true, false"), GridRow("depth", "2, 3.5, 1e1")],
                    folds=4, seed=11, target="late", maximize=False, metric=" rmse ", shards=3, priority=6)
    spec = build_spec(form, ML_TYPES)
    assert spec == {
        "version": 1, "name": "late model", "type": "machine_learning", "priority": 6,
        "output": {"format": "csv"}, "split": {"shards": 3}, "script": form.script,
        "grid": {"alpha": [0.1, 1, 10], "kind": ["mean", "median"], "center": [True, False],
                 "depth": [2, 3.5, 10.0]},
        "folds": 4, "seed": 11, "maximize": False, "target": "late", "metric": "rmse",
    }   # the pipeline mode of the form plays no part in a machine_learning job
    parsed = parse_spec(spec)
    validate_against_schema(parsed, ML_TYPES)
    assert parsed.grid_search.to_dict() == {k: spec[k] for k in ("grid", "folds", "seed", "maximize", "target",
                                                                 "metric")}
    no_target = build_spec(SpecForm(type="machine_learning", script=form.script, grid=[GridRow("alpha", "1")]),
                           ML_TYPES)
    assert "target" not in no_target and "metric" not in no_target and no_target["maximize"] is True


def test_simulation_form_needs_no_dataset() -> None:
    form = SpecForm(name="pi", type="simulation", script=SIMULATION_TEMPLATE, trials=5000, seed=42, shards=4,
                    output_format="parquet")
    spec = build_spec(form)
    assert spec == {"version": 1, "name": "pi", "type": "simulation", "priority": 5,
                    "output": {"format": "parquet"}, "split": {"shards": 4}, "script": SIMULATION_TEMPLATE,
                    "trials": 5000, "seed": 42}
    parsed = parse_spec(spec)
    assert parsed.simulation.to_dict() == {"trials": 5000, "seed": 42} and not takes_data(parsed)


@pytest.mark.parametrize("rows,target,field", [
    ([], "late", "grid"),
    ([GridRow("", "1, 2")], "late", "grid"),
    ([GridRow("alpha", "1"), GridRow("alpha", "2")], "late", "grid"),
    ([GridRow("alpha", " , ")], "late", "grid.alpha"),
    ([GridRow("alpha", "[1, 2")], "late", "grid.alpha"),
    ([GridRow("alpha", "1")], "no_such_column", "target"),
])
def test_bad_machine_learning_fields_name_their_field(rows: list[GridRow], target: str, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        build_spec(SpecForm(type="machine_learning", script="x", grid=rows, target=target), ML_TYPES)
    assert err.value.field == field


@pytest.mark.parametrize("target,metric", [("late", "rmse"), ("carrier", "accuracy")])
def test_ml_templates_run_and_equal_a_plain_cross_validation(tmp_path: Path, target: str, metric: str) -> None:
    """The script the form starts from works as it is: regression for a number, a classifier otherwise."""
    csv = tmp_path / "ml.csv"
    ml_frame().to_csv(csv, index=False)
    _, types = preview(csv)
    assert types == ML_TYPES and default_target(types) == "late"
    template = ml_template(target, types)
    assert template.metric == metric and template.maximize == (metric == "accuracy")
    form = SpecForm(type="machine_learning", script=template.script, grid=[GridRow(*DEFAULT_GRID[0])], folds=3,
                    seed=5, target=target, maximize=template.maximize, metric=template.metric)
    spec = build_spec(form, types)
    result, _ = run_in_process(spec, csv, tmp_path / "run")
    assert_same_scores(result, expected_grid_search(pd.read_csv(csv), spec))
    assert result[f"{metric}_mean"].notna().all()


def test_simulation_template_runs_on_the_documented_seed_streams(tmp_path: Path) -> None:
    spec = build_spec(SpecForm(type="simulation", script=SIMULATION_TEMPLATE, trials=30_001, seed=3, shards=3))
    result, _ = run_in_process(spec, None, tmp_path)
    assert_same_moments(result, expected_moments(shard_outputs(SIMULATION_TEMPLATE, 30_001, 3, 3)))
    assert result["key"].tolist() == ["pi", "distance"] and abs(result.loc[0, "mean"] - np.pi) < 0.05


@pytest.mark.parametrize("label,other,encoding", [
    ("UTF-8 (default)", "", None), ("latin-1 (ISO-8859-1)", "", "latin-1"),
    ("cp1252 (Windows, Western Europe)", "", "cp1252"), ("UTF-16", "", "utf-16"),
    ("other…", " CP1250 ", "cp1250"), ("other…", "shift_jis", "shift_jis"),
])
def test_encoding_choices_of_the_upload_form(label: str, other: str, encoding: str | None) -> None:
    from hivemind_core.jobs.spec_builder import ENCODING_CHOICES, chosen_encoding

    assert label in ENCODING_CHOICES
    assert chosen_encoding(label, other) == encoding


@pytest.mark.parametrize("other,words", [("", "type the encoding's name"), ("klingon", "unknown encoding"),
                                         ("hex", "not a text encoding")])
def test_other_encoding_must_name_a_text_encoding(other: str, words: str) -> None:
    from hivemind_core.jobs.spec_builder import OTHER_ENCODING, chosen_encoding

    with pytest.raises(ValidationError) as err:
        chosen_encoding(OTHER_ENCODING, other)
    assert err.value.field == "input.encoding" and words in str(err.value)


def test_encoding_goes_into_the_spec_and_the_job_reads_with_it(tmp_path: Path) -> None:
    csv = tmp_path / "cities.csv"
    csv.write_bytes("city,n\nZürich,1\nKöln,2\nZürich,3\n".encode("cp1252"))
    form = SpecForm(name="by city", group_by=["city"], aggregate={"n": ["sum"]}, encoding="cp1252")
    spec = build_spec(form, {"city": "string", "n": "int"})
    assert spec["input"] == {"encoding": "cp1252"} and parse_spec(spec).input.encoding == "cp1252"
    result, _ = run_in_process(spec, csv, tmp_path / "run")
    assert result.sort_values("city").reset_index(drop=True).equals(
        pd.DataFrame({"city": ["Köln", "Zürich"], "n_sum": [2, 4]}))
    sim = build_spec(SpecForm(type="simulation", script=SIMULATION_TEMPLATE, encoding="cp1252"))
    assert "input" not in sim   # a simulation reads no file


# ---- per-subtask limits (timeout_s, memory_mb, max_attempts) -------------------------------------

def test_limits_left_unset_are_the_specs_defaults() -> None:
    """A form that never touches the limits starts from (and sends) what a spec without them gets."""
    from hivemind_core.jobs.spec import JobSpec
    from hivemind_core.jobs.spec_builder import LIMIT_FIELDS, limit_defaults

    plain = JobSpec()
    assert limit_defaults() == {"timeout_s": plain.timeout_s, "memory_mb": plain.memory_mb,
                                "max_attempts": plain.max_attempts}
    spec = build_spec(SpecForm(name="x", mode="script", script="def process(df):\n    return df\n"))
    assert not set(LIMIT_FIELDS) & set(spec)
    spec = build_spec(SpecForm(name="x", mode="script", script="def process(df):\n    return df\n",
                               **limit_defaults()))
    parsed = parse_spec(spec)
    assert (parsed.timeout_s, parsed.memory_mb, parsed.max_attempts) == (plain.timeout_s, plain.memory_mb,
                                                                          plain.max_attempts)


def test_limits_set_on_the_form_go_into_the_spec() -> None:
    form = SpecForm(name="quick", group_by=["carrier"], aggregate={"distance": ["sum"]},
                    timeout_s=7.5, memory_mb=4096, max_attempts=1)
    spec = build_spec(form, TYPES)
    assert (spec["timeout_s"], spec["memory_mb"], spec["max_attempts"]) == (7.5, 4096, 1)
    parsed = parse_spec(spec)
    assert (parsed.timeout_s, parsed.memory_mb, parsed.max_attempts) == (7.5, 4096, 1)


@pytest.mark.parametrize(("limits", "field"), [
    ({"timeout_s": 0.0}, "timeout_s"),
    ({"timeout_s": -5.0}, "timeout_s"),
    ({"timeout_s": 10.0 * 86400}, "timeout_s"),
    ({"memory_mb": -1}, "memory_mb"),
    ({"memory_mb": MIN_MEMORY_MB - 1}, "memory_mb"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"max_attempts": 1000}, "max_attempts"),
])
def test_out_of_range_limits_are_refused_by_the_spec_parser_at_their_field(limits: dict, field: str) -> None:
    """The form repeats no range: the spec's own check names the field, so the page shows it there."""
    spec = build_spec(SpecForm(name="x", group_by=["carrier"], aggregate={"distance": ["sum"]}, **limits), TYPES)
    with pytest.raises(ValidationError) as caught:
        parse_spec(spec)
    assert caught.value.field == field and str(caught.value).startswith(f"{field}:")
