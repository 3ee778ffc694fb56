"""The sandbox process: runs operations for one worker slot, one at a time.

Started by :class:`hivemind_core.worker.sandbox.Sandbox` with a scrubbed
environment and reused for many subtasks (starting Python and importing the
operations once is what makes short subtasks cheap). Talks to the worker over
stdin/stdout: jobs come as length-prefixed pickle frames (the worker is trusted);
replies go back as a JSON header plus raw bytes (:func:`write_reply`) — never
pickle, since user code in here can write to that pipe and the worker must not
unpickle what it wrote. What operations print goes to stderr. Each subtask runs
under a memory limit (``RLIMIT_AS`` above the process's own footprint); the
worker enforces the time limit by killing this process, and replaces it after a
time-out, a memory overrun or a crash.

Before it imports anything but the ``hivemind_core`` package itself, the process
confines itself with Landlock (:mod:`hivemind_core.worker.landlock`, see
:func:`confine_child`): user code can read the interpreter, the libraries and
the subtask's input, write only the scratch dir, and cannot reach the master's
or the node pool's data, nor open TCP connections. Its "ready" frame says
whether that worked, so the worker can warn when the kernel has no Landlock.

Usage: ``python -m hivemind_core.worker.sandbox_child INPUT_DIR SCRATCH_DIR``.
"""

from __future__ import annotations

import json
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


def write_reply(stream: BinaryIO, status: str, data: bytes = b"", **fields: Any) -> None:
    """``status`` and JSON ``fields`` in one length-prefixed frame, then ``data`` in another."""
    meta = json.dumps({"status": status, **fields}).encode("utf-8")
    stream.write(HEADER.pack(len(meta)) + meta + HEADER.pack(len(data)))
    stream.write(data)
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
    """``("ok", data, path)`` or ``(status, message)``."""
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


SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/opt",
               "/sys/devices/system/cpu")  # CPU count and caches: numpy / OpenBLAS / joblib
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def _is_within(path: Path, ancestor: Path) -> bool:
    return path == ancestor or ancestor in path.parents


def allowed_read_paths(work_root: Path) -> tuple[list[Path], list[Path]]:
    """The read + execute paths of the sandbox, and those left out.

    The interpreter's prefixes and ``sys.path`` (the stdlib, the venv's
    site-packages), the ``hivemind_core`` package (not the checkout around it,
    which may hold the data dir), system libraries and ``/etc``, and this
    process's own ``/proc`` entry. A candidate that contains ``work_root`` (the
    worker's slot dir: its other slots, and on the embedded cluster the whole
    data dir, live around it) or the checkout is left out; the second list names
    the ones left out other than those two.
    """
    import hivemind_core

    package = Path(hivemind_core.__file__).resolve().parent
    # run from a checkout (PYTHONPATH): its other files are not the sandbox's business;
    # installed into site-packages: that dir is the libraries', keep it
    checkout = package.parent if package.parent.name not in ("site-packages", "dist-packages") else None
    candidates = [package, Path(f"/proc/{os.getpid()}")]
    for entry in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path, *SYSTEM_READ):
        if entry:
            candidates.append(Path(os.path.realpath(entry)))
    work_root = Path(os.path.realpath(work_root))
    allowed, dropped = [], []
    for path in dict.fromkeys(candidates):
        if not path.exists():
            continue
        if path != package and (_is_within(work_root, path) or (checkout and _is_within(checkout, path))):
            if path not in (work_root, checkout):  # those two are expected ('' and PYTHONPATH)
                dropped.append(path)
        else:
            allowed.append(path)
    return allowed, dropped


def confine_child(input_dir: Path, scratch_dir: Path) -> tuple[bool, str]:
    """Landlock this process: ``(confined, description)``.

    Unconfined only when the kernel has no Landlock; any other failure raises
    (no user code may run in a sandbox that failed to confine itself).
    """
    from hivemind_core.worker import landlock

    read, dropped = allowed_read_paths(Path.cwd())
    try:
        result = landlock.confine([*read, input_dir], [scratch_dir], DEVICES)
    except landlock.LandlockUnavailable as exc:
        return False, landlock.Confinement(0, str(exc)).describe()
    description = result.describe()
    if dropped:
        description += "; left out (they hold the worker's data): " + ", ".join(map(str, dropped))
    return True, description


def main() -> int:
    from hivemind_core.procwatch import set_parent_death_signal

    set_parent_death_signal()
    expected_parent = int(os.environ.get("HIVEMIND_SANDBOX_PARENT", "0"))
    if expected_parent and os.getppid() != expected_parent:
        return 0  # the worker died before we could ask to die with it
    if len(sys.argv) != 3:
        print("usage: python -m hivemind_core.worker.sandbox_child INPUT_DIR SCRATCH_DIR", file=sys.stderr)
        return 2
    # first, while this is the only thread and nothing but the interpreter is loaded
    confined, confinement = confine_child(Path(sys.argv[1]), Path(sys.argv[2]))

    from hivemind_core.worker.operations import operation_names
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # operations' prints go to stderr, never into the protocol
    sys.stdout = sys.stderr
    proto_in = sys.stdin.buffer
    operation_names()  # import every operation module now, once
    baseline = address_space_bytes()
    write_reply(proto_out, "ready", pid=os.getpid(), confined=confined, confinement=confinement)
    while (job := read_frame(proto_in)) is not None:
        reply = _run(job, baseline)
        if reply[0] == "ok":
            write_reply(proto_out, "ok", reply[1] or b"", subtask_id=job["subtask_id"], path=reply[2] or "")
        else:
            write_reply(proto_out, reply[0], subtask_id=job["subtask_id"], message=reply[1])
        if reply[0] == "memory":
            return 3  # a heap that hit the limit is not worth reusing
    return 0


if __name__ == "__main__":
    sys.exit(main())
