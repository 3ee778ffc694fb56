"""simulation jobs: seeded Monte Carlo, ``simulate(rng, n)`` on every shard.

Shards and seeds: ``trials`` are dealt out to the shards as evenly as possible
(the first ``trials % shards`` shards get one more). Shard ``i`` gets the seed
stream ``numpy.random.SeedSequence(seed).spawn(shards)[i]`` and calls
``simulate(numpy.random.default_rng(stream), n_i)``. The streams are disjoint,
and the answer is reproducible for a given spec, seed and shard count; a
different shard count deals the trials differently and so gives a different
(equally valid) sample. Without ``split.shards`` the count is
``min(trials, DEFAULT_SHARDS)`` — fixed by the spec, never by the cluster size.

What ``simulate`` returns decides the result:

* a dict ``{name: outcomes}`` — the outcomes are numbers (usually an array of
  the ``n`` per-trial values; a single number counts as one outcome). The
  result has one row per name: ``key, count, sum, mean, std, var, min, max``
  over all outcomes of all shards (NaN outcomes skipped, std/var ddof=1),
  combined exactly with the same partial-moment merge as the data jobs'
  aggregations (:mod:`hivemind_core.jobs.aggregate`). Rows keep the order in
  which the names first appear (shard 0's dict order first).
* a DataFrame (or Series) — the shards' frames concatenated in shard order.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from hivemind_core.jobs.aggregate import combine_partials
from hivemind_core.jobs.pipeline import ALL_KEY, partial_state
from hivemind_core.jobs.results import ResultWriter, to_arrow
from hivemind_core.jobs.script import ScriptError, as_frame, call_user, load_function
from hivemind_core.jobs.spec import JobSpec, PipelineSpec

DEFAULT_SHARDS = 8
SIMULATE_USAGE = "simulate(rng, n) that returns a dict of outcomes or a DataFrame"
SIMULATE_RETURNS = ("a dict {name: per-trial numbers} (e.g. {\"hit\": rng.random(n) < 0.5}) "
                    "or a pandas DataFrame")
KEY, VALUE = "key", "value"
STATS = ("count", "sum", "mean", "std", "var", "min", "max")
# The outcomes of one name are the column VALUE of a group KEY: the aggregation
# machinery's partial state (worker) and exact merge (master) do the rest.
MOMENTS = PipelineSpec(group_by=(KEY,), aggregate=((VALUE, STATS),))
MODE = b"hivemind.simulation"        # schema metadata of a shard's result: b"moments" or b"rows"
NAMES = b"hivemind.simulation.keys"  # moments: the dict's names in its own order (JSON list)


def shard_count(spec: JobSpec) -> int:
    assert spec.simulation is not None
    return spec.split.shards or min(spec.simulation.trials, DEFAULT_SHARDS)


def trial_counts(trials: int, shards: int) -> list[int]:
    base, extra = divmod(trials, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]


def seed_stream(seed: int, shards: int, shard: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed).spawn(shards)[shard]


def _outcomes(name: Any, values: Any) -> np.ndarray:
    if not isinstance(name, str) or not name:
        raise ScriptError(f"script: simulate's dict keys must be non-empty text, got {name!r}")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ScriptError(f"script: simulate's outcomes for {name!r} must be numbers (an array of per-trial "
                          f"values), got {type(values).__name__}") from None
    if arr.ndim > 1:
        raise ScriptError(f"script: simulate's outcomes for {name!r} must be one number per trial "
                          f"(a 1-D array), got shape {arr.shape}")
    return arr.reshape(-1)


def _moments(result: Mapping[Any, Any]) -> pa.Table:
    if not result:
        raise ScriptError("script: simulate returned an empty dict; return {\"name\": per-trial values}")
    parts = []
    for name, values in result.items():
        frame = pd.DataFrame({VALUE: _outcomes(name, values)})
        state = partial_state(frame, PipelineSpec(aggregate=MOMENTS.aggregate))
        parts.append(state.rename(columns={ALL_KEY: KEY}).assign(**{KEY: name}))
    table = to_arrow(pd.concat(parts, ignore_index=True))
    names = json.dumps(list(result)).encode()
    return table.replace_schema_metadata((table.schema.metadata or {}) | {MODE: b"moments", NAMES: names})


def run_shard(script: str, seed: int, shards: int, shard: int, trials: int) -> pa.Table:
    """One shard's ``simulate`` (on a worker), as the table the master combines."""
    simulate = load_function(script, "simulate", SIMULATE_USAGE)
    rng = np.random.default_rng(seed_stream(seed, shards, shard))
    result = call_user(simulate, rng, trials)
    if isinstance(result, Mapping):
        return _moments(result)
    table = to_arrow(as_frame(result, "simulate(rng, n)", SIMULATE_RETURNS))
    return table.replace_schema_metadata((table.schema.metadata or {}) | {MODE: b"rows"})


def _mode(table: pa.Table, expected: bytes | None = None) -> bytes:
    mode = (table.schema.metadata or {}).get(MODE, b"")
    if mode not in (b"moments", b"rows") or (expected is not None and mode != expected):
        raise ScriptError("script: simulate returned a dict on some shards and a DataFrame on others; "
                          "return the same kind every time")
    return mode


def combine(tables: Iterable[pa.Table], writer: ResultWriter) -> None:
    """Every shard's result (in shard order) into the task's result (at the master).

    Frames stream through one shard at a time; moments are a few rows per shard.
    """
    tables = iter(tables)
    first = next(tables)
    if _mode(first) == b"rows":
        for table in itertools.chain([first], tables):
            _mode(table, b"rows")
            meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != MODE}
            writer.write(table.replace_schema_metadata(meta or None))
        return
    parts = [first] + [t for t in tables if _mode(t, b"moments")]
    order = list(dict.fromkeys(n for t in parts for n in json.loads(t.schema.metadata[NAMES])))
    merged = combine_partials((t.to_pandas() for t in parts), MOMENTS)
    merged = merged.rename(columns={f"{VALUE}_{s}": s for s in STATS})
    merged = merged.set_index(KEY).loc[order].reset_index()
    writer.write(merged[[KEY, *STATS]])
