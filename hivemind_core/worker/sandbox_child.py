"""The sandbox process: runs operations for one worker slot, one at a time.

Started by :class:`hivemind_core.worker.sandbox.Sandbox` with a scrubbed
environment and reused for many subtasks (starting Python and importing the
operations once is what makes short subtasks cheap). Talks to the worker over
stdin/stdout in length-prefixed pickle frames; what operations print goes to
stderr. Each subtask runs under a memory limit (``RLIMIT_AS`` above the
process's own footprint); the worker enforces the time limit by killing this
process, and replaces it after a time-out, a memory overrun or a crash.
"""

from __future__ import annotations

import os
import pickle
import resource
import struct
import sys
import traceback
from pathlib import Path
from typing import Any, BinaryIO

HEADER = struct.Struct("!I")
INLINE_LIMIT = 1024 * 1024  # bigger results go through a file in the scratch dir
MB = 1024 * 1024


def read_frame(stream: BinaryIO) -> Any:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None  # the worker closed the pipe: time to go
    (size,) = HEADER.unpack(header)
    return pickle.loads(stream.read(size))


def write_frame(stream: BinaryIO, message: Any) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(payload)) + payload)
    stream.flush()


def address_space_bytes() -> int:
    """This process's virtual memory size (what RLIMIT_AS limits)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _limit_memory(baseline: int, memory_mb: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = baseline + memory_mb * MB if memory_mb > 0 else hard
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _run(job: dict[str, Any], baseline: int) -> tuple:
    from hivemind_core.errors import HiveMindError
    from hivemind_core.worker.operations import OperationContext, get_operation

    scratch = Path(job["scratch_dir"])
    try:
        fn = get_operation(job["operation"])
        ctx = OperationContext(subtask_id=job["subtask_id"], task_id=job["task_id"], params=job["params"],
                               input_path=Path(job["input_path"]) if job["input_path"] else None,
                               scratch_dir=scratch)
        os.chdir(scratch)
        _limit_memory(baseline, job["memory_mb"])
        try:
            result = fn(ctx)
        finally:
            _limit_memory(baseline, 0)
    except MemoryError:
        if not job["memory_mb"]:
            return ("memory", ("the operation ran out of memory (no memory_mb limit was set: the machine's "
                               "memory ran out); process smaller shards"))
        return ("memory", (f"the operation exceeded its memory limit of {job['memory_mb']} MB; "
                           "ask for more memory (memory_mb) or process smaller shards"))
    except HiveMindError as exc:  # raised on purpose, its message written for users: no traceback of ours
        return ("error", str(exc))
    except Exception:  # noqa: BLE001 - any failure of user/operation code is reported, not fatal
        return ("error", traceback.format_exc())
    if result is None:
        return ("ok", b"", None)
    if isinstance(result, (str, os.PathLike)):
        return ("ok", None, str(Path(result).resolve()))
    data = bytes(result)
    if len(data) > INLINE_LIMIT:
        out = scratch / "result.bin"
        out.write_bytes(data)
        return ("ok", None, str(out))
    return ("ok", data, None)


def main() -> int:
    from hivemind_core.procwatch import set_parent_death_signal
    from hivemind_core.worker.operations import operation_names

    set_parent_death_signal()
    expected_parent = int(os.environ.get("HIVEMIND_SANDBOX_PARENT", "0"))
    if expected_parent and os.getppid() != expected_parent:
        return 0  # the worker died before we could ask to die with it
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # operations' prints go to stderr, never into the protocol
    sys.stdout = sys.stderr
    proto_in = sys.stdin.buffer
    operation_names()  # import every operation module now, once
    baseline = address_space_bytes()
    write_frame(proto_out, ("ready", os.getpid()))
    while (job := read_frame(proto_in)) is not None:
        reply = _run(job, baseline)
        write_frame(proto_out, reply)
        if reply[0] == "memory":
            return 3  # a heap that hit the limit is not worth reusing
    return 0


if __name__ == "__main__":
    sys.exit(main())
