"""The one registry of operations a worker can run, looked up by name.

An operation is ``fn(ctx: OperationContext) -> Path | bytes | None``; what it
returns becomes the subtask's result blob (``None`` = empty result). It runs
inside the worker's sandboxed child process (time limit, memory limit, own
scratch dir, scrubbed environment), so it may use the scratch dir freely.

Feature packages contribute operations by registering them in a module listed
in :data:`OPERATION_MODULES`; :func:`get_operation` imports them on first use.

An operation runs user code unless registered with ``user_code=False`` (ours
only: the pipeline, diagnostics). The sandbox keeps one child warm across tasks
for those; after user code it replaces the child before another task's subtask
runs (:mod:`hivemind_core.worker.sandbox`). Forgetting the flag costs a restart,
never a leak.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hivemind_core.errors import HiveMindError

OPERATION_MODULES: list[str] = ["hivemind_core.worker.diagnostics"]
OPERATION_MODULES.append("hivemind_core.jobs.operations")  # data jobs: pipeline and script


class UnknownOperationError(HiveMindError):
    pass


@dataclass
class OperationContext:
    subtask_id: str
    task_id: str
    params: bytes            # opaque to the engine; JSON by convention
    input_path: Path | None  # the input blob, fetched to a local file; None if the subtask has none
    scratch_dir: Path        # private, emptied after the subtask

    def json_params(self) -> Any:
        return json.loads(self.params.decode("utf-8")) if self.params else {}


Operation = Callable[[OperationContext], "Path | bytes | None"]
_REGISTRY: dict[str, Operation] = {}
_OWN: set[str] = set()   # registered with user_code=False
_loaded = False


def register(name: str, *, user_code: bool = True) -> Callable[[Operation], Operation]:
    """Decorator: make ``fn`` runnable by workers under ``name``; ``user_code=False`` says it
    runs only our own code (no script a user sent)."""

    def deco(fn: Operation) -> Operation:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"operation {name!r} is registered twice")
        _REGISTRY[name] = fn
        if not user_code:
            _OWN.add(name)
        return fn

    return deco


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in OPERATION_MODULES:
            importlib.import_module(module)
        _loaded = True


def get_operation(name: str) -> Operation:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownOperationError(
            f"unknown operation {name!r}; this worker knows: {', '.join(sorted(_REGISTRY))}"
        ) from None


def operation_names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def own_operations() -> list[str]:
    """The operations that run no user code (registered with ``user_code=False``)."""
    _load()
    return sorted(_OWN)
