"""Worker operations for data jobs (registered with the worker's operation registry).

``jobs.pipeline`` runs the pipeline on one shard under the plan the master chose;
``jobs.script`` runs the user's ``process(df)``; ``jobs.ml`` scores its share of
a grid search's (combination, fold) evaluations; ``jobs.simulate`` runs one
shard of a simulation. Each reads its shard (Arrow IPC, typed as pandas would
type the whole input) if it has one, and returns an Arrow IPC file.
"""

from __future__ import annotations

from pathlib import Path

from hivemind_core.jobs import ml, simulation
from hivemind_core.jobs.pipeline import run_pipeline
from hivemind_core.jobs.readers import to_pandas
from hivemind_core.jobs.results import read_ipc, write_ipc
from hivemind_core.jobs.script import run_script
from hivemind_core.jobs.spec import parse_pipeline, parse_spec
from hivemind_core.worker.operations import OperationContext, register

PIPELINE_OP = "jobs.pipeline"
SCRIPT_OP = "jobs.script"
ML_OP = "jobs.ml"
SIMULATION_OP = "jobs.simulate"


def _shard_frame(ctx: OperationContext, params: dict):  # noqa: ANN202 - pandas DataFrame
    if ctx.input_path is None:
        raise ValueError("this operation needs a shard as input")
    return to_pandas(read_ipc(ctx.input_path), params.get("float_columns", []))


def _result(ctx: OperationContext) -> Path:
    return ctx.scratch_dir / "result.arrow"


@register(PIPELINE_OP, user_code=False)
def pipeline_op(ctx: OperationContext) -> Path:
    params = ctx.json_params()
    out = run_pipeline(_shard_frame(ctx, params), parse_pipeline(params["pipeline"]), params["plan"])
    return write_ipc(out, _result(ctx))


@register(SCRIPT_OP)
def script_op(ctx: OperationContext) -> Path:
    params = ctx.json_params()
    out = run_script(params["script"], _shard_frame(ctx, params))
    return write_ipc(out, _result(ctx))


@register(ML_OP)
def ml_op(ctx: OperationContext) -> Path:
    """params: the job spec, the subtask's ``unit`` of ``units``, the dataset's float columns."""
    params = ctx.json_params()
    spec = parse_spec(params["spec"])
    search = spec.grid_search
    evaluations = ml.unit_range(params["unit"], params["units"], search.evaluations)
    out = ml.evaluate(spec.script, _shard_frame(ctx, params), search, evaluations)
    return write_ipc(out, _result(ctx))


@register(SIMULATION_OP)
def simulation_op(ctx: OperationContext) -> Path:
    """params: the job spec, the subtask's ``unit`` (its shard) of ``units`` (the shard count)."""
    params = ctx.json_params()
    spec = parse_spec(params["spec"])
    sim = spec.simulation
    shard, shards = params["unit"], params["units"]
    trials = simulation.trial_counts(sim.trials, shards)[shard]
    return write_ipc(simulation.run_shard(spec.script, sim.seed, shards, shard, trials), _result(ctx))
