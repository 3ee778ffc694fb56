"""Exact combine of per-shard partial results at the master.

``partial`` plan: every shard sends, per group, the non-null count ``n``, the
``sum``, ``min``, ``max``, the group ``size`` and ``M2`` (sum of squared
deviations from the shard's group mean). Combined per group:

* count, size, sum: sums of the parts (ints stay exact ints);
* min, max: min/max of the parts (NaN skipped);
* mean = total sum / total n — never the mean of shard means;
* var/std: M2 = sum(M2_i) + sum(n_i * (mean_i - mean)^2) over the shards
  (Chan et al.'s parallel merge, all shards at once), var = M2 / (n - 1),
  std = sqrt(var) (pandas' ddof=1; NaN when n < 2).

``final`` plan (key-partitioned / unsplit): shards hold whole groups and send
the answer for them; the master only concatenates and orders.

Both then order groups by key (pandas' ``groupby(sort=True)``), apply ``sort``
(stable) and ``limit``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from hivemind_core.jobs.pipeline import ALL_KEY, SIZE, order_and_limit, stat_column
from hivemind_core.jobs.spec import PipelineSpec


def _non_empty(parts: Iterable[pd.DataFrame]) -> list[pd.DataFrame]:
    parts = list(parts)
    full = [p for p in parts if len(p)]
    return full or parts[:1]


def combine_partials(parts: Iterable[pd.DataFrame], pipeline: PipelineSpec) -> pd.DataFrame:
    """The final aggregation from the shards' partial states (``partial`` plan)."""
    keys = list(pipeline.group_by) or [ALL_KEY]
    frames = _non_empty(parts)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=keys)
    m2_cols = [c for c, aggs in pipeline.aggregate if {"std", "var"} & set(aggs)]
    grouped = df.groupby(keys, sort=True, dropna=True)
    for col in m2_cols:
        n, s = stat_column("n", col), stat_column("sum", col)
        total_mean = grouped[s].transform("sum") / grouped[n].transform("sum")
        shard_mean = df[s] / df[n].where(df[n] > 0)
        dev = df[n] * (shard_mean - total_mean) ** 2
        df[stat_column("dev", col)] = dev.fillna(0.0)
        grouped = df.groupby(keys, sort=True, dropna=True)

    how: dict[str, str] = {SIZE: "sum"}
    for col, _ in pipeline.aggregate:
        for stat, fn in (("n", "sum"), ("sum", "sum"), ("min", "min"), ("max", "max"),
                         ("m2", "sum"), ("dev", "sum")):
            if stat_column(stat, col) in df.columns:
                how[stat_column(stat, col)] = fn
    totals = grouped.agg(how) if len(df) else df.set_index(keys)[list(how)]

    out = pd.DataFrame(index=totals.index)
    for col, aggs in pipeline.aggregate:
        for agg in aggs:
            out[f"{col}_{agg}"] = _finish(totals, col, agg)
    out = out.reset_index()
    if not pipeline.group_by:
        out = _whole_frame_row(out.drop(columns=[ALL_KEY]), pipeline)
    return out


def _finish(t: pd.DataFrame, col: str, agg: str) -> pd.Series:
    def st(stat: str) -> pd.Series:
        return t[stat_column(stat, col)]

    if agg == "count":
        return st("n").astype("int64")
    if agg == "size":
        return t[SIZE].astype("int64")
    if agg in ("sum", "min", "max"):
        return st(agg)
    n = st("n")
    if agg == "mean":
        return st("sum") / n.where(n > 0)
    var = (st("m2") + st("dev")) / (n - 1).where(n >= 2)
    return var if agg == "var" else np.sqrt(var)


def _whole_frame_row(out: pd.DataFrame, pipeline: PipelineSpec) -> pd.DataFrame:
    """An aggregation without group_by has exactly one row, even over zero rows (as pandas)."""
    if len(out):
        return out.reset_index(drop=True)
    row = {}
    for col, aggs in pipeline.aggregate:
        for agg in aggs:
            row[f"{col}_{agg}"] = 0 if agg in ("count", "size", "nunique") else (0.0 if agg == "sum" else np.nan)
    return pd.DataFrame([row])


def combine_finals(parts: Iterable[pd.DataFrame], pipeline: PipelineSpec) -> pd.DataFrame:
    """Concatenate whole-group answers (``final`` plan) in pandas' group order."""
    frames = _non_empty(parts)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=pipeline.output_columns())
    if pipeline.group_by:
        out = out.sort_values(list(pipeline.group_by), kind="stable").reset_index(drop=True)
    return out


def finish(df: pd.DataFrame, pipeline: PipelineSpec) -> pd.DataFrame:
    """Sort and limit, and the output columns in spec order."""
    df = order_and_limit(df, pipeline)
    if pipeline.is_aggregation:
        df = df[pipeline.output_columns()]
    return df
