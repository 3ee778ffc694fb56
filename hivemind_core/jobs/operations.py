"""Worker operations for data jobs (registered with the worker's operation registry).

``jobs.pipeline`` runs the pipeline on one shard under the plan the master chose;
``jobs.script`` runs the user's ``process(df)``. Both read the shard (Arrow IPC),
type it as pandas would type the whole input, and return an Arrow IPC file.
"""

from __future__ import annotations

from pathlib import Path

from hivemind_core.jobs.pipeline import run_pipeline
from hivemind_core.jobs.readers import to_pandas
from hivemind_core.jobs.results import read_ipc, write_ipc
from hivemind_core.jobs.script import run_script
from hivemind_core.jobs.spec import parse_pipeline
from hivemind_core.worker.operations import OperationContext, register

PIPELINE_OP = "jobs.pipeline"
SCRIPT_OP = "jobs.script"


def _shard_frame(ctx: OperationContext, params: dict):  # noqa: ANN202 - pandas DataFrame
    if ctx.input_path is None:
        raise ValueError("this operation needs a shard as input")
    return to_pandas(read_ipc(ctx.input_path), params.get("float_columns", []))


@register(PIPELINE_OP)
def pipeline_op(ctx: OperationContext) -> Path:
    params = ctx.json_params()
    out = run_pipeline(_shard_frame(ctx, params), parse_pipeline(params["pipeline"]), params["plan"])
    return write_ipc(out, ctx.scratch_dir / "result.arrow")


@register(SCRIPT_OP)
def script_op(ctx: OperationContext) -> Path:
    params = ctx.json_params()
    out = run_script(params["script"], _shard_frame(ctx, params))
    return write_ipc(out, ctx.scratch_dir / "result.arrow")
