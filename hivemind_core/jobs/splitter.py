"""The task splitter: stream a dataset into columnar shards (Arrow IPC files).

Never holds the whole file: batches stream from the reader straight into shard
writers. Only the columns the pipeline reads are shipped. Strategies:

* ``rows``    (default) — consecutive row ranges, so shard order is input order;
* ``key``     — hash-partition on the group keys, so every group lies wholly in
  one shard (needed by nunique and median);
* ``unsplit`` — one shard (also every job type other than data_processing).

Each subtask is a :class:`WorkUnit`: for data jobs one per shard; a
machine_learning job stores its dataset as one shard that all its units read
(each scores its share of the grid's (combination, fold) evaluations); a
simulation reads no data, its units are its shards of the trials.

If the reader finds that a column needs a wider type than its sample showed,
the shards written so far are thrown away and the split starts again with the
wider schema; so all shards of a job share one schema.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from hivemind_core.errors import ValidationError
from hivemind_core.jobs.encodings import decode_error
from hivemind_core.jobs.readers import SAMPLE_BYTES, SchemaWidened, TableSource
from hivemind_core.jobs.simulation import shard_count, trial_counts
from hivemind_core.jobs.spec import MAX_SHARDS, JobSpec

log = logging.getLogger(__name__)

SHARDS_PER_SLOT = 3                 # a few per worker slot: stragglers and retries stay small
MAX_SHARD_INPUT_BYTES = 64 << 20    # ... and no shard bigger than this much input
SHARD_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
MAX_RESTARTS = 64


@dataclass
class Shard:
    index: int
    path: Path
    rows: int = 0

    @property
    def nbytes(self) -> int:
        return self.path.stat().st_size


@dataclass(frozen=True)
class WorkUnit:
    """One subtask: number ``index`` (its params say which part of the job it does)."""

    index: int
    shard: int | None      # the index of the shard file it reads; None = it reads no input
    rows: int              # rows it reads (a simulation: trials it runs)


@dataclass
class SplitResult:
    shards: list[Shard]
    source: TableSource | None     # with the final (possibly widened) schema; None = no input
    columns: list[str]             # the columns the shards hold
    strategy: str
    total_rows: int
    null_counts: dict[str, int] = field(default_factory=dict)
    units: list[WorkUnit] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.units:
            self.units = [WorkUnit(s.index, s.index, s.rows) for s in self.shards]

    def float_columns(self) -> list[str]:
        """Int columns with a gap somewhere in the input: pandas reads them as float64."""
        if self.source is None:
            return []
        return [f.name for f in self.source.project(self.columns)
                if pa.types.is_integer(f.type) and self.null_counts.get(f.name, 0) > 0]

    def type_names(self) -> dict[str, str]:
        """Column -> type name as pandas would see the whole input."""
        if self.source is None:
            return {}
        names = self.source.type_names()
        for c in self.float_columns():
            names[c] = "float"
        return names


def choose_strategy(spec: JobSpec) -> str:
    if spec.runs_unsplit:
        return "unsplit"
    if spec.split.strategy:
        return spec.split.strategy
    return "key" if spec.pipeline.needs_whole_groups() else "rows"


def default_shard_count(input_bytes: int, slots: int) -> int:
    """A few shards per worker slot, more when the input is big (bounded shard size)."""
    by_size = math.ceil(input_bytes / MAX_SHARD_INPUT_BYTES)
    return max(1, min(MAX_SHARDS, max(SHARDS_PER_SLOT * max(1, slots), by_size)))


def estimate_rows(source: TableSource) -> int:
    """Rows in the file, exact for Parquet, estimated from the sample's bytes per row otherwise."""
    if source.fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(source.path).metadata.num_rows
    size = source.path.stat().st_size
    sample_rows = 0
    for batch in _sample_batches(source):
        sample_rows += batch.num_rows
    if not sample_rows:
        return 1
    return max(1, math.ceil(size * sample_rows / min(size, SAMPLE_BYTES)))


def _sample_batches(source: TableSource) -> Iterator[pa.RecordBatch]:
    """The first ~SAMPLE_BYTES worth of rows (for the row estimate)."""
    import pyarrow.csv as pacsv

    if source.fmt in ("csv", "tsv"):
        read, parse, convert = source._csv_options(source.columns[:1], SAMPLE_BYTES, types=False)
        try:
            yield pacsv.open_csv(source.path, read_options=read, parse_options=parse,
                                 convert_options=convert).read_next_batch()
        except (StopIteration, pa.ArrowInvalid):
            return
        except UnicodeDecodeError as exc:  # pyarrow's transcoder may read ahead past the sample
            raise decode_error(source.path, source.encoding, exc) from None
    else:
        for batch in source.iter_batches(source.columns[:1]):
            yield batch
            return


class _ShardSet:
    """Open Arrow IPC writers, one per shard, created lazily."""

    def __init__(self, staging: Path, schema: pa.Schema) -> None:
        self.staging, self.schema = staging, schema
        self.shards: dict[int, Shard] = {}
        self._writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}

    def write(self, index: int, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if index not in self._writers:
            path = self.staging / f"shard-{index:05d}.arrow"
            self.shards[index] = Shard(index, path)
            self._writers[index] = pa.ipc.new_file(path, self.schema, options=SHARD_WRITE_OPTIONS)
        self._writers[index].write_batch(batch)
        self.shards[index].rows += batch.num_rows

    def close(self, index: int | None = None) -> None:
        for i in [index] if index is not None else list(self._writers):
            writer = self._writers.pop(i, None)
            if writer is not None:
                writer.close()

    def result(self) -> list[Shard]:
        self.close()
        return [self.shards[i] for i in sorted(self.shards)]


def _partition_ids(batch: pa.RecordBatch, keys: list[str], n: int) -> np.ndarray:
    """A stable shard number per row from its group key values (same key -> same shard)."""
    frame = pd.DataFrame({k: batch.column(batch.schema.get_field_index(k)).cast(pa.string()).to_pandas()
                          for k in keys})
    return (pd.util.hash_pandas_object(frame, index=False).to_numpy() % np.uint64(n)).astype(np.int64)


def _split_once(source: TableSource, columns: list[str], strategy: str, shards: int,
                keys: list[str], staging: Path) -> SplitResult:
    schema = source.project(columns)
    out = _ShardSet(staging, schema)
    nulls = dict.fromkeys(schema.names, 0)
    total = 0
    rows_per_shard = math.ceil(estimate_rows(source) / shards) if strategy == "rows" else 0
    current = 0
    try:
        for batch in source.iter_batches(columns):
            total += batch.num_rows
            for i, name in enumerate(batch.schema.names):
                nulls[name] += batch.column(i).null_count
            if strategy == "unsplit":
                out.write(0, batch)
            elif strategy == "key":
                ids = _partition_ids(batch, keys, shards)
                order = np.argsort(ids, kind="stable")
                sorted_batch = batch.take(pa.array(order))
                counts = np.bincount(ids, minlength=shards)
                start = 0
                for idx, cnt in enumerate(counts):
                    if cnt:
                        out.write(idx, sorted_batch.slice(start, int(cnt)))
                    start += int(cnt)
            else:
                offset = 0
                while offset < batch.num_rows:
                    room = rows_per_shard - out.shards.get(current, Shard(current, staging)).rows
                    if room <= 0:
                        out.close(current)
                        current += 1
                        continue
                    piece = batch.slice(offset, room)
                    out.write(current, piece)
                    offset += piece.num_rows
    except BaseException:
        out.close()
        raise
    return SplitResult(out.result(), source, list(schema.names), strategy, total, nulls)


def split_data(source: TableSource, spec: JobSpec, staging: Path, slots: int) -> SplitResult:
    """Split ``source`` for ``spec`` into shard files under ``staging`` (created, emptied first)."""
    strategy = choose_strategy(spec)
    p = spec.pipeline
    columns = p.input_columns() if (p.is_aggregation or p.columns is not None) and spec.script is None else None
    columns = columns or source.columns
    if strategy == "unsplit":
        shards = 1
    else:
        shards = spec.split.shards or default_shard_count(source.path.stat().st_size, slots)
    keys = list(p.group_by)
    for _attempt in range(MAX_RESTARTS):
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            result = _split_once(source, columns, strategy, shards, keys, staging)
        except SchemaWidened as widened:
            log.info("restarting the split of %s: %s", source.path.name, widened)
            source = widened.source
            continue
        if result.total_rows == 0:
            raise ValidationError("input: the file has a header row but no data rows", field="input")
        return result
    raise ValidationError("input: the column types keep changing down the file; give a cleaner file",
                          field="input")


def split_grid_search(source: TableSource, spec: JobSpec, staging: Path, slots: int) -> SplitResult:
    """The dataset as one shard, and units that share the grid's (combination, fold) evaluations."""
    search = spec.grid_search
    assert search is not None
    data = split_data(source, spec, staging, slots)   # unsplit: one shard, every column
    usable = data.total_rows - (data.null_counts.get(search.target, 0) if search.target else 0)
    if search.folds > usable:
        rows = f"{usable} rows" + (f" with a {search.target!r} value" if search.target else "")
        raise ValidationError(f"folds: {search.folds} folds need at least {search.folds} rows; the data has "
                              f"{rows}", field="folds")
    units = min(search.evaluations, spec.split.shards or SHARDS_PER_SLOT * max(1, slots))
    shard = data.shards[0]
    data.units = [WorkUnit(u, shard.index, shard.rows) for u in range(units)]
    return data


def split_simulation(spec: JobSpec) -> SplitResult:
    """No data: one unit per shard of the trials."""
    assert spec.simulation is not None
    counts = trial_counts(spec.simulation.trials, shard_count(spec))
    units = [WorkUnit(i, None, n) for i, n in enumerate(counts)]
    return SplitResult([], None, [], "trials", 0, units=units)


def split_task(spec: JobSpec, source: TableSource | None, staging: Path, slots: int = 1) -> SplitResult:
    """The seed's ``split_task``: dispatch on the job type.

    ``data_processing`` splits by the spec's strategy; ``machine_learning`` stores
    the dataset once and splits the grid × folds; ``simulation`` splits the
    trials and reads no data; anything else runs unsplit (one shard, the whole input).
    """
    if spec.type == "simulation":
        return split_simulation(spec)
    if source is None:
        raise ValidationError(f"input: a {spec.type} job needs a dataset", field="input")
    if spec.type == "machine_learning":
        return split_grid_search(source, spec, staging, slots)
    return split_data(source, spec, staging, slots)
