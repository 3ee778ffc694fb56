"""Diagnostic operations for tests and benchmarks: noop, sleep, fail."""

from __future__ import annotations

import time

from hivemind_core.worker.operations import OperationContext, register


@register("noop")
def noop(ctx: OperationContext) -> bytes:
    """Does nothing; returns the params so a test can see which subtask ran."""
    return ctx.params


@register("sleep")
def sleep(ctx: OperationContext) -> bytes:
    """Sleeps ``{"seconds": s}`` (default 1), for lease, cancel and timeout tests."""
    seconds = float(ctx.json_params().get("seconds", 1.0))
    time.sleep(seconds)
    return ctx.params


@register("fail")
def fail(ctx: OperationContext) -> None:
    """Raises, with ``{"message": ...}`` as the error, for failure-path tests."""
    raise RuntimeError(ctx.json_params().get("message", "diagnostic failure"))
