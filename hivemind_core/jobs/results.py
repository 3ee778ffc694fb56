"""Streaming result writers (CSV, Parquet, JSON array, JSON Lines) and shard I/O.

A writer takes pandas frames or Arrow tables one at a time, so a big filter-only
result is written shard by shard, never held whole. Files appear atomically:
written to a temp name, renamed on close.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hivemind_core.errors import ValidationError

RESULT_EXTENSIONS = {"csv": ".csv", "parquet": ".parquet", "json": ".json", "jsonl": ".jsonl"}


def write_ipc(table: pa.Table | pd.DataFrame, path: Path) -> Path:
    """A shard or a partial result as an Arrow IPC file."""
    if isinstance(table, pd.DataFrame):
        table = to_arrow(table)
    with pa.ipc.new_file(path, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
        writer.write_table(table)
    return path


# How pyarrow reports a lack of memory (address space under the sandbox's RLIMIT_AS) that is not
# a MemoryError: mapping the file fails with ENOMEM, or its reader thread cannot get a stack.
_NO_MEMORY_SIGNS = ("Cannot allocate memory", "Failed to launch worker thread")


def read_ipc(path: Path | str, columns: list[str] | None = None) -> pa.Table:
    """An Arrow IPC file as a table. Running out of memory while reading it is a
    :class:`MemoryError` however pyarrow reports it (the sandbox turns that into the plain
    "exceeded its memory limit" line, not a traceback)."""
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowException) as exc:
        if getattr(exc, "errno", None) == errno.ENOMEM or any(sign in str(exc) for sign in _NO_MEMORY_SIGNS):
            raise MemoryError(f"out of memory reading {Path(path).name}: {exc}") from None
        raise
    return table.select(columns) if columns is not None else table


def to_arrow(df: pd.DataFrame) -> pa.Table:
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValidationError(f"result: a column mixes value types and cannot be stored ({exc}); "
                              "make each column one type", field="result") from None


def _json_ready(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def _json_default(value: object) -> str:
    iso = getattr(value, "isoformat", None)
    return iso() if iso else str(value)


class ResultWriter:
    """Write a result in ``fmt`` to ``path``, piece by piece; ``rows`` counts what was written."""

    def __init__(self, path: Path, fmt: str) -> None:
        if fmt not in RESULT_EXTENSIONS:
            raise ValidationError(f"output.format: unknown format {fmt!r}", field="output.format")
        self.path, self.fmt, self.rows = Path(path), fmt, 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._schema: pa.Schema | None = None
        self._writer = None
        self._fh = None
        self._nothing_written = True   # decides the CSV header and the JSON separators

    def write(self, piece: pd.DataFrame | pa.Table) -> None:
        table = to_arrow(piece) if isinstance(piece, pd.DataFrame) else piece
        if self._schema is None:
            self._open(table.schema)
        elif table.schema != self._schema:
            try:
                table = table.cast(self._schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                raise ValidationError(f"result: parts of the result have different columns or types ({exc})",
                                      field="result") from None
        self.rows += table.num_rows
        if self.fmt == "csv":
            # pandas' own CSV formatting (floats keep ".0"), so the file reads back as pandas wrote it
            table.to_pandas().to_csv(self._fh, index=False, header=self._nothing_written)
            self._nothing_written = False
        elif self.fmt == "parquet":
            self._writer.write_table(table)
        else:
            self._write_json(table)

    def _open(self, schema: pa.Schema) -> None:
        self._schema = schema
        if self.fmt == "parquet":
            self._writer = pq.ParquetWriter(str(self._tmp), schema)
        else:
            self._fh = self._tmp.open("w", encoding="utf-8", newline="")
            if self.fmt == "json":
                self._fh.write("[")

    def _write_json(self, table: pa.Table) -> None:
        # Python's json writes floats with repr, so they read back bit for bit.
        lines = [json.dumps(_json_ready(row), ensure_ascii=False, default=_json_default)
                 for row in table.to_pylist()]
        if self.fmt == "jsonl":
            self._fh.write("".join(ln + "\n" for ln in lines))
        else:
            for ln in lines:
                self._fh.write(("\n" if self._nothing_written else ",\n") + ln)
                self._nothing_written = False

    def close(self, schema_if_empty: pa.Schema | None = None) -> Path:
        if self._schema is None:
            self._open(schema_if_empty or pa.schema([]))
        if self._writer is not None:
            self._writer.close()
        if self._fh is not None:
            if self.fmt == "json":
                self._fh.write("\n]\n" if not self._nothing_written else "]\n")
            elif self.fmt == "csv" and self._nothing_written:
                pd.DataFrame(columns=self._schema.names).to_csv(self._fh, index=False)
            self._fh.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        for closer in (getattr(self._writer, "close", None), getattr(self._fh, "close", None)):
            if closer:
                try:
                    closer()
                except Exception:  # noqa: BLE001 - cleaning up after a failure already being raised
                    pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_result(path: Path, fmt: str, n: int | None = None) -> pd.DataFrame:
    """A result file back as a frame (the first ``n`` rows if given)."""
    if fmt == "csv":
        return pd.read_csv(path, nrows=n)
    if fmt == "parquet":
        df = pq.read_table(path).to_pandas()
    elif fmt == "json":
        df = pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
    else:
        df = pd.read_json(path, lines=True, nrows=n)
    return df.head(n) if n is not None else df
