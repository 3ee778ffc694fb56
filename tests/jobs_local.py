"""Run a job in this process: the real reader, splitter, worker operations
and master combine — everything but the node pool and worker processes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hivemind_core.jobs.inputs import open_job_input
from hivemind_core.jobs.plan import combine_results, make_plan
from hivemind_core.jobs.results import read_result
from hivemind_core.jobs.spec import parse_spec, validate_against_schema
from hivemind_core.jobs.splitter import split_task
from hivemind_core.worker.operations import OperationContext, get_operation


def run_in_process(spec_raw: dict, data: Path | None, work: Path, slots: int = 2) -> tuple[pd.DataFrame, object]:
    spec = parse_spec(spec_raw)
    source = open_job_input(spec, data)
    split = split_task(spec, source, work / "staging", slots)
    if source is not None:
        validate_against_schema(spec, split.type_names())
    plan = make_plan(spec, split)
    op = get_operation(plan.operation)
    shard_paths = {shard.index: shard.path for shard in split.shards}
    parts = []
    for unit in split.units:
        scratch = work / f"scratch-{unit.index}"
        scratch.mkdir(parents=True, exist_ok=True)
        ctx = OperationContext(f"s{unit.index}", "t", plan.params_for(unit.index),
                               shard_paths.get(unit.shard), scratch)
        parts.append(op(ctx))
    out = work / f"result.{spec.output_format}"
    combine_results(spec, plan, parts, out)
    return read_result(out, spec.output_format), split
