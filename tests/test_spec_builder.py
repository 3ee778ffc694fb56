"""The upload form's spec builder: typed filter values, field paths in errors,
and specs the job-spec parser accepts against a real dataset's schema."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hivemind_core.errors import ValidationError
from hivemind_core.jobs.readers import preview
from hivemind_core.jobs.spec import parse_spec, validate_against_schema
from hivemind_core.jobs.spec_builder import FilterRow, SortRow, SpecForm, build_spec, output_columns

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
