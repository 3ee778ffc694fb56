"""Build a job spec (v1 JSON) from what a form collects: the upload page's
widgets give plain text and choices, this turns them into typed spec values
using the dataset's column types. Errors carry the spec field they concern,
so the page shows them next to that field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hivemind_core.errors import ValidationError

NO_VALUE_OPS = ("is_null", "not_null")
LIST_OPS = ("in", "not_in")
SCRIPT_TEMPLATE = '''import pandas as pd


def process(df: pd.DataFrame) -> pd.DataFrame:
    """Called once per shard of the data; return the rows you want in the result."""
    return df
'''


@dataclass
class FilterRow:
    column: str
    op: str
    value: str = ""   # as typed; comma-separated for in / not_in


@dataclass
class SortRow:
    column: str
    descending: bool = False


@dataclass
class SpecForm:
    name: str = ""
    type: str = "data_processing"
    mode: Literal["pipeline", "script"] = "pipeline"
    filters: list[FilterRow] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)          # empty: all columns
    group_by: list[str] = field(default_factory=list)
    aggregate: dict[str, list[str]] = field(default_factory=dict)
    sort: list[SortRow] = field(default_factory=list)
    limit: int | None = None
    shards: int | None = None                                  # None: chosen automatically
    priority: int = 5
    output_format: str = "csv"
    script: str = ""


def _scalar(text: str, type_name: str, path: str) -> Any:
    text = text.strip()
    if type_name == "int":
        try:
            return int(text)
        except ValueError:
            try:  # 2.0 is fine for an int column; 2.5 is compared as a number too
                number = float(text)
            except ValueError:
                raise ValidationError(f"{path}: {text!r} is not a number (the column holds whole numbers).",
                                      field=path) from None
            return int(number) if number.is_integer() else number
    if type_name == "float":
        try:
            return float(text)
        except ValueError:
            raise ValidationError(f"{path}: {text!r} is not a number.", field=path) from None
    if type_name == "bool":
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValidationError(f"{path}: write true or false, not {text!r}.", field=path)
    return text  # string and datetime (ISO text) stay text


def filter_value(row: FilterRow, type_name: str, path: str) -> Any:
    """The typed value of one filter row (None for is_null / not_null)."""
    if row.op in NO_VALUE_OPS:
        return None
    if not row.value.strip():
        raise ValidationError(f"{path}: operator {row.op!r} needs a value.", field=path)
    if row.op in LIST_OPS:
        items = [item for item in row.value.split(",") if item.strip()]
        return [_scalar(item, type_name, path) for item in items]
    if row.op == "contains":
        return row.value
    return _scalar(row.value, type_name, path)


def output_columns(form: SpecForm, input_columns: Sequence[str]) -> list[str]:
    """The result's columns (what sort can refer to)."""
    if form.aggregate:
        return list(form.group_by) + [f"{c}_{a}" for c, aggs in form.aggregate.items() for a in aggs]
    return list(form.columns) if form.columns else list(input_columns)


def build_spec(form: SpecForm, types: Mapping[str, str]) -> dict[str, Any]:
    """The job spec for ``form`` over a dataset whose columns have ``types``."""
    spec: dict[str, Any] = {
        "version": 1,
        "name": form.name.strip(),
        "type": form.type,
        "priority": form.priority,
        "output": {"format": form.output_format},
    }
    if form.shards:
        spec["split"] = {"shards": form.shards}
    if form.mode == "script":
        spec["script"] = form.script
        return spec
    pipeline: dict[str, Any] = {}
    filters = []
    for i, row in enumerate(form.filters):
        path = f"pipeline.filter[{i}].value"
        entry: dict[str, Any] = {"column": row.column, "op": row.op}
        if row.op not in NO_VALUE_OPS:
            entry["value"] = filter_value(row, types.get(row.column, "string"), path)
        filters.append(entry)
    if filters:
        pipeline["filter"] = filters
    if form.columns and not form.aggregate:
        pipeline["columns"] = list(form.columns)
    if form.group_by:
        pipeline["group_by"] = list(form.group_by)
    if form.aggregate:
        pipeline["aggregate"] = {col: list(aggs) for col, aggs in form.aggregate.items() if aggs}
    if form.sort:
        pipeline["sort"] = [{"column": s.column, "descending": bool(s.descending)} for s in form.sort]
    if form.limit:
        pipeline["limit"] = form.limit
    if pipeline:
        spec["pipeline"] = pipeline
    return spec
