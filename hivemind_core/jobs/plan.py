"""What each shard's worker runs, and how the master combines what comes back.

Plans:

* ``partial`` — aggregations combinable from per-shard state (rows split);
* ``final``   — shards hold whole groups (key split, or unsplit): workers aggregate fully;
* ``rows``    — no aggregation: filter/columns per shard, concatenated in shard order;
* ``script``  — user ``process(df)`` per shard, concatenated in shard order;
* ``ml``      — each subtask scores its share of a grid search's (combination,
  fold) evaluations on the one dataset shard; the master summarizes
  (:mod:`hivemind_core.jobs.ml`);
* ``simulation`` — each subtask runs its shard of the trials; the master merges
  moments or concatenates frames (:mod:`hivemind_core.jobs.simulation`).

``ml`` and ``simulation`` subtasks differ only in their unit number, which
:meth:`JobPlan.params_for` adds to the plan's params.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from hivemind_core.jobs import ml, simulation
from hivemind_core.jobs.aggregate import combine_finals, combine_partials, finish
from hivemind_core.jobs.operations import ML_OP, PIPELINE_OP, SCRIPT_OP, SIMULATION_OP
from hivemind_core.jobs.results import ResultWriter, read_ipc
from hivemind_core.jobs.spec import JobSpec
from hivemind_core.jobs.splitter import SplitResult

PER_UNIT_KINDS = frozenset({"ml", "simulation"})


@dataclass(frozen=True)
class JobPlan:
    kind: str          # partial | final | rows | script | ml | simulation
    operation: str     # worker operation name
    params: bytes      # the same for every shard of the task (ml, simulation: but for the unit)

    def params_for(self, unit: int) -> bytes:
        """The params of subtask ``unit`` (the plan's own for shard-per-subtask kinds)."""
        if self.kind not in PER_UNIT_KINDS:
            return self.params
        return json.dumps(json.loads(self.params) | {"unit": unit}).encode()

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "operation": self.operation, "params": self.params.decode()})

    @classmethod
    def from_json(cls, raw: str) -> JobPlan:
        d = json.loads(raw)
        return cls(d["kind"], d["operation"], d["params"].encode())


def make_plan(spec: JobSpec, split: SplitResult) -> JobPlan:
    floats = split.float_columns()
    if spec.type in ("machine_learning", "simulation"):
        params = {"spec": spec.to_dict(), "units": len(split.units), "float_columns": floats}
        kind, op = ("ml", ML_OP) if spec.type == "machine_learning" else ("simulation", SIMULATION_OP)
        return JobPlan(kind, op, json.dumps(params).encode())
    if spec.script is not None:
        params = {"script": spec.script, "float_columns": floats}
        return JobPlan("script", SCRIPT_OP, json.dumps(params).encode())
    p = spec.pipeline
    if not p.is_aggregation:
        kind = "rows"
    elif split.strategy in ("key", "unsplit") or len(split.shards) == 1:
        kind = "final"
    else:
        kind = "partial"
    params = {"plan": kind, "pipeline": spec.to_dict().get("pipeline", {}), "float_columns": floats}
    return JobPlan(kind, PIPELINE_OP, json.dumps(params).encode())


def _frames(paths: Sequence[Path]) -> Iterator[pd.DataFrame]:
    for path in paths:
        yield read_ipc(path).to_pandas()


def _tables(paths: Sequence[Path]) -> Iterator[pa.Table]:
    for path in paths:
        yield read_ipc(path)


def combine_results(spec: JobSpec, plan: JobPlan, parts: Sequence[Path], out_path: Path) -> int:
    """Combine the shards' results (in shard order) into ``out_path``; returns the row count."""
    p = spec.pipeline
    with ResultWriter(out_path, spec.output_format) as writer:
        if plan.kind == "ml":
            writer.write(ml.summarize(_frames(parts), spec.grid_search))
        elif plan.kind == "simulation":
            simulation.combine(_tables(parts), writer)
        elif plan.kind == "partial":
            writer.write(finish(combine_partials(_frames(parts), p), p))
        elif plan.kind == "final":
            writer.write(finish(combine_finals(_frames(parts), p), p))
        elif plan.kind == "rows" and p.sort:
            # shards already cut to their own top `limit` when there is one
            writer.write(finish(pd.concat(list(_frames(parts)), ignore_index=True), p))
        else:
            remaining = p.limit if plan.kind == "rows" else None
            for table in _tables(parts):
                if remaining is not None:
                    table = table.slice(0, remaining)
                    remaining -= table.num_rows
                if table.num_rows or writer.rows == 0:
                    writer.write(table)
                if remaining == 0:
                    break
    return writer.rows
