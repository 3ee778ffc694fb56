"""The pipeline on one shard: filter -> columns -> (partial or final) group/aggregate.

Runs on workers, in pandas, so filter and aggregation semantics are pandas'
own. Three plans (chosen by the master, see :mod:`hivemind_core.jobs.plan`):

* ``partial`` — per-group partial state (count, sum, min, max, M2, size) that
  the master combines exactly (:mod:`hivemind_core.jobs.aggregate`);
* ``final``   — the whole answer for the groups in this shard (the shard holds
  whole groups: key-partitioned or unsplit);
* ``rows``    — filter and columns only; rows keep their input order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hivemind_core.jobs.spec import FilterSpec, PipelineSpec

ALL_KEY = "__all__"   # the one group of an aggregation without group_by
SIZE = "__size__"

# Which partial statistics each aggregation needs (per column).
_STATS_FOR = {
    "count": ("n",), "sum": ("sum",), "mean": ("sum", "n"), "min": ("min",), "max": ("max",),
    "std": ("n", "sum", "m2"), "var": ("n", "sum", "m2"), "size": (),
}


def stat_column(stat: str, column: str) -> str:
    return f"__{stat}__{column}"


def apply_filters(df: pd.DataFrame, filters: Sequence[FilterSpec]) -> pd.DataFrame:
    """Rows matching every filter (pandas comparison semantics: NaN == x is False, NaN != x is True)."""
    if not filters:
        return df
    mask = np.ones(len(df), dtype=bool)
    for f in filters:
        s = df[f.column]
        value = _coerce_value(s, f.value)
        if f.op == "==":
            m = s == value
        elif f.op == "!=":
            m = s != value
        elif f.op == "<":
            m = s < value
        elif f.op == "<=":
            m = s <= value
        elif f.op == ">":
            m = s > value
        elif f.op == ">=":
            m = s >= value
        elif f.op == "in":
            m = s.isin(value)
        elif f.op == "not_in":
            m = ~s.isin(value)
        elif f.op == "is_null":
            m = s.isna()
        elif f.op == "not_null":
            m = s.notna()
        elif f.op == "contains":
            m = s.str.contains(value, regex=False, na=False)
        else:  # parse_spec rejects these; kept for a clear error if params are hand-made
            raise ValueError(f"unknown filter operator {f.op!r}")
        mask &= np.asarray(m, dtype=bool)
    return df[mask]


def _coerce_value(s: pd.Series, value: object) -> object:
    """Datetime columns compare with timestamps given as ISO text (in the column's time zone)."""
    if not pd.api.types.is_datetime64_any_dtype(s.dtype) or value is None:
        return value

    def ts(v: object) -> pd.Timestamp:
        t = pd.Timestamp(v)
        tz = getattr(s.dtype, "tz", None)
        if tz is not None and t.tzinfo is None:
            return t.tz_localize(tz)
        if tz is None and t.tzinfo is not None:
            return t.tz_convert(None)
        return t

    return [ts(v) for v in value] if isinstance(value, list) else ts(value)


def select_columns(df: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    return df if columns is None else df[list(columns)]


def _grouped(df: pd.DataFrame, group_by: Sequence[str]):  # noqa: ANN202 - pandas GroupBy
    if group_by:
        return df.groupby(list(group_by), sort=True, dropna=True, observed=True), list(group_by)
    return df.assign(**{ALL_KEY: 0}).groupby(ALL_KEY, sort=True), [ALL_KEY]


def partial_state(df: pd.DataFrame, pipeline: PipelineSpec) -> pd.DataFrame:
    """Per group: the partial statistics the master needs to combine every aggregation exactly."""
    grouped, keys = _grouped(df, pipeline.group_by)
    named: dict[str, tuple[str, str]] = {}
    m2_columns = []
    for col, aggs in pipeline.aggregate:
        stats = {s for a in aggs for s in _STATS_FOR[a]}
        for stat in ("n", "sum", "min", "max"):
            if stat in stats:
                named[stat_column(stat, col)] = (col, "count" if stat == "n" else stat)
        if "m2" in stats:
            named[stat_column("var", col)] = (col, "var")
            m2_columns.append(col)
    named[SIZE] = (keys[0], "size")
    out = grouped.agg(**named)
    for col in m2_columns:
        n = out[stat_column("n", col)]
        var = out.pop(stat_column("var", col))
        # M2 = sum of squared deviations from the group mean = var(ddof=1) * (n - 1).
        out[stat_column("m2", col)] = np.where(n >= 2, var * (n - 1), 0.0)
    return out.reset_index()


def final_aggregate(df: pd.DataFrame, pipeline: PipelineSpec) -> pd.DataFrame:
    """The aggregation itself, in pandas, for a frame that holds whole groups."""
    names = pipeline.output_columns()[len(pipeline.group_by):]
    specs = [(col, agg) for col, aggs in pipeline.aggregate for agg in aggs]
    if not pipeline.group_by:
        values = {name: [getattr(df[col], agg)() if agg != "size" else len(df[col])]
                  for name, (col, agg) in zip(names, specs, strict=True)}
        return pd.DataFrame(values)
    grouped, _ = _grouped(df, pipeline.group_by)
    out = grouped.agg(**{name: (col, agg) for name, (col, agg) in zip(names, specs, strict=True)})
    return out.reset_index()


def order_and_limit(df: pd.DataFrame, pipeline: PipelineSpec) -> pd.DataFrame:
    """Apply ``sort`` (stable: ties keep their current order) and then ``limit``."""
    if pipeline.sort:
        df = df.sort_values(
            [s.column for s in pipeline.sort], ascending=[not s.descending for s in pipeline.sort],
            kind="stable", na_position="last",
        )
    if pipeline.limit is not None:
        df = df.head(pipeline.limit)
    return df.reset_index(drop=True)


def run_pipeline(df: pd.DataFrame, pipeline: PipelineSpec, plan: str) -> pd.DataFrame:
    """One shard through the pipeline under ``plan`` (partial | final | rows)."""
    df = select_columns(apply_filters(df, pipeline.filter), pipeline.columns)
    if plan == "partial":
        return partial_state(df, pipeline)
    if plan == "final":
        out = final_aggregate(df, pipeline)
        # whole groups here, so this shard's top `limit` already contains its share of the answer
        return order_and_limit(out, pipeline) if pipeline.limit is not None else out
    if plan == "rows":
        return order_and_limit(df, pipeline) if pipeline.limit is not None else df.reset_index(drop=True)
    raise ValueError(f"unknown plan {plan!r}")
