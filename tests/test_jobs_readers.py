"""Readers and splitter: formats, delimiters, encodings, quoting, clear errors,
and one schema for every shard (types widened before anything is queued)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from hivemind_core.errors import ValidationError
from hivemind_core.jobs import readers
from hivemind_core.jobs.readers import detect_format, open_source, preview, to_pandas
from hivemind_core.jobs.results import read_ipc
from hivemind_core.jobs.spec import parse_spec
from hivemind_core.jobs.splitter import default_shard_count, split_task

ROWS_SPEC = parse_spec({"pipeline": {"filter": [{"column": "a", "op": "not_null"}]}, "split": {"shards": 4}})


def shard_frames(path: Path, tmp: Path, spec=ROWS_SPEC) -> tuple[list[pd.DataFrame], object]:  # noqa: ANN001
    split = split_task(spec, open_source(path), tmp / "staging", slots=2)
    schemas = {read_ipc(s.path).schema for s in split.shards}
    assert len(schemas) == 1, "every shard must have the same schema"
    return [to_pandas(read_ipc(s.path), split.float_columns()) for s in split.shards], split


@pytest.mark.parametrize("delimiter,name", [(",", "d.csv"), (";", "d.csv"), ("\t", "d.tsv"), ("|", "d.txt")])
def test_delimiter_detected(tmp_path, delimiter, name):
    path = tmp_path / name
    path.write_text(delimiter.join(["a", "b", "c"]) + "\n" + "\n".join(
        delimiter.join([str(i), f"x{i}", f"{i}.5"]) for i in range(50)) + "\n")
    df, types = preview(path, n=5)
    assert list(df.columns) == ["a", "b", "c"] and len(df) == 5
    assert types == {"a": "int", "b": "string", "c": "float"}


def test_delimiter_given_explicitly(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a:b\n1:2\n3:4\n")
    df, _ = preview(path, delimiter=":")
    assert df.to_dict("list") == {"a": [1, 3], "b": [2, 4]}


def test_utf8_bom_and_quoted_fields_with_delimiters_quotes_newlines(tmp_path):
    text = 'name,quote,n\n"Smith, J.","He said ""hi""\nand left",1\nplain,"",2\n"Ünïcode",x,3\n'
    path = tmp_path / "q.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    frames, _ = shard_frames(path, tmp_path, parse_spec({"pipeline": {"columns": ["name", "quote", "n"]}}))
    got = pd.concat(frames, ignore_index=True)
    expected = pd.read_csv(path, encoding="utf-8-sig")
    pd.testing.assert_frame_equal(got, expected)
    assert got.loc[0, "quote"] == 'He said "hi"\nand left'


def test_other_encoding_given_and_error_without_it(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("city,n\nZürich,1\nKöln,2\n".encode("latin-1"))
    with pytest.raises(ValidationError) as err:
        open_source(path)
    assert err.value.field == "input.encoding" and "not valid UTF-8" in str(err.value)
    df, types = preview(path, encoding="latin-1")
    assert df["city"].tolist() == ["Zürich", "Köln"] and types["n"] == "int"


def test_undecodable_bytes_after_the_sample_are_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "SAMPLE_BYTES", 4096)
    path = tmp_path / "late.csv"
    path.write_bytes(b"name,n\n" + b"abc,1\n" * 2000 + "Zürich,2\n".encode("latin-1"))
    with pytest.raises(ValidationError) as err:
        shard_frames(path, tmp_path, parse_spec({"pipeline": {"columns": ["name", "n"]}}))
    assert "UTF-8" in str(err.value) and err.value.field == "input.encoding"


@pytest.mark.parametrize("content,words", [
    (b"", "empty"),
    (b"a,b\n", "no data rows"),
    (b"\n\n  \n", "no text"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
])
def test_unusable_files(tmp_path, content, words):
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    with pytest.raises(ValidationError) as err:
        open_source(path)
    assert words in str(err.value)


def test_int_column_meeting_floats_late_is_float_in_every_shard(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "SAMPLE_BYTES", 2048)
    monkeypatch.setattr(readers, "STREAM_BLOCK_BYTES", 4096)
    path = tmp_path / "widen.csv"
    lines = ["a,b,c"] + [f"{i},{i},x{i}" for i in range(3000)] + ["2.5,oops,y"]
    path.write_text("\n".join(lines) + "\n")
    assert open_source(path).type_names() == {"a": "int", "b": "int", "c": "string"}   # the sample's view
    frames, split = shard_frames(path, tmp_path)
    assert split.type_names() == {"a": "float", "b": "string", "c": "string"}
    assert len(frames) >= 4 and all(f.dtypes.equals(frames[0].dtypes) for f in frames)
    whole = pd.concat(frames, ignore_index=True)
    expected = pd.read_csv(path)
    assert whole["a"].tolist() == expected["a"].tolist() and whole["b"].tolist() == expected["b"].tolist()


def test_int_column_with_gaps_somewhere_is_float_everywhere(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("a,k\n" + "".join(f"{i},{i % 3}\n" for i in range(400)) + ",1\n")
    frames, split = shard_frames(path, tmp_path)
    assert split.float_columns() == ["a"]
    assert all(str(f["a"].dtype) == "float64" for f in frames)   # as pd.read_csv types the whole file
    assert all(str(f["k"].dtype) == "int64" for f in frames)


def test_formats_detected_and_read(tmp_path):
    df = pd.DataFrame({"a": [1, 2, 3], "s": ["x", None, "z"], "f": [0.5, None, 1.5]})
    df.to_parquet(tmp_path / "d.parquet")
    df.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    (tmp_path / "noext").write_bytes((tmp_path / "d.parquet").read_bytes())
    assert detect_format(tmp_path / "d.parquet") == "parquet"
    assert detect_format(tmp_path / "noext") == "parquet"
    assert detect_format(tmp_path / "d.jsonl") == "jsonl"
    for name in ("d.parquet", "d.jsonl"):
        got, types = preview(tmp_path / name)
        assert types == {"a": "int", "s": "string", "f": "float"}
        assert got["a"].tolist() == [1, 2, 3] and got["s"].isna().tolist() == [False, True, False]


def test_key_split_keeps_each_group_in_one_shard(tmp_path):
    path = tmp_path / "k.csv"
    path.write_text("g,v\n" + "".join(f"g{i % 37},{i}\n" for i in range(5000)) + ",1\n")
    spec = parse_spec({"pipeline": {"group_by": ["g"], "aggregate": {"v": ["median"]}}, "split": {"shards": 6}})
    frames, split = shard_frames(path, tmp_path, spec)
    assert split.strategy == "key" and split.total_rows == 5001
    seen: dict[str, int] = {}
    for i, f in enumerate(frames):
        for g in f["g"].dropna().unique():
            assert seen.setdefault(g, i) == i, f"group {g} is in two shards"
        assert f.loc[f["g"].notna(), "v"].is_monotonic_increasing   # input order kept within a shard
    assert len(seen) == 37


def test_only_needed_columns_are_shipped(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("a,b,c,d\n1,2,3,4\n5,6,7,8\n")
    spec = parse_spec({"pipeline": {"filter": [{"column": "d", "op": ">", "value": 0}],
                                    "group_by": ["a"], "aggregate": {"b": ["sum"]}}})
    split = split_task(spec, open_source(path), tmp_path / "st", slots=1)
    assert read_ipc(split.shards[0].path).schema.names == ["a", "b", "d"]


def test_default_shard_count_is_a_few_per_slot_and_bounds_shard_size():
    assert default_shard_count(10_000, 4) == 12
    assert default_shard_count(10 * 2**30, 2) == 160    # 10 GiB: at most 64 MiB of input per shard
    assert default_shard_count(1, 0) == 3


def test_nested_parquet_column_is_rejected(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1], "l": [[1, 2]]}), tmp_path / "n.parquet")
    with pytest.raises(ValidationError) as err:
        open_source(tmp_path / "n.parquet")
    assert "'l'" in str(err.value)


def test_date_like_text_stays_text_as_in_read_csv(tmp_path):
    """pd.read_csv parses no dates by default: filter-only output is byte-identical and
    min/max compare the strings, as pandas does on the frame it reads."""
    from tests.jobs_local import run_in_process

    path = tmp_path / "dates.csv"
    path.write_text("time_hour,day,clock,n\n" + "".join(
        f"2013-0{1 + i % 3}-0{1 + i % 7}T{i % 24:02d}:00:00Z,2013-01-{1 + i % 28:02d},{i % 24:02d}:30:00,{i}\n"
        for i in range(200)))
    _, types = preview(path)
    assert types == {"time_hour": "string", "day": "string", "clock": "string", "n": "int"}
    spec = {"pipeline": {"filter": [{"column": "n", "op": ">=", "value": 10}]}, "split": {"shards": 3}}
    out, _ = run_in_process(spec, path, tmp_path / "rows")
    written = (tmp_path / "rows" / "result.csv").read_text()
    expected = pd.read_csv(path)
    assert written == expected[expected.n >= 10].to_csv(index=False)
    pd.testing.assert_frame_equal(out, expected[expected.n >= 10].reset_index(drop=True))
    agg = {"pipeline": {"group_by": ["clock"], "aggregate": {"time_hour": ["min", "max"], "day": ["max"]}},
           "split": {"shards": 3}}
    got, _ = run_in_process(agg, path, tmp_path / "agg")
    want = expected.groupby("clock").agg(time_hour_min=("time_hour", "min"), time_hour_max=("time_hour", "max"),
                                         day_max=("day", "max")).reset_index()
    pd.testing.assert_frame_equal(got, want)


def test_parquet_timestamps_stay_timestamps(tmp_path):
    df = pd.DataFrame({"t": pd.to_datetime(["2013-01-01T10:00:00Z", "2013-01-02T11:00:00Z", None]), "n": [1, 2, 3]})
    df.to_parquet(tmp_path / "t.parquet")
    got, types = preview(tmp_path / "t.parquet")
    assert types["t"] == "datetime"
    pd.testing.assert_series_equal(got["t"], pd.read_parquet(tmp_path / "t.parquet")["t"], check_dtype=False)


def _jsonl(path: Path, records: list[dict]) -> Path:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_jsonl_number_column_turning_to_text_late_widens_like_csv(tmp_path, monkeypatch):
    """A number column meeting text after the sample becomes text in every shard (as for CSV)."""
    monkeypatch.setattr(readers, "SAMPLE_BYTES", 4096)
    monkeypatch.setattr(readers, "STREAM_BLOCK_BYTES", 4096)
    records = [{"k": i % 3, "v": i, "f": i / 4} for i in range(3000)]
    records += [{"k": 1, "v": "abc", "f": 2.5}, {"k": 2, "v": 7, "f": None}]
    path = _jsonl(tmp_path / "mix.jsonl", records)
    assert open_source(path).type_names() == {"k": "int", "v": "int", "f": "float"}
    frames, split = shard_frames(path, tmp_path, parse_spec({"pipeline": {"columns": ["k", "v", "f"]},
                                                             "split": {"shards": 4}}))
    assert split.type_names() == {"k": "int", "v": "string", "f": "float"}
    whole = pd.concat(frames, ignore_index=True)
    assert whole["v"].tolist() == [str(r["v"]) for r in records]          # numbers as written, then the text
    assert whole["k"].tolist() == [r["k"] for r in records]
    assert whole["f"].tolist()[:-1] == [r["f"] for r in records][:-1] and pd.isna(whole["f"].iloc[-1])


def test_jsonl_text_then_numbers_inside_the_sample_is_text(tmp_path):
    path = _jsonl(tmp_path / "m.jsonl", [{"v": "x"}, {"v": 1}, {"v": 2.50}, {"v": True}, {"v": None}])
    df, types = preview(path)
    assert types == {"v": "string"}
    assert df["v"].tolist()[:4] == ["x", "1", "2.5", "true"] and pd.isna(df["v"].iloc[4])


def test_jsonl_bad_line_names_the_real_line_number(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "SAMPLE_BYTES", 2048)
    monkeypatch.setattr(readers, "STREAM_BLOCK_BYTES", 2048)
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(f'{{"a": {i}}}\n' for i in range(1, 5000)) + '{"a": 5000, oops}\n{"a": 1}\n')
    with pytest.raises(ValidationError) as err:
        shard_frames(path, tmp_path)
    assert "line 5000" in str(err.value) and "not valid JSON" in str(err.value)
    nested = _jsonl(tmp_path / "n.jsonl", [{"a": 1}] * 3 + [{"a": {"b": 2}}])
    with pytest.raises(ValidationError, match=r"line 4: column 'a' holds a nested object"):
        open_source(nested)


def test_json_array_of_objects_is_read_streaming(tmp_path, monkeypatch):
    """What output.format json writes reads back as input (and so does a compact one-line array)."""
    from hivemind_core.jobs.results import ResultWriter

    monkeypatch.setattr(readers, "STREAM_BLOCK_BYTES", 1024)
    monkeypatch.setattr(json_input_module(), "CHUNK_CHARS", 100)   # objects cut across chunk edges
    frame = pd.DataFrame({"carrier": [f"C{i % 7}" for i in range(500)], "n": range(500),
                          "x": [i / 3 if i % 5 else None for i in range(500)], "ok": [i % 2 == 0 for i in range(500)]})
    with ResultWriter(tmp_path / "written.json", "json") as writer:
        writer.write(frame.iloc[:200])
        writer.write(frame.iloc[200:])
    compact = tmp_path / "compact.json"
    compact.write_text(frame.to_json(orient="records"))
    for path in (tmp_path / "written.json", compact):
        assert detect_format(path) == "json"
        frames, split = shard_frames(path, tmp_path, parse_spec({"pipeline": {"columns": ["carrier", "n", "x", "ok"]},
                                                                 "split": {"shards": 3}}))
        assert split.type_names() == {"carrier": "string", "n": "int", "x": "float", "ok": "bool"}
        assert len(frames) >= 3
        pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), pd.read_json(path), check_dtype=False)


@pytest.mark.parametrize("text,words", [
    ('[{"a": 1}, {"a": 2} x', "line 1: expected ',' or ']'"),
    # a file that ends inside the array says so, with where it ends (not what item was expected)
    ('[{"a": 1}, {"a": 2}', "line 1: the JSON is incomplete: the file ends at column 20 before the array is closed"),
    ("[", "line 1: the JSON is incomplete: the file ends at column 2 before the array is closed with ]"),
    ("[\n", "line 2: the JSON is incomplete: the file ends at column 1"),
    ('[{"a": 1},\n', "line 2: the JSON is incomplete"),
    ('[{"a": 1},\n{"b": ', "line 2: the JSON is incomplete: the file ends at column 7"),
    ('[{"a": 1},\n 5]', "line 2: each item of the JSON array must be an object"),
    ('[{"a": 1}]\n[{"a": 2}]', "line 2: unexpected text after the closing ]"),
    ('[{"a": 1},\n{"a": 2,,}]', "line 2: not valid JSON"),
])
def test_json_array_errors_name_the_line(tmp_path, text, words):
    path = tmp_path / "d.json"
    path.write_text(text)
    with pytest.raises(ValidationError) as err:
        shard_frames(path, tmp_path)
    assert words in str(err.value)


def json_input_module():
    from hivemind_core.jobs import json_input

    return json_input


def _split_error(path: Path, tmp: Path, encoding: str | None) -> ValidationError:
    spec = parse_spec({"input": {"encoding": encoding} if encoding else {}, "pipeline": {"columns": ["name", "n"]}})
    with pytest.raises(ValidationError) as err:
        split_task(spec, open_source(path, encoding=spec.input.encoding), tmp / "st", slots=1)
    assert err.value.field == "input.encoding" and "\n" not in str(err.value)
    return err.value


@pytest.mark.parametrize("encoding", ["cp1252", "ascii", "utf-8", None])
def test_decoding_error_far_down_names_encoding_byte_offset_and_line(tmp_path, encoding):
    """Past the sample the codec runs inside pyarrow's reader; the error still says where."""
    path = tmp_path / "late.csv"
    head = b"name,n\n" + b"abc,1\n" * 400_000      # 2.4 MB: well past the 1 MiB sample
    path.write_bytes(head + b"Z\x81rich,2\n")
    message = str(_split_error(path, tmp_path, encoding))
    assert f"byte offset {len(head) + 1}" in message and "line 400002" in message
    assert (f"cannot be decoded as {encoding}" if encoding else "not valid UTF-8") in message


def test_utf16_with_bom_reads_and_without_bom_is_one_line(tmp_path):
    good = tmp_path / "u16.csv"
    good.write_bytes("name,n\nZürich,1\nKöln,2\n".encode("utf-16"))
    df, _ = preview(good, encoding="utf-16")
    assert df["name"].tolist() == ["Zürich", "Köln"]
    bad = tmp_path / "latin.csv"
    bad.write_bytes("name,n\nZürich,1\n".encode("latin-1"))
    message = str(_split_error(bad, tmp_path, "utf-16"))
    assert "cannot be decoded as utf-16" in message and "BOM" in message
