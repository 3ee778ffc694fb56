"""Job spec v1: parsing and validation against a dataset's schema; every error names its field."""

from __future__ import annotations

import json

import pytest

from hivemind_core.errors import ValidationError
from hivemind_core.jobs import AGGREGATIONS, FILTER_OPS, aggregations_for_type
from hivemind_core.jobs.spec import parse_spec, validate_against_schema

DESIGN_EXAMPLE = {
    "name": "delays by carrier", "type": "data_processing", "priority": 5, "split": {"shards": 8},
    "max_attempts": 3,
    "pipeline": {
        "filter": [{"column": "origin", "op": "==", "value": "JFK"}],
        "columns": ["carrier", "arr_delay", "distance"],
        "group_by": ["carrier"],
        "aggregate": {"arr_delay": ["mean", "count", "std"], "distance": ["sum"]},
        "sort": [{"column": "arr_delay_mean", "descending": True}],
        "limit": 10,
    },
    "output": {"format": "csv"},
}
SCHEMA = {"origin": "string", "carrier": "string", "arr_delay": "float", "distance": "int",
          "cancelled": "bool", "time_hour": "datetime"}


def test_design_example_parses_and_round_trips():
    spec = parse_spec(json.dumps(DESIGN_EXAMPLE))
    assert spec.pipeline.output_columns() == ["carrier", "arr_delay_mean", "arr_delay_count", "arr_delay_std",
                                              "distance_sum"]
    assert spec.split.shards == 8 and spec.priority == 5 and spec.output_format == "csv"
    assert parse_spec(spec.to_dict()) == spec
    validate_against_schema(spec, SCHEMA)


def test_public_names():
    assert AGGREGATIONS == ("count", "size", "sum", "mean", "min", "max", "std", "var", "nunique", "median")
    assert set(FILTER_OPS) == {"==", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null", "contains"}
    assert aggregations_for_type("string") == ["count", "size", "min", "max", "nunique"]
    assert "median" in aggregations_for_type("int") and "mean" not in aggregations_for_type("datetime")


def _with_pipeline(**pipeline) -> dict:
    return {"pipeline": pipeline}


@pytest.mark.parametrize("raw,field,words", [
    ('{"pipeline": ', "spec", "not valid JSON"),
    ("[1, 2]", "spec", "JSON object"),
    ({"colour": "red", "pipeline": {"columns": ["a"]}}, "colour", "unknown field"),
    ({"version": 2, "pipeline": {"columns": ["a"]}}, "version", "version 1"),
    ({"priority": 12, "pipeline": {"columns": ["a"]}}, "priority", "between 0 and 9"),
    ({"priority": "high", "pipeline": {"columns": ["a"]}}, "priority", "whole number"),
    # 0 is refused, so the message must not name a range that includes it
    ({"timeout_s": 0, "pipeline": {"columns": ["a"]}}, "timeout_s", "greater than 0 and at most 86400"),
    ({"timeout_s": 86401, "pipeline": {"columns": ["a"]}}, "timeout_s", "greater than 0 and at most 86400"),
    ({"split": {"shards": 0}, "pipeline": {"columns": ["a"]}}, "split.shards", "between 1"),
    ({"split": {"strategy": "random"}, "pipeline": {"columns": ["a"]}}, "split.strategy", "not one of"),
    ({"output": {"format": "xlsx"}, "pipeline": {"columns": ["a"]}}, "output.format", "not one of"),
    ({"input": {"encoding": "klingon"}, "pipeline": {"columns": ["a"]}}, "input.encoding", "unknown encoding"),
    ({}, "pipeline", "needs a pipeline or a script"),
    (_with_pipeline(filter=[{"column": "a", "op": "like", "value": 1}]), "pipeline.filter[0].op", "not one of"),
    (_with_pipeline(filter=[{"column": "a", "op": "=="}]), "pipeline.filter[0].value", "needs a value"),
    (_with_pipeline(filter=[{"column": "a", "op": "in", "value": 3}]), "pipeline.filter[0].value", "list"),
    (_with_pipeline(filter=[{"column": "a", "op": "is_null", "value": 3}]), "pipeline.filter[0].value",
     "takes no value"),
    (_with_pipeline(filter=[{"op": "==", "value": 1}]), "pipeline.filter[0].column", "required"),
    (_with_pipeline(group_by=["a"]), "pipeline.aggregate", "at least one aggregation"),
    (_with_pipeline(group_by=["a"], aggregate={"b": ["average"]}), "pipeline.aggregate.b[0]", "not one of"),
    (_with_pipeline(group_by=["a"], aggregate={"b": ["sum", "sum"]}), "pipeline.aggregate.b", "twice"),
    (_with_pipeline(group_by=["a"], aggregate={"a": ["count"]}), "pipeline.aggregate.a", "group_by column"),
    (_with_pipeline(aggregate={"b": ["median"]}), "pipeline.group_by", "needs a group_by"),
    ({"split": {"strategy": "rows"}, **_with_pipeline(group_by=["a"], aggregate={"b": ["nunique"]})},
     "split.strategy", "whole groups"),
    (_with_pipeline(group_by=["a"], aggregate={"b": ["sum"]}, sort=[{"column": "b"}]),
     "pipeline.sort[0].column", "not a result column"),
    (_with_pipeline(limit=-1), "pipeline.limit", "at least 0"),
    ({"memory_mb": 1, "pipeline": {"columns": ["a"]}}, "memory_mb", "or at least 64 MB, got 1"),
    ({"memory_mb": 63, "pipeline": {"columns": ["a"]}}, "memory_mb", "just to load its shard"),
    ({"memory_mb": -1, "pipeline": {"columns": ["a"]}}, "memory_mb", "at least 0"),
    ({"script": "def proc(df):\n    return df\n"}, "script", "process(df)"),
    ({"script": "def process(df)\n    return df\n"}, "script", "not valid Python (line 1"),
    ({"script": "def process(df):\n    return df\n", "pipeline": {"columns": ["a"]}}, "script", "not both"),
])
def test_parse_errors_name_the_field(raw, field, words):
    with pytest.raises(ValidationError) as err:
        parse_spec(raw)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ") and words in str(err.value)


@pytest.mark.parametrize("pipeline,field,words", [
    ({"columns": ["carier"]}, "pipeline.columns[0]", "unknown column 'carier'"),
    ({"filter": [{"column": "dest", "op": "==", "value": "SFO"}]}, "pipeline.filter[0].column", "unknown column"),
    ({"filter": [{"column": "distance", "op": ">", "value": "far"}]}, "pipeline.filter[0].value", "type int"),
    ({"filter": [{"column": "origin", "op": "==", "value": 5}]}, "pipeline.filter[0].value", "type string"),
    ({"filter": [{"column": "cancelled", "op": "==", "value": 1}]}, "pipeline.filter[0].value", "true or false"),
    ({"filter": [{"column": "time_hour", "op": "<", "value": "yesterday"}]}, "pipeline.filter[0].value",
     "ISO date"),
    ({"filter": [{"column": "origin", "op": "in", "value": ["JFK", 3]}]}, "pipeline.filter[0].value", "3"),
    ({"filter": [{"column": "distance", "op": "contains", "value": "1"}]}, "pipeline.filter[0].op",
     "text columns"),
    ({"group_by": ["origin"], "aggregate": {"carrier": ["mean"]}}, "pipeline.aggregate.carrier",
     "'mean' cannot be computed on string column 'carrier'"),
    ({"group_by": ["origin"], "aggregate": {"time_hour": ["std"]}}, "pipeline.aggregate.time_hour", "datetime"),
    ({"columns": ["origin"], "group_by": ["origin"], "aggregate": {"distance": ["sum"]}},
     "pipeline.aggregate.distance", "not in pipeline.columns"),
    ({"columns": ["origin"], "sort": [{"column": "distance"}]}, "pipeline.sort[0].column", "unknown column"),
])
def test_schema_errors_name_the_field(pipeline, field, words):
    spec = parse_spec({"pipeline": pipeline})
    with pytest.raises(ValidationError) as err:
        validate_against_schema(spec, SCHEMA)
    assert err.value.field == field and words in str(err.value), str(err.value)


def test_valid_filters_of_every_kind():
    spec = parse_spec(_with_pipeline(filter=[
        {"column": "distance", "op": ">=", "value": 100.5},
        {"column": "origin", "op": "not_in", "value": ["EWR"]},
        {"column": "carrier", "op": "contains", "value": "A"},
        {"column": "arr_delay", "op": "not_null"},
        {"column": "cancelled", "op": "!=", "value": True},
        {"column": "time_hour", "op": "<", "value": "2013-03-01T00:00:00Z"},
    ]))
    validate_against_schema(spec, SCHEMA)


# ----------------------------------------------------------------- wrong JSON types anywhere

FULL_SPEC = {
    "version": 1, "name": "n", "type": "data_processing", "priority": 5, "max_attempts": 3,
    "split": {"shards": 4, "strategy": "rows"},
    "input": {"format": "csv", "delimiter": ",", "encoding": "utf-8"},
    "output": {"format": "csv"}, "timeout_s": 60, "memory_mb": 256,
    "pipeline": {
        "filter": [{"column": "origin", "op": "==", "value": "JFK"},
                   {"column": "distance", "op": "in", "value": [100, 200]}],
        "columns": ["origin", "carrier", "arr_delay", "distance"],
        "group_by": ["carrier"],
        "aggregate": {"arr_delay": ["mean", "count"], "distance": ["sum"]},
        "sort": [{"column": "arr_delay_mean", "descending": True}],
        "limit": 10,
    },
}
WRONG_VALUES = [[","], {"a": 1}, 1.5, True, "x", -1, 0, "", [], {}, float("nan"), [None], [[1]]]


def _paths(value, prefix=()):
    """Every path into a JSON value (objects and lists), the root excluded."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield prefix + (key,)
        yield from _paths(child, prefix + (key,))


def _replaced(spec, path, new):
    out = json.loads(json.dumps(spec))
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return out


def _dotted(path) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else (f".{k}" if i else k) for i, k in enumerate(path))


@pytest.mark.parametrize("base", [FULL_SPEC, {"script": "def process(df):\n    return df\n", "split": {"shards": 2}}])
def test_any_wrong_value_anywhere_is_a_validation_error_naming_its_field(base):
    """No TypeError/KeyError/... for any wrong JSON type at any place: a ValidationError whose
    field is the replaced field or inside it (or a field it makes inconsistent, e.g. sort by a
    column the changed aggregation no longer produces)."""
    validate_against_schema(parse_spec(base), SCHEMA)
    checked = 0
    for path in _paths(base):
        for wrong in WRONG_VALUES:
            spec = _replaced(base, path, wrong)
            try:
                validate_against_schema(parse_spec(spec), SCHEMA)
            except ValidationError as exc:
                assert exc.field, (path, wrong, exc)
                assert str(exc).startswith(f"{exc.field}:") or str(exc).startswith("input"), (path, wrong, exc)
                checked += 1
    assert checked > (300 if "pipeline" in base else 20)


@pytest.mark.parametrize("spec,field,words", [
    ({"input": {"delimiter": [","]}}, "input.delimiter", "single character"),
    ({"input": {"encoding": "hex"}}, "input.encoding", "not a text encoding"),
    ({"input": {"encoding": "rot13"}}, "input.encoding", "not a text encoding"),
    ({"input": {"encoding": "base64"}}, "input.encoding", "not a text encoding"),
    ({"input": {"encoding": ["utf-8"]}}, "input.encoding", "must be a string"),
    ({"split": []}, "split", "JSON object"),
    ({"output": "csv"}, "output", "JSON object"),
    ({"input": {"format": ""}}, "input.format", "not one of"),
])
def test_wrong_input_fields(spec, field, words):
    with pytest.raises(ValidationError) as err:
        parse_spec({"pipeline": {"columns": ["origin"]}} | spec)
    assert err.value.field == field and words in str(err.value)


def test_real_text_encodings_still_accepted():
    for name in ("utf-8", "latin-1", "cp1252", "utf-16", "UTF8", "iso-8859-15"):
        assert parse_spec({"input": {"encoding": name}, "pipeline": {"columns": ["origin"]}}).input.encoding


# ----------------------------------------------------------------- nothing to do / NaN values

@pytest.mark.parametrize("spec,field,words", [
    ({"type": "foo"}, "pipeline", "a foo job needs a pipeline or a script"),
    ({"type": "foo", "pipeline": {}}, "pipeline", "nothing to do"),
    ({"type": "machine_learning", "grid": {"a": [1]}}, "script", "fit_score"),
    ({"type": "machine_learning", "script": "def fit_score(train, test, params):\n    return 1\n"}, "grid",
     "needs a grid"),
    ({"pipeline": {"filter": [{"column": "distance", "op": "in", "value": [float("nan"), 1]}]}},
     "pipeline.filter[0].value", "is_null"),
    ({"pipeline": {"filter": [{"column": "distance", "op": "not_in", "value": [float("inf")]}]}},
     "pipeline.filter[0].value", "finite"),
    ({"pipeline": {"filter": [{"column": "distance", "op": "==", "value": float("nan")}]}},
     "pipeline.filter[0].value", "is_null"),
])
def test_specs_that_do_nothing_or_compare_with_nan_are_refused(spec, field, words):
    with pytest.raises(ValidationError) as err:
        parse_spec(json.dumps(spec))    # json.dumps writes NaN / Infinity, which json.loads reads back
    assert err.value.field == field and words in str(err.value)


def test_other_type_with_a_pipeline_or_script_runs_unsplit():
    spec = parse_spec({"type": "foo", "pipeline": {"columns": ["origin"]}})
    assert spec.runs_unsplit
    assert parse_spec({"type": "report", "script": "def process(df):\n    return df\n"}).runs_unsplit


def test_in_values_must_have_the_columns_type():
    spec = parse_spec({"pipeline": {"filter": [{"column": "distance", "op": "in", "value": [100, "200"]}]}})
    with pytest.raises(ValidationError) as err:
        validate_against_schema(spec, SCHEMA)
    assert err.value.field == "pipeline.filter[0].value" and '"200" does not match column' in str(err.value)


def test_contains_is_documented_as_literal_in_the_validation_help():
    with pytest.raises(ValidationError) as err:
        parse_spec({"pipeline": {"filter": [{"column": "origin", "op": "regex", "value": "J.K"}]}})
    assert err.value.field == "pipeline.filter[0].op" and "not as a regular expression" in str(err.value)
    spec = parse_spec({"pipeline": {"filter": [{"column": "origin", "op": "contains", "value": 5}]}})
    with pytest.raises(ValidationError) as err:
        validate_against_schema(spec, SCHEMA)
    assert err.value.field == "pipeline.filter[0].value" and "not as a regular expression" in str(err.value)


def test_contains_matches_literally(tmp_path):
    from tests.jobs_local import run_in_process

    data = tmp_path / "d.csv"
    data.write_text("tail,n\nN1.5,1\nN105,2\nXN1.,3\n")
    spec = {"pipeline": {"filter": [{"column": "tail", "op": "contains", "value": "N1."}]}}
    result, _ = run_in_process(spec, data, tmp_path)
    assert result["tail"].tolist() == ["N1.5", "XN1."]     # the regex N1. would also match N105


@pytest.mark.parametrize("memory_mb", [0, 64, 4096])
def test_memory_mb_zero_means_the_workers_limit_and_64_is_the_least(memory_mb):
    assert parse_spec({"memory_mb": memory_mb, "pipeline": {"columns": ["a"]}}).memory_mb == memory_mb
