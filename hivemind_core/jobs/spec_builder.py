"""Build a job spec (v1 JSON) from what a form collects: the upload page's
widgets give plain text and choices, this turns them into typed spec values
using the dataset's column types. Errors carry the spec field they concern,
so the page shows them next to that field.

Every job type is built here: ``data_processing`` (a pipeline or a
``process(df)`` script), ``machine_learning`` (a ``fit_score`` script with a
parameter grid) and ``simulation`` (a ``simulate`` script; no dataset). The
script templates a form starts from come from here too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hivemind_core.errors import ValidationError
from hivemind_core.jobs.encodings import text_encoding
from hivemind_core.jobs.spec import JobSpec

NO_VALUE_OPS = ("is_null", "not_null")
LIST_OPS = ("in", "not_in")
SCRIPT_TEMPLATE = '''import pandas as pd


def process(df: pd.DataFrame) -> pd.DataFrame:
    """Called once per shard of the data; return the rows you want in the result."""
    return df
'''
NUMERIC_TYPES = ("int", "float", "bool")
# The text encodings a form offers for CSV/TSV (label -> input.encoding; None: UTF-8, with or without BOM).
OTHER_ENCODING = "other…"
ENCODING_CHOICES: dict[str, str | None] = {
    "UTF-8 (default)": None,
    "latin-1 (ISO-8859-1)": "latin-1",
    "cp1252 (Windows, Western Europe)": "cp1252",
    "UTF-16": "utf-16",
    OTHER_ENCODING: None,
}
TEXT_FORMATS = ("csv", "tsv")   # the input formats that take an encoding (JSON is always UTF-8)
DEFAULT_GRID = (("alpha", "0.1, 1, 10"),)   # the parameter the ML templates use
DEFAULT_TRIALS = 100_000
# The per-subtask limits a form may set (spec fields; their defaults and allowed ranges are the spec's own).
LIMIT_FIELDS = ("timeout_s", "memory_mb", "max_attempts")
SIMULATION_TEMPLATE = '''import numpy as np


def simulate(rng: np.random.Generator, n: int) -> dict:
    """Run n trials with rng (each shard gets its own seed stream).

    Return {name: one outcome per trial}: the result has one row per name with
    count, sum, mean, std, var, min and max over all trials. Here: n random points
    in the unit square; 4 x (inside the quarter circle) estimates pi.
    """
    x, y = rng.random(n), rng.random(n)
    return {"pi": 4.0 * (x * x + y * y <= 1.0), "distance": np.hypot(x, y)}
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
class GridRow:
    name: str
    values: str = ""  # as typed, comma-separated: "0.1, 1, 10" or "mean, median"


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
    # machine_learning
    grid: list[GridRow] = field(default_factory=list)
    folds: int = 5
    seed: int = 0                                              # machine_learning and simulation
    target: str | None = None
    maximize: bool = True
    metric: str = ""                                           # empty: the first one fit_score returns
    # simulation
    trials: int = DEFAULT_TRIALS
    # the dataset's text encoding (CSV/TSV); None: UTF-8
    encoding: str | None = None
    # per-subtask limits (LIMIT_FIELDS); None: the spec's default (limit_defaults())
    timeout_s: float | None = None
    memory_mb: int | None = None
    max_attempts: int | None = None


def limit_defaults() -> dict[str, Any]:
    """What a spec that leaves out ``timeout_s``, ``memory_mb`` and ``max_attempts`` gets (the form's
    starting values); parse_spec checks the values a form sends, so the form repeats no range."""
    defaults = JobSpec()
    return {key: getattr(defaults, key) for key in LIMIT_FIELDS}


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


def _grid_item(text: str) -> int | float | bool | str | None:
    """One value as a number or true/false when it reads as one (None: it does not)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None   # "nan" / "inf" stay text


def grid_values(text: str, path: str) -> list[Any]:
    """The values of one grid parameter from the form's text.

    ``"0.1, 1, 10"`` gives numbers when every value reads as a number,
    ``"true, false"`` gives true/false, anything else stays text
    (``"mean, median"``). A JSON list (``["a,b", "c"]``) is taken as it is.
    """
    text = text.strip()
    if text.startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{path}: not a valid JSON list ({exc.msg}); or write the values "
                                  "separated by commas", field=path) from None
        if not isinstance(values, list):
            raise ValidationError(f"{path}: write the values separated by commas", field=path)
        return values
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValidationError(f"{path}: give the values to try, separated by commas (e.g. 0.1, 1, 10)",
                              field=path)
    numbers = [_grid_item(item) for item in items]
    if all(n is not None for n in numbers):
        return numbers
    if all(item.lower() in ("true", "false") for item in items):
        return [item.lower() == "true" for item in items]
    return items


def build_grid(rows: Sequence[GridRow]) -> dict[str, list[Any]]:
    """The ``grid`` of a machine_learning spec from the form's rows (blank rows are skipped)."""
    grid: dict[str, list[Any]] = {}
    for i, row in enumerate(rows):
        name = row.name.strip()
        if not name and not row.values.strip():
            continue
        if not name:
            raise ValidationError(f"grid: parameter {i + 1} has values but no name", field="grid")
        if name in grid:
            raise ValidationError(f"grid: parameter {name!r} is listed twice; give each parameter one row",
                                  field="grid")
        grid[name] = grid_values(row.values, f"grid.{name}")
    if not grid:
        raise ValidationError("grid: give at least one parameter with the values to try (e.g. alpha: 0.1, 1, 10)",
                              field="grid")
    return grid


@dataclass(frozen=True)
class MlTemplate:
    """A working ``fit_score`` script for a target column, with the metric it ranks by."""

    script: str
    metric: str
    maximize: bool


_ML_HEADER = '''import numpy as np
import pandas as pd

TARGET = {target}
FEATURES = {features}  # the numeric columns it is predicted from


def fit_score(train: pd.DataFrame, test: pd.DataFrame, params: dict) -> dict:
    """{summary}

    Called once per parameter combination of the grid (params) and fold; return
    a number or a dict of numbers (the metric named in the form ranks them).
    """
    fill = train[FEATURES].astype(float).mean().fillna(0.0)

    def design(df: pd.DataFrame) -> np.ndarray:
        x = df[FEATURES].astype(float).fillna(fill).to_numpy()
        return np.column_stack([np.ones(len(df)), x])

    x = design(train)
    ridge = x.T @ x + params["alpha"] * np.eye(x.shape[1])
'''
_ML_REGRESSION = '''    weights = np.linalg.solve(ridge, x.T @ train[TARGET].to_numpy(float))
    error = design(test) @ weights - test[TARGET].to_numpy(float)
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}
'''
_ML_CLASSIFIER = '''    classes, codes = np.unique(train[TARGET].astype(str).to_numpy(), return_inverse=True)
    weights = np.linalg.solve(ridge, x.T @ np.eye(len(classes))[codes])
    predicted = classes[np.argmax(design(test) @ weights, axis=1)]
    return {"accuracy": float(np.mean(predicted == test[TARGET].astype(str).to_numpy()))}
'''
_ML_NO_TARGET = '''import pandas as pd


def fit_score(train: pd.DataFrame, test: pd.DataFrame, params: dict) -> float:
    """Fit a model with params on train and return its score on test (or a dict of scores).

    Choose a target column in the form for a ready-made template.
    """
    raise NotImplementedError("write the model here")
'''


def default_target(types: Mapping[str, str]) -> str | None:
    """The column a new machine_learning form predicts: the last float column, else the last int one."""
    for wanted in ("float", "int"):
        found = [c for c, t in types.items() if t == wanted]
        if found:
            return found[-1]
    return next(iter(types), None)


def ml_template(target: str | None, types: Mapping[str, str]) -> MlTemplate:
    """A ridge model of ``target`` on the other numeric columns, tuned by the grid parameter ``alpha``:
    regression (rmse, lower is better) for a numeric target, else a classifier (accuracy)."""
    if target is None or target not in types:
        return MlTemplate(_ML_NO_TARGET, "", True)
    features = [c for c, t in types.items() if t in NUMERIC_TYPES and c != target]
    regression = types[target] in ("int", "float")
    summary = ("Ridge regression of TARGET on FEATURES: fit on train, score on test." if regression else
               "Ridge classifier of TARGET on FEATURES (a least-squares fit per class): fit on train, score on test.")
    head = _ML_HEADER.format(target=json.dumps(target), features=json.dumps(features), summary=summary)
    if regression:
        return MlTemplate(head + _ML_REGRESSION, "rmse", False)
    return MlTemplate(head + _ML_CLASSIFIER, "accuracy", True)


def output_columns(form: SpecForm, input_columns: Sequence[str]) -> list[str]:
    """The result's columns (what sort can refer to)."""
    if form.aggregate:
        return list(form.group_by) + [f"{c}_{a}" for c, aggs in form.aggregate.items() for a in aggs]
    return list(form.columns) if form.columns else list(input_columns)


def chosen_encoding(label: str, other: str = "") -> str | None:
    """The encoding a form's choice means (``other``: the name typed for OTHER_ENCODING);
    ValidationError (field input.encoding) for a name that is no text encoding."""
    if label == OTHER_ENCODING:
        if not other.strip():
            raise ValidationError("input.encoding: type the encoding's name, e.g. iso-8859-15, cp1250 or shift_jis",
                                  field="input.encoding")
        return text_encoding(other.strip())
    return ENCODING_CHOICES.get(label)


def build_spec(form: SpecForm, types: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The job spec for ``form`` over a dataset whose columns have ``types`` (None: no dataset, a simulation)."""
    types = types or {}
    spec: dict[str, Any] = {
        "version": 1,
        "name": form.name.strip(),
        "type": form.type,
        "priority": form.priority,
        "output": {"format": form.output_format},
    }
    if form.shards:
        spec["split"] = {"shards": form.shards}
    for key in LIMIT_FIELDS:
        if getattr(form, key) is not None:
            spec[key] = getattr(form, key)
    if form.encoding and form.type != "simulation":
        spec["input"] = {"encoding": form.encoding}
    if form.type == "machine_learning":
        return spec | _grid_search_fields(form, types)
    if form.type == "simulation":
        return spec | {"script": form.script, "trials": form.trials, "seed": form.seed}
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


def _grid_search_fields(form: SpecForm, types: Mapping[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {"script": form.script, "grid": build_grid(form.grid), "folds": form.folds,
                              "seed": form.seed, "maximize": bool(form.maximize)}
    if form.target:
        if form.target not in types:
            raise ValidationError(f"target: the data has no column {form.target!r}; choose one of its columns",
                                  field="target")
        fields["target"] = form.target
    if form.metric.strip():
        fields["metric"] = form.metric.strip()
    return fields
