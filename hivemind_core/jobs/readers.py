"""Streaming readers for CSV/TSV, Parquet and JSON Lines with one schema for all shards.

A :class:`TableSource` infers column types from a sample (pyarrow's inference on
the first block), then streams the whole file with exactly those types fixed. If
a later block does not fit (an int column meets ``2.5``, a number column meets
text) the stream raises :class:`SchemaWidened` carrying the source with that
column widened (int -> float -> string); the splitter starts again with it.
Because a type only ever widens, this ends, and every shard a job gets has the
same Arrow schema — a column is never int in one shard and float in another.

Type names shown to users and checked by the job spec: int, float, bool,
string, datetime. As in ``pd.read_csv`` (no ``parse_dates``), date-like text in
CSV/TSV/JSON stays text; only Parquet timestamp columns are datetime.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from hivemind_core.errors import ValidationError
from hivemind_core.jobs import json_input
from hivemind_core.jobs.encodings import decode_error

SAMPLE_BYTES = 1 << 20          # schema inference and sniffing look at the first MiB
STREAM_BLOCK_BYTES = 1 << 20    # CSV/JSON blocks while streaming: pyarrow reads ahead many blocks, so
                                # memory grows ~60x this (16 MiB blocks cost ~360 MB; 1 MiB ~100 MB)
PARQUET_BATCH_ROWS = 256_000
PREVIEW_RESTARTS = 8            # a preview reads the first rows again at most this often with wider types
# pandas' default NA strings, so a CSV means the same thing here as in pd.read_csv.
PANDAS_NA_VALUES = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]
TRUE_VALUES = ["True", "TRUE", "true"]
FALSE_VALUES = ["False", "FALSE", "false"]
_EXTENSIONS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "csv", ".parquet": "parquet",
    ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
}
_CSV_COLUMN_ERROR = re.compile(r"In CSV column #(\d+): .*conversion error to (\w+)")
_JSON_COLUMN_ERROR = re.compile(r"Column\(/([^)]*)\) changed from")


class SchemaWidened(Exception):  # noqa: N818 - a signal to restart, not an error for users
    """A later block needed a wider column type (or the JSON needs the Python reader);
    restart with :attr:`source`."""

    def __init__(self, source: TableSource, column: str) -> None:
        super().__init__(f"column {column!r} widened to {source.schema.field(column).type}" if column
                         else "reading the JSON again record by record")
        self.source = source
        self.column = column


def type_name(arrow_type: pa.DataType) -> str:
    """The user-facing name of a canonical Arrow type."""
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type) or pa.types.is_null(arrow_type):
        return "float"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_timestamp(arrow_type):
        return "datetime"
    return "string"


def _canonical(arrow_type: pa.DataType, text_dates: bool = False) -> pa.DataType:
    """The one type a column gets in every shard (int64, float64, bool, string, timestamp).

    ``text_dates``: the file is text (CSV/TSV/JSON): date-like values stay text, as
    ``pd.read_csv`` keeps them (it parses no dates unless asked), so results show
    them exactly as written. Parquet timestamps are real timestamps and stay so.
    """
    t = arrow_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_null(t):
        return pa.float64()   # an all-empty column is all-NaN floats, as in pandas
    if text_dates and (pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t)):
        return pa.string()
    if pa.types.is_boolean(t) or pa.types.is_timestamp(t):
        return t
    if pa.types.is_date(t):
        return pa.timestamp("ms")
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_time(t):
        return pa.string()
    if pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return t   # rejected by _check_supported
    return pa.string()


def _wider(arrow_type: pa.DataType) -> pa.DataType:
    if pa.types.is_integer(arrow_type):
        return pa.float64()
    return pa.string()


def _canonical_schema(schema: pa.Schema, text_dates: bool = False) -> pa.Schema:
    fields = []
    for f in schema:
        t = _canonical(f.type, text_dates)
        if pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
            raise ValidationError(f"input: column {f.name!r} has type {f.type}, which jobs cannot use; "
                                  "flatten it or store it as text", field="input")
        fields.append(pa.field(f.name, t))
    return pa.schema(fields)


def _check_names(names: Sequence[str]) -> list[str]:
    out = [n if n.strip() else f"Unnamed: {i}" for i, n in enumerate(names)]
    seen: set[str] = set()
    for n in out:
        if n in seen:
            raise ValidationError(f"input: the header names column {n!r} twice; column names must be unique",
                                  field="input")
        seen.add(n)
    return out


def _head(path: Path, n: int = SAMPLE_BYTES) -> bytes:
    with path.open("rb") as fh:
        return fh.read(n)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ValidationError(f"input: {path} is not a file", field="input")
    if path.stat().st_size == 0:
        raise ValidationError("input: the file is empty; upload a file with a header row and data rows",
                              field="input")


def detect_format(path: Path | str, name: str | None = None) -> str:
    """csv | tsv | parquet | jsonl | json (an array of objects), from the file name, else the content."""
    path = Path(path)
    _check_file(path)
    head = _head(path, 4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    ext = Path(name or path.name).suffix.lower()
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if ext in (".json", ".jsonl", ".ndjson"):   # either kind is called .json; JSON Lines never starts with [
        return "json" if stripped.startswith(b"[") else "jsonl"
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    if stripped.startswith(b"{"):
        return "jsonl"
    if stripped.startswith(b"[{") or re.match(rb"\[\s*\{", stripped):
        return "json"
    first_line = stripped.split(b"\n", 1)[0]
    return "tsv" if b"\t" in first_line and b"," not in first_line else "csv"


def _decode_sample(path: Path, head: bytes, encoding: str | None) -> str:
    if encoding is None and b"\x00" in head:
        raise ValidationError("input: this looks like a binary file, not CSV/TSV text "
                              "(upload CSV, TSV, Parquet or JSON Lines)", field="input")
    codec = encoding or "utf-8-sig"
    # A multi-byte character may be cut at the end of the sample: ignore the last few bytes.
    decoder = codecs.getincrementaldecoder(codec)()
    try:
        return decoder.decode(head, final=False)
    except UnicodeError:
        raise decode_error(path, encoding) from None


def sniff_delimiter(text: str) -> str:
    """The delimiter of a CSV sample: csv.Sniffer over common candidates, else the most frequent."""
    lines = [ln for ln in text.splitlines()[:50] if ln.strip()]
    sample = "\n".join(lines)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        header = lines[0] if lines else ""
        counts = {d: header.count(d) for d in ",\t;|"}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


@dataclass(frozen=True)
class TableSource:
    """A dataset file with its (fixed) schema; iterate it with :meth:`iter_batches`."""

    path: Path
    fmt: str
    schema: pa.Schema
    delimiter: str | None = None
    encoding: str | None = None
    python_json: bool = False      # JSON Lines read record by record (see json_input), not by pyarrow

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def type_names(self) -> dict[str, str]:
        return {f.name: type_name(f.type) for f in self.schema}

    def project(self, columns: Sequence[str] | None) -> pa.Schema:
        if columns is None:
            return self.schema
        return pa.schema([self.schema.field(c) for c in self.schema.names if c in set(columns)])

    def widened(self, column: str) -> TableSource:
        i = self.schema.get_field_index(column)
        new_type = _wider(self.schema.field(i).type)
        return replace(self, schema=self.schema.set(i, pa.field(column, new_type)))

    def iter_batches(self, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
        """Stream the file as record batches of exactly ``self.project(columns)``.

        Raises :class:`SchemaWidened` if a block needs a wider type than the sample showed.
        """
        if self.fmt in ("csv", "tsv"):
            yield from self._csv_batches(columns)
        elif self.fmt == "parquet":
            yield from self._parquet_batches(columns)
        else:
            yield from self._json_batches(columns)

    # ---- CSV
    def _csv_options(self, columns: Sequence[str] | None, block_size: int, types: bool):
        read = pacsv.ReadOptions(block_size=block_size, encoding=self.encoding or "utf8",
                                 column_names=self.columns, skip_rows=1)
        parse = pacsv.ParseOptions(delimiter=self.delimiter or ",", newlines_in_values=True)
        convert = pacsv.ConvertOptions(
            column_types={f.name: f.type for f in self.schema} if types else None,
            include_columns=[c for c in self.columns if columns is None or c in set(columns)],
            null_values=PANDAS_NA_VALUES, strings_can_be_null=True,
            true_values=TRUE_VALUES, false_values=FALSE_VALUES,
        )
        return read, parse, convert

    def _csv_batches(self, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        target = self.project(columns)
        read, parse, convert = self._csv_options(columns, STREAM_BLOCK_BYTES, types=True)
        try:
            reader = pacsv.open_csv(self.path, read_options=read, parse_options=parse, convert_options=convert)
            for batch in reader:
                if batch.num_rows:
                    yield batch.select(target.names)
        except pa.ArrowInvalid as exc:
            raise self._csv_error(exc) from None
        except UnicodeError as exc:   # from the Python codec pyarrow transcodes a non-UTF-8 file with
            raise decode_error(self.path, self.encoding, exc) from None

    def _csv_error(self, exc: Exception) -> Exception:
        msg = str(exc)
        m = _CSV_COLUMN_ERROR.search(msg)
        if m:
            column = self.columns[int(m.group(1))]
            if m.group(2) != "string":
                return SchemaWidened(self.widened(column), column)
        if "UTF8" in msg or "UTF-8" in msg or "decode" in msg.lower():
            return decode_error(self.path, self.encoding)
        first = msg.splitlines()[0] if msg else type(exc).__name__
        return ValidationError(f"input: the file cannot be read as {self.fmt.upper()}: {first} "
                               "(check the delimiter and the quoting)", field="input")

    # ---- Parquet
    def _parquet_batches(self, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        target = self.project(columns)
        pf = pq.ParquetFile(self.path)
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=target.names):
            if batch.num_rows:
                yield _cast_batch(batch, target)

    # ---- JSON Lines (pyarrow, fast) and JSON arrays / the JSON Lines fallback (json_input)
    def _json_batches(self, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        target = self.project(columns)
        if self.fmt == "json" or self.python_json:
            yield from json_input.record_batches(self.path, self.fmt, target, STREAM_BLOCK_BYTES,
                                                 lambda column: SchemaWidened(self.widened(column), column))
            return
        try:
            reader = pajson.open_json(
                self.path, read_options=pajson.ReadOptions(block_size=STREAM_BLOCK_BYTES),
                parse_options=pajson.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="ignore"),
            )
            for batch in reader:
                if batch.num_rows:
                    yield _cast_batch(batch, target)
        except pa.ArrowInvalid as exc:
            raise self._json_error(exc) from None

    def _json_error(self, exc: Exception) -> Exception:
        """A narrow column that pyarrow names is widened; anything else (a number in a text
        column, a value pyarrow cannot place, bad JSON) restarts with the record-by-record
        reader, which widens any column exactly and names the real line of an error."""
        m = _JSON_COLUMN_ERROR.search(str(exc))
        if m and m.group(1) in self.columns and not pa.types.is_string(self.schema.field(m.group(1)).type):
            return SchemaWidened(self.widened(m.group(1)), m.group(1))
        return SchemaWidened(replace(self, python_json=True), "")


def _cast_batch(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for f in target:
        col = batch.column(batch.schema.get_field_index(f.name))
        arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def _infer_csv(path: Path, fmt: str, delimiter: str | None, encoding: str | None) -> TableSource:
    head = _head(path)
    text = _decode_sample(path, head, encoding)
    if not text.strip():
        raise ValidationError("input: the file has no text in it; upload a file with a header row and data rows",
                              field="input")
    if delimiter is None:
        delimiter = "\t" if fmt == "tsv" else sniff_delimiter(text)
    try:
        first = next(csv.reader(io.StringIO(text), delimiter=delimiter))
    except (StopIteration, csv.Error) as exc:
        raise ValidationError(f"input: cannot read the header row ({exc})", field="input") from None
    names = _check_names(first)
    probe = TableSource(path, fmt, pa.schema([(n, pa.string()) for n in names]), delimiter, encoding)
    read, parse, convert = probe._csv_options(None, SAMPLE_BYTES, types=False)
    try:
        reader = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        sample = reader.read_next_batch()
    except StopIteration:
        raise ValidationError("input: the file has a header row but no data rows", field="input") from None
    except pa.ArrowInvalid as exc:
        raise probe._csv_error(exc) from None
    except UnicodeError as exc:
        raise decode_error(path, encoding, exc) from None
    if sample.num_rows == 0:
        raise ValidationError("input: the file has a header row but no data rows", field="input")
    return TableSource(path, fmt, _canonical_schema(sample.schema, text_dates=True), delimiter, encoding)


def _infer_parquet(path: Path) -> TableSource:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"input: not a readable Parquet file ({exc})", field="input") from None
    if pf.metadata.num_rows == 0:
        raise ValidationError("input: the Parquet file has no rows", field="input")
    _check_names(pf.schema_arrow.names)
    return TableSource(path, "parquet", _canonical_schema(pf.schema_arrow))


def _infer_json(path: Path, fmt: str, encoding: str | None) -> TableSource:
    if encoding not in (None, "utf-8"):
        raise ValidationError("input.encoding: JSON must be UTF-8", field="input.encoding")
    text = _decode_sample(path, _head(path), None)
    if not text.strip():
        raise ValidationError("input: the file has no JSON records in it", field="input")
    schema = json_input.infer_schema(path, fmt, SAMPLE_BYTES)   # text stays text (no date parsing)
    _check_names(schema.names)
    return TableSource(path, fmt, schema)


def open_source(path: Path | str, fmt: str | None = None, delimiter: str | None = None,
                encoding: str | None = None, name: str | None = None) -> TableSource:
    """Open a dataset and infer its schema from a sample (no full read)."""
    path = Path(path)
    _check_file(path)
    fmt = fmt or detect_format(path, name)
    if fmt in ("csv", "tsv"):
        return _infer_csv(path, fmt, delimiter, encoding)
    if fmt == "parquet":
        return _infer_parquet(path)
    if fmt in ("jsonl", "json"):
        return _infer_json(path, fmt, encoding)
    raise ValidationError(f"input.format: unknown format {fmt!r}; use csv, tsv, parquet, jsonl or json",
                          field="input.format")


def to_pandas(table: pa.Table | pa.RecordBatch, float_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Arrow -> pandas the way ``pd.read_csv`` would type it.

    ``float_columns``: int columns that have a missing value somewhere in the whole
    input. pandas reads those as float64 everywhere, so every shard must too, even a
    shard where that column happens to have no gap.
    """
    if float_columns:
        names = table.schema.names
        for c in float_columns:
            if c in names:
                i = names.index(c)
                table = table.set_column(i, pa.field(c, pa.float64()), table.column(i).cast(pa.float64()))
    return table.to_pandas()


def preview(path: Path | str, fmt: str | None = None, n: int = 20, delimiter: str | None = None,
            encoding: str | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """The first ``n`` rows and column -> type name (from the sample)."""
    source = open_source(path, fmt, delimiter, encoding)
    for _attempt in range(PREVIEW_RESTARTS):
        read_with = source
        rows: list[pa.RecordBatch] = []
        got = 0
        try:
            for batch in source.iter_batches():
                rows.append(batch.slice(0, n - got))
                got += rows[-1].num_rows
                if got >= n:
                    break
            break
        except SchemaWidened as widened:   # the first rows themselves need wider types: read them again
            source = widened.source
    table = pa.Table.from_batches(rows, schema=read_with.schema)
    return to_pandas(table), read_with.type_names()
