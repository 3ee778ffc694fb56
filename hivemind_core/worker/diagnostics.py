"""Diagnostic operations for tests and benchmarks: noop, sleep, fail."""

from __future__ import annotations

import time

from hivemind_core.worker.operations import OperationContext, register


@register("noop", user_code=False)
def noop(ctx: OperationContext) -> bytes:
    """Does nothing; returns the params so a test can see which subtask ran."""
    return ctx.params


@register("sleep", user_code=False)
def sleep(ctx: OperationContext) -> bytes:
    """Sleeps ``{"seconds": s}`` (default 1), for lease, cancel and timeout tests."""
    seconds = float(ctx.json_params().get("seconds", 1.0))
    time.sleep(seconds)
    return ctx.params


@register("fail", user_code=False)
def fail(ctx: OperationContext) -> None:
    """Raises, with ``{"message": ...}`` as the error, for failure-path tests."""
    raise RuntimeError(ctx.json_params().get("message", "diagnostic failure"))


@register("allocate", user_code=False)
def allocate(ctx: OperationContext) -> bytes:
    """Holds ``{"mb": n}`` MB of memory for a moment, for memory-limit tests."""
    size = int(ctx.json_params().get("mb", 64)) * 1024 * 1024
    block = bytearray(size)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    return str(len(block)).encode()


@register("sandbox_info", user_code=False)
def sandbox_info(ctx: OperationContext) -> bytes:
    """What the sandbox looks like from inside (environment names, cwd, scratch
    dir, memory limit, Landlock confinement), for isolation tests. Reveals nothing
    the sandbox was not given."""
    import json
    import os
    import resource

    from hivemind_core.worker import landlock

    return json.dumps({
        "env": sorted(os.environ),
        "cwd": os.getcwd(),
        "scratch_dir": str(ctx.scratch_dir),
        "scratch_entries": sorted(os.listdir(ctx.scratch_dir)),
        "rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0],
        "pid": os.getpid(),
        "confined": landlock.current().confined,
        "confinement": landlock.current().describe(),
    }).encode()
