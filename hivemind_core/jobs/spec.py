"""Job spec v1: the one JSON format the UI builds, the REST API takes and the CLI reads.

Two checks, both before anything is stored or queued:

* :func:`parse_spec` — the spec on its own (shape, names, value ranges);
* :func:`validate_against_schema` — the spec against the dataset's columns and
  their types (unknown column, wrong value type, ``mean`` of a text column, ...).

Every problem raises :class:`~hivemind_core.errors.ValidationError` whose
``field`` is the JSON path of the offending field (``pipeline.filter[0].op``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hivemind_core.errors import ValidationError
from hivemind_core.jobs.encodings import text_encoding
from hivemind_core.jobs.fields import check_keys as _check_keys
from hivemind_core.jobs.fields import check_script
from hivemind_core.jobs.fields import choice as _choice
from hivemind_core.jobs.fields import fail as _fail
from hivemind_core.jobs.fields import obj as _obj
from hivemind_core.jobs.fields import text as _str
from hivemind_core.jobs.fields import whole as _int
from hivemind_core.jobs.job_types import (
    ML_FIELDS, SIMULATION_FIELDS, TYPE_FIELDS, GridSearchSpec, SimulationSpec, parse_grid_search, parse_simulation,
)
from hivemind_core.jobs.names import check_name

SPEC_VERSION = 1
JOB_TYPES = ("data_processing", "machine_learning", "simulation")
SPLIT_STRATEGIES = ("rows", "key", "unsplit")
INPUT_FORMATS = ("csv", "tsv", "parquet", "jsonl", "json")
OUTPUT_FORMATS = ("csv", "parquet", "json", "jsonl")
FILTER_OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not_in", "is_null", "not_null", "contains")
AGGREGATIONS = ("count", "size", "sum", "mean", "min", "max", "std", "var", "nunique", "median")
TYPE_NAMES = ("int", "float", "bool", "string", "datetime")
# Aggregations whose value cannot be combined from per-shard summaries: they need
# every row of a group on one worker (the key-partitioned plan).
WHOLE_GROUP_AGGREGATIONS = frozenset({"nunique", "median"})
MAX_SHARDS = 1024

_ALLOWED_AGGREGATIONS: dict[str, tuple[str, ...]] = {
    "int": AGGREGATIONS,
    "float": AGGREGATIONS,
    "bool": ("count", "size", "sum", "mean", "min", "max", "nunique"),
    "string": ("count", "size", "min", "max", "nunique"),
    "datetime": ("count", "size", "min", "max", "nunique"),
}
_NO_VALUE_OPS = frozenset({"is_null", "not_null"})
CONTAINS_HELP = ("matched literally as a piece of the text, not as a regular expression: \"N1.\" finds a "
                 "dot, unlike pandas' str.contains default")
_LIST_OPS = frozenset({"in", "not_in"})


def aggregations_for_type(type_name: str) -> list[str]:
    """The aggregations a column of ``type_name`` ("int", "string", ...) allows."""
    return list(_ALLOWED_AGGREGATIONS.get(type_name, ("count", "size", "nunique")))


@dataclass(frozen=True)
class FilterSpec:
    column: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class SortSpec:
    column: str
    descending: bool = False


@dataclass(frozen=True)
class PipelineSpec:
    filter: tuple[FilterSpec, ...] = ()
    columns: tuple[str, ...] | None = None
    group_by: tuple[str, ...] = ()
    aggregate: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (column, aggs) in spec order
    sort: tuple[SortSpec, ...] = ()
    limit: int | None = None

    @property
    def is_aggregation(self) -> bool:
        return bool(self.aggregate)

    def output_columns(self) -> list[str]:
        """Group keys, then ``<column>_<agg>`` in spec order (aggregations only)."""
        return list(self.group_by) + [f"{col}_{agg}" for col, aggs in self.aggregate for agg in aggs]

    def needs_whole_groups(self) -> bool:
        return any(a in WHOLE_GROUP_AGGREGATIONS for _, aggs in self.aggregate for a in aggs)

    def input_columns(self) -> list[str]:
        """Every input column the pipeline reads (so the splitter can ship only those)."""
        wanted: list[str] = [f.column for f in self.filter]
        if self.columns is not None:
            wanted += list(self.columns)
        wanted += list(self.group_by) + [col for col, _ in self.aggregate]
        return list(dict.fromkeys(wanted))


@dataclass(frozen=True)
class SplitSpec:
    shards: int | None = None         # None = chosen from the input size and worker slots
    strategy: str | None = None       # None = rows, or key when an aggregation needs whole groups


@dataclass(frozen=True)
class InputSpec:
    format: str | None = None         # None = from the file name / content
    delimiter: str | None = None      # None = detected
    encoding: str | None = None       # None = UTF-8 (with or without BOM)


# The smallest memory_mb a spec may ask for (0 = the worker's own limit). The limit is what a
# subtask may use beyond the sandbox child's loaded interpreter, pandas and pyarrow; measured:
# below 32 MB even a 3-row shard cannot be read (pyarrow cannot start its reader thread or map
# the file), 32 MB is too little for a 56,000-row shard of flights (3.4 MB), 64 MB reads it.
MIN_MEMORY_MB = 64


@dataclass(frozen=True)
class JobSpec:
    name: str = ""
    type: str = "data_processing"
    priority: int = 5
    max_attempts: int = 3
    split: SplitSpec = field(default_factory=SplitSpec)
    pipeline: PipelineSpec = field(default_factory=PipelineSpec)
    script: str | None = None
    input: InputSpec = field(default_factory=InputSpec)
    output_format: str = "csv"
    timeout_s: float = 600.0
    memory_mb: int = 0
    version: int = SPEC_VERSION
    grid_search: GridSearchSpec | None = None    # machine_learning jobs
    simulation: SimulationSpec | None = None     # simulation jobs

    @property
    def runs_unsplit(self) -> bool:
        """Types other than data_processing, and strategy "unsplit", use one shard."""
        return self.type != "data_processing" or self.split.strategy == "unsplit"

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data; ``parse_spec(spec.to_dict()) == spec``."""
        p = self.pipeline
        pipeline: dict[str, Any] = {}
        if p.filter:
            pipeline["filter"] = [
                {"column": f.column, "op": f.op} | ({} if f.op in _NO_VALUE_OPS else {"value": f.value})
                for f in p.filter
            ]
        if p.columns is not None:
            pipeline["columns"] = list(p.columns)
        if p.group_by:
            pipeline["group_by"] = list(p.group_by)
        if p.aggregate:
            pipeline["aggregate"] = {col: list(aggs) for col, aggs in p.aggregate}
        if p.sort:
            pipeline["sort"] = [{"column": s.column, "descending": s.descending} for s in p.sort]
        if p.limit is not None:
            pipeline["limit"] = p.limit
        out: dict[str, Any] = {
            "version": self.version,
            "name": self.name,
            "type": self.type,
            "priority": self.priority,
            "max_attempts": self.max_attempts,
            "split": {k: v for k, v in (("shards", self.split.shards), ("strategy", self.split.strategy)) if v is not None},
            "output": {"format": self.output_format},
            "timeout_s": self.timeout_s,
            "memory_mb": self.memory_mb,
        }
        inp = {k: v for k, v in vars(self.input).items() if v is not None}
        if inp:
            out["input"] = inp
        if pipeline:
            out["pipeline"] = pipeline
        if self.script is not None:
            out["script"] = self.script
        for part in (self.grid_search, self.simulation):
            if part is not None:
                out |= part.to_dict()
        return out


# --------------------------------------------------------------------------- parse


def _given(obj: Mapping[str, Any], key: str, default: Any) -> Any:
    """``obj[key]``, or ``default`` when it is missing or null (never for other empty or wrong values:
    those are checked, so ``"split": []`` is an error rather than silently nothing)."""
    value = obj.get(key)
    return default if value is None else value


def _column_list(raw: Any, path: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise _fail(path, "must be a list of column names")
    cols = tuple(_str(c, f"{path}[{i}]") for i, c in enumerate(raw))
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if dupes:
        raise _fail(path, f"column {dupes[0]!r} is listed twice")
    return cols


def _check_finite(value: Any, path: str) -> None:
    if isinstance(value, float) and math.isnan(value):
        raise _fail(path, "NaN is not a value to compare with; for missing values use the is_null / not_null "
                    "operators")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(path, "must be a finite number")


def _parse_filter(raw: Any, path: str) -> FilterSpec:
    obj = _obj(raw, path)
    _check_keys(obj, path, ("column", "op", "value"))
    if "column" not in obj:
        raise _fail(f"{path}.column", "is required")
    column = _str(obj["column"], f"{path}.column")
    op = obj.get("op")
    if op not in FILTER_OPS:
        raise _fail(f"{path}.op", f"{json.dumps(op)} is not one of: {', '.join(FILTER_OPS)} "
                    f"('contains' is {CONTAINS_HELP})")
    value = obj.get("value")
    if op in _NO_VALUE_OPS:
        if value is not None:
            raise _fail(f"{path}.value", f"operator {op!r} takes no value")
    elif "value" not in obj or value is None:
        raise _fail(f"{path}.value", f"operator {op!r} needs a value (use is_null / not_null for missing values)")
    elif op in _LIST_OPS:
        if not isinstance(value, list) or not value:
            raise _fail(f"{path}.value", f"operator {op!r} needs a non-empty list of values")
        for v in value:
            if isinstance(v, (list, dict)) or v is None:
                raise _fail(f"{path}.value", "list items must be plain values (number, text, true/false); "
                            "for missing values use the is_null / not_null operators")
            _check_finite(v, f"{path}.value")
    elif isinstance(value, (list, dict)):
        raise _fail(f"{path}.value", f"operator {op!r} needs a single value, got a {type(value).__name__}")
    else:
        _check_finite(value, f"{path}.value")
    return FilterSpec(column=column, op=op, value=value)


def parse_pipeline(raw: Any) -> PipelineSpec:
    """The ``pipeline`` part of a spec (workers get just this in their params)."""
    obj = _obj(raw, "pipeline")
    _check_keys(obj, "pipeline", ("filter", "columns", "group_by", "aggregate", "sort", "limit"))
    filters_raw = obj.get("filter", [])
    if not isinstance(filters_raw, list):
        raise _fail("pipeline.filter", "must be a list of {column, op, value} objects")
    filters = tuple(_parse_filter(f, f"pipeline.filter[{i}]") for i, f in enumerate(filters_raw))
    columns = _column_list(obj["columns"], "pipeline.columns") if obj.get("columns") is not None else None
    if columns == ():
        raise _fail("pipeline.columns", "must name at least one column (leave it out to keep all)")
    group_by = _column_list(_given(obj, "group_by", []), "pipeline.group_by")

    agg_obj = _obj(_given(obj, "aggregate", {}), "pipeline.aggregate")
    aggregate: list[tuple[str, tuple[str, ...]]] = []
    for col, aggs in agg_obj.items():
        path = f"pipeline.aggregate.{col}"
        if isinstance(aggs, str):
            aggs = [aggs]
        if not isinstance(aggs, list) or not aggs:
            raise _fail(path, "must be a non-empty list of aggregations, e.g. [\"mean\", \"count\"]")
        names = tuple(_choice(a, f"{path}[{i}]", AGGREGATIONS) for i, a in enumerate(aggs))
        if len(set(names)) != len(names):
            raise _fail(path, "lists the same aggregation twice")
        if col in group_by:
            raise _fail(path, f"{col!r} is a group_by column and cannot also be aggregated")
        aggregate.append((col, names))
    if group_by and not aggregate:
        raise _fail("pipeline.aggregate", "group_by needs at least one aggregation, e.g. {\"col\": [\"count\"]}")

    sort_raw = _given(obj, "sort", [])
    if isinstance(sort_raw, (str, Mapping)):
        sort_raw = [sort_raw]
    if not isinstance(sort_raw, list):
        raise _fail("pipeline.sort", "must be a list of {column, descending} objects")
    sort = []
    for i, s in enumerate(sort_raw):
        path = f"pipeline.sort[{i}]"
        if isinstance(s, str):
            s = {"column": s}
        s = _obj(s, path)
        _check_keys(s, path, ("column", "descending"))
        desc = s.get("descending", False)
        if not isinstance(desc, bool):
            raise _fail(f"{path}.descending", "must be true or false")
        sort.append(SortSpec(column=_str(s.get("column"), f"{path}.column"), descending=desc))
    limit = _int(obj["limit"], "pipeline.limit", 0) if obj.get("limit") is not None else None
    return PipelineSpec(filters, columns, group_by, tuple(aggregate), tuple(sort), limit)


# What the script of each job type must define: (function, its arguments, what it returns).
SCRIPT_FUNCTIONS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "data_processing": ("process", ("df",), "a DataFrame"),
    "machine_learning": ("fit_score", ("train", "test", "params"), "a score (a number or a dict of numbers)"),
    "simulation": ("simulate", ("rng", "n"), "a dict of per-trial numbers or a DataFrame"),
}


def _check_script(source: str, job_type: str) -> None:
    function, arguments, returns = SCRIPT_FUNCTIONS.get(job_type, SCRIPT_FUNCTIONS["data_processing"])
    check_script(source, function, arguments, returns)


def _type_fields(obj: Mapping[str, Any], job_type: str,
                 split: SplitSpec) -> tuple[GridSearchSpec | None, SimulationSpec | None]:
    """The type-specific fields; a field of another type is an error that says which type takes it."""
    own = {"machine_learning": ML_FIELDS, "simulation": SIMULATION_FIELDS}.get(job_type, ())
    for key in obj:
        if key in ML_FIELDS + SIMULATION_FIELDS and key not in own:
            takes = " and ".join(t for t, f in (("machine_learning", ML_FIELDS), ("simulation", SIMULATION_FIELDS))
                                 if key in f)
            raise _fail(key, f"only {takes} jobs take {key!r}; this job's type is {job_type!r}")
    if job_type in ("machine_learning", "simulation"):
        function, arguments, _ = SCRIPT_FUNCTIONS[job_type]
        if obj.get("script") is None:
            raise _fail("script", f"a {job_type} job needs a script defining {function}({', '.join(arguments)})")
        if obj.get("pipeline"):
            raise _fail("pipeline", f"a {job_type} job is described by its script; leave the pipeline out")
        if split.strategy is not None:
            raise _fail("split.strategy", f"a {job_type} job splits its own way; leave strategy out "
                        "(split.shards sets how many subtasks)")
    if job_type == "machine_learning":
        return parse_grid_search(obj), None
    if job_type == "simulation":
        simulation = parse_simulation(obj)
        if split.shards is not None and split.shards > simulation.trials:
            raise _fail("split.shards", f"{split.shards} shards for {simulation.trials} trials would leave "
                        "shards with nothing to do; use at most as many shards as trials")
        return None, simulation
    return None, None


def parse_spec(raw: dict | str | bytes | JobSpec) -> JobSpec:
    """Parse and check a job spec on its own (no dataset needed)."""
    if isinstance(raw, JobSpec):
        return raw
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            raise ValidationError(f"spec: not valid JSON{where}: {getattr(exc, 'msg', exc)}", field="spec") from None
    obj = _obj(raw, "spec")
    _check_keys(obj, "", ("version", "name", "type", "priority", "split", "max_attempts", "pipeline",
                          "script", "input", "output", "timeout_s", "memory_mb") + TYPE_FIELDS)
    version = obj.get("version", SPEC_VERSION)
    if version != SPEC_VERSION:
        raise _fail("version", f"this master understands spec version {SPEC_VERSION}, got {json.dumps(version)}")
    name = check_name(obj.get("name", ""))
    job_type = _str(obj.get("type", "data_processing"), "type")
    priority = _int(obj.get("priority", 5), "priority", 0, 9)
    max_attempts = _int(obj.get("max_attempts", 3), "max_attempts", 1, 20)

    split_obj = _obj(_given(obj, "split", {}), "split")
    _check_keys(split_obj, "split", ("shards", "strategy"))
    shards = _int(split_obj["shards"], "split.shards", 1, MAX_SHARDS) if split_obj.get("shards") is not None else None
    strategy = (_choice(split_obj["strategy"], "split.strategy", SPLIT_STRATEGIES)
                if split_obj.get("strategy") is not None else None)

    input_obj = _obj(_given(obj, "input", {}), "input")
    _check_keys(input_obj, "input", ("format", "delimiter", "encoding"))
    fmt = _choice(input_obj["format"], "input.format", INPUT_FORMATS) if input_obj.get("format") is not None else None
    delimiter = input_obj.get("delimiter")
    if delimiter is not None:
        if not isinstance(delimiter, str):
            raise _fail("input.delimiter", f"must be a single character in quotes such as \",\", \";\" or "
                        f"\"\\t\", got {json.dumps(delimiter)}")
        delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
        if len(delimiter) != 1 or delimiter in "\"\r\n":
            raise _fail("input.delimiter", "must be a single character such as \",\", \";\" or \"\\t\"")
    encoding = input_obj.get("encoding")
    if encoding is not None:
        encoding = text_encoding(_str(encoding, "input.encoding"))

    output_obj = _obj(_given(obj, "output", {}), "output")
    _check_keys(output_obj, "output", ("format",))
    output_format = _choice(output_obj.get("format", "csv"), "output.format", OUTPUT_FORMATS)

    timeout = obj.get("timeout_s", 600.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 86400:
        raise _fail("timeout_s", "must be a number of seconds greater than 0 and at most 86400 (24 h)")
    memory_mb = _int(obj.get("memory_mb", 0), "memory_mb", 0)
    if 0 < memory_mb < MIN_MEMORY_MB:
        raise _fail("memory_mb", f"must be 0 (the worker's own limit) or at least {MIN_MEMORY_MB} MB, got "
                                 f"{memory_mb}: a subtask needs about that much just to load its shard")

    grid_search, simulation = _type_fields(obj, job_type, SplitSpec(shards=shards, strategy=strategy))
    script = obj.get("script")
    has_pipeline = bool(_obj(_given(obj, "pipeline", {}), "pipeline"))   # {} = no pipeline
    if script is not None:
        _check_script(_str(script, "script"), job_type)
        if has_pipeline:
            raise _fail("script", "give either a pipeline or a script, not both")
    pipeline = parse_pipeline(obj["pipeline"]) if has_pipeline else PipelineSpec()
    if script is None and not has_pipeline:   # every other type runs unsplit, but it must do something
        raise _fail("pipeline", f"a {job_type} job needs a pipeline or a script defining process(df); "
                    "with neither there is nothing to do")

    spec = JobSpec(
        name=name, type=job_type, priority=priority, max_attempts=max_attempts,
        split=SplitSpec(shards=shards, strategy=strategy), pipeline=pipeline, script=script,
        input=InputSpec(format=fmt, delimiter=delimiter, encoding=encoding),
        output_format=output_format, timeout_s=float(timeout), memory_mb=memory_mb,
        grid_search=grid_search, simulation=simulation,
    )
    _check_plan(spec)
    return spec


def _check_plan(spec: JobSpec) -> None:
    p = spec.pipeline
    if p.needs_whole_groups() and not p.group_by and not spec.runs_unsplit:
        agg = next(a for _, aggs in p.aggregate for a in aggs if a in WHOLE_GROUP_AGGREGATIONS)
        raise _fail("pipeline.group_by", f"{agg!r} over the whole dataset needs a group_by column to be "
                    "computed in parallel; add one or set split.strategy to \"unsplit\"")
    if p.needs_whole_groups() and spec.split.strategy == "rows":
        raise _fail("split.strategy", "nunique and median need whole groups on one worker; "
                    "use \"key\" (or leave strategy out)")
    if spec.split.strategy == "key" and not p.group_by:
        raise _fail("split.strategy", "\"key\" partitions by the group_by columns; the pipeline has none")
    outputs = p.output_columns() if p.is_aggregation else None
    for i, s in enumerate(p.sort):
        if outputs is not None and s.column not in outputs:
            raise _fail(f"pipeline.sort[{i}].column",
                        f"{s.column!r} is not a result column; sort by one of: {', '.join(outputs)}")
    dupes = [c for c in (outputs or []) if (outputs or []).count(c) > 1]
    if dupes:
        raise _fail("pipeline.aggregate", f"two result columns would both be named {dupes[0]!r}")


# --------------------------------------------------------------------------- schema


def _value_fits(value: Any, type_name: str) -> bool:
    if type_name in ("int", "float"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "datetime":
        if not isinstance(value, str):
            return False
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    return False


_VALUE_HINT = {
    "int": "a number", "float": "a number", "bool": "true or false",
    "string": "a text value in quotes", "datetime": "an ISO date/time text such as \"2013-01-31T08:00:00\"",
}


def validate_against_schema(spec: JobSpec, schema: Mapping[str, str]) -> None:
    """Check ``spec`` against the dataset's columns (column -> type name)."""
    known = ", ".join(schema)

    def need(column: str, path: str) -> str:
        if column not in schema:
            raise _fail(path, f"unknown column {column!r}; the dataset has: {known}")
        return schema[column]

    if spec.grid_search is not None and spec.grid_search.target is not None:
        need(spec.grid_search.target, "target")
    p = spec.pipeline
    for i, f in enumerate(p.filter):
        path = f"pipeline.filter[{i}]"
        type_name = need(f.column, f"{path}.column")
        if f.op in _NO_VALUE_OPS:
            continue
        if f.op == "contains":
            if type_name != "string":
                raise _fail(f"{path}.op", f"'contains' works on text columns; {f.column!r} is {type_name}")
            if not isinstance(f.value, str):
                raise _fail(f"{path}.value", f"'contains' needs a text value ({CONTAINS_HELP})")
            continue
        values = f.value if f.op in _LIST_OPS else [f.value]
        for v in values:
            if not _value_fits(v, type_name):
                raise _fail(f"{path}.value", f"{json.dumps(v)} does not match column {f.column!r} of type "
                            f"{type_name}; give {_VALUE_HINT.get(type_name, 'a matching value')}")
    available = set(schema)
    if p.columns is not None:
        for i, c in enumerate(p.columns):
            need(c, f"pipeline.columns[{i}]")
        available = set(p.columns)

    def selected(column: str, path: str) -> str:
        type_name = need(column, path)
        if column not in available:
            raise _fail(path, f"column {column!r} is not in pipeline.columns; add it there")
        return type_name

    for i, c in enumerate(p.group_by):
        selected(c, f"pipeline.group_by[{i}]")
    for col, aggs in p.aggregate:
        path = f"pipeline.aggregate.{col}"
        type_name = selected(col, path)
        allowed = aggregations_for_type(type_name)
        for agg in aggs:
            if agg not in allowed:
                raise _fail(path, f"{agg!r} cannot be computed on {type_name} column {col!r}; "
                            f"allowed here: {', '.join(allowed)}")
    if not p.is_aggregation:
        names = list(p.columns) if p.columns is not None else list(schema)
        for i, s in enumerate(p.sort):
            if s.column not in names:
                raise _fail(f"pipeline.sort[{i}].column", f"unknown column {s.column!r}; the result has: "
                            f"{', '.join(names)}")
