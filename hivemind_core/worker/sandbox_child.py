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

Two processes, so that nothing user code starts can get away: the one the worker
starts is the **keeper** (:func:`keep`). It makes itself a child subreaper
(``PR_SET_CHILD_SUBREAPER``), forks the process that confines itself and serves
jobs, and then only reaps. Whatever user code leaves behind — a background
process, one that called ``setsid`` and double-forked — stays a descendant of the
keeper: an orphan is re-parented to its nearest subreaper ancestor, not to init.
So the keeper's process tree is exactly the slot's processes, found by walking
``/proc`` (:func:`live_descendants`) with no tag user code could drop, and
killed as a whole (:func:`kill_descendants`) by the worker on a recycle or by the
keeper when the serving process ends, or when the worker dies (the keeper's
parent-death signal is SIGTERM, which kills its tree). Why not a process group,
a session or an environment tag: user code can leave each of those (``setsid``,
a scrubbed environment); it cannot leave the keeper's tree. The keeper is not
confined and runs no user code; Landlock keeps the sandbox from ptracing it and,
on ABI >= 6, from signalling it. On an older kernel (or unconfined) user code
could kill the keeper, and what it left would then be re-parented to init, out
of reach — one more reason to run untrusted users' work only where the node's
sandbox label says ``landlock ABI 6`` or more.

Usage: ``python -m hivemind_core.worker.sandbox_child INPUT_DIR SCRATCH_DIR``.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import signal
import struct
import sys
import time
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
    except MemoryError as exc:
        print(f"sandbox: subtask {job['subtask_id']}: MemoryError: {exc}", file=sys.stderr)  # the worker's log
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


SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/opt",
               "/sys/devices/system/cpu")  # CPU count and caches: numpy / OpenBLAS / joblib
# /etc is readable but for the host's secrets (a worker run as root could read them by owner bits)
ETC_SECRETS = frozenset({"shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssh", "ssl",
                         "wireguard", "security", "credstore", "credstore.encrypted", "hivemind"})
ETC_SSL_PUBLIC = ("/etc/ssl/certs", "/etc/ssl/openssl.cnf")


def etc_read_paths() -> list[str]:
    """What of /etc user code may read: every entry but :data:`ETC_SECRETS` (TLS: certs and config only)."""
    try:
        names = sorted(os.listdir("/etc"))
    except OSError:
        return []
    return [f"/etc/{name}" for name in names if name not in ETC_SECRETS] + list(ETC_SSL_PUBLIC)
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
    for entry in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path, *SYSTEM_READ,
                  *etc_read_paths()):
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
    """Landlock this process, then drop its capabilities and deny it the network
    (:mod:`~hivemind_core.worker.netdeny`): ``(confined, description)``.

    Unconfined only when the kernel has no Landlock; any other failure raises
    (no user code may run in a sandbox that failed to confine itself).
    """
    from hivemind_core.worker import landlock, netdeny

    read, dropped = allowed_read_paths(Path.cwd())
    try:
        result = landlock.confine([*read, input_dir], [scratch_dir], DEVICES)
    except landlock.LandlockUnavailable as exc:
        result = None
        reason = landlock.Confinement(0, str(exc)).describe()
    try:
        network = netdeny.lock_down()
    except netdeny.NetDenyUnavailable as exc:
        network = f"network and capabilities NOT restricted: {exc}"
    if result is None:
        return False, f"{reason}; {network}"
    description = f"{result.describe()}; {network}"
    if dropped:
        description += "; left out (they hold the worker's data): " + ", ".join(map(str, dropped))
    return True, description


PR_SET_CHILD_SUBREAPER = 36
KILL_TIMEOUT_S = 10.0


def _live_below(root: int) -> list:
    """psutil.Process of every live (not zombie) process below ``root``; [] if ``root`` is gone."""
    import psutil

    try:
        children = psutil.Process(root).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    live = []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                live.append(child)
        except psutil.NoSuchProcess:
            pass
    return live


def live_descendants(root: int) -> list[int]:
    """Every live (not zombie) process below ``root``, however deep; [] if ``root`` is gone."""
    return [child.pid for child in _live_below(root)]


def kill_descendants(root: int, timeout_s: float = KILL_TIMEOUT_S) -> list[int]:
    """SIGKILL every process below ``root`` until none is left alive (a process forked while
    we were at it is found on the next pass); the pids still alive after ``timeout_s``."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while True:
        live = []
        for child in _live_below(root):
            try:
                child.kill()  # psutil checks it is still the process it listed (no reused pid)
                live.append(child.pid)
            except psutil.NoSuchProcess:
                pass
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(0.005)


def keep(child: int) -> int:
    """The keeper's life: reap whatever is re-parented to us until the serving process ``child``
    ends, then kill all it left behind and end the same way it did. SIGTERM (also what the
    keeper gets when the worker dies) kills the whole tree at once."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # the worker must see EOF on its pipe once the serving process is gone
    os.dup2(devnull, 1)
    os.close(devnull)
    import psutil  # noqa: F401 - loaded now, so that SIGTERM kills the tree at once

    def stop(signum: int, frame: object) -> None:
        kill_descendants(os.getpid())
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    code = 0
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            kill_descendants(os.getpid())
    if code < 0:  # end like the serving process did, so the worker can say so
        if -code not in (signal.SIGKILL, signal.SIGSTOP):  # those two have no handler to reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def _set_subreaper() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                  ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def main() -> int:
    from hivemind_core.procwatch import set_parent_death_signal

    set_parent_death_signal(signal.SIGTERM)   # the keeper: kill the tree when the worker dies
    expected_parent = int(os.environ.get("HIVEMIND_SANDBOX_PARENT", "0"))
    if expected_parent and os.getppid() != expected_parent:
        return 0  # the worker died before we could ask to die with it
    if len(sys.argv) != 3:
        print("usage: python -m hivemind_core.worker.sandbox_child INPUT_DIR SCRATCH_DIR", file=sys.stderr)
        return 2
    _set_subreaper()
    keeper = os.getpid()
    child = os.fork()
    if child:
        return keep(child)
    set_parent_death_signal()
    if os.getppid() != keeper:
        return 0
    return serve()


def _warm_up(scratch: Path) -> None:
    """Run a tiny shard through pandas and Arrow once, before the memory baseline is taken:
    the allocators (mimalloc's arenas, malloc's per-thread arenas) and Arrow's thread pools
    reserve their address space on first use, which would otherwise count against the first
    job's ``memory_mb`` in a fresh child (a 4-row group-by failed under 1024 MB in CI)."""
    import pandas as pd

    from hivemind_core.jobs.results import read_ipc, write_ipc

    path = scratch / ".warm-up.arrow"
    try:
        frame = pd.DataFrame({"k": ["a", "b", "a"], "v": [1.0, 2.0, 3.0]})
        read_ipc(write_ipc(frame.groupby("k", as_index=False).sum(), path)).to_pandas()
    finally:
        path.unlink(missing_ok=True)


def serve() -> int:
    """The serving process: confine, say ready, run jobs until the worker closes the pipe."""
    # first, while this is the only thread and nothing but the interpreter is loaded
    confined, confinement = confine_child(Path(sys.argv[1]), Path(sys.argv[2]))

    from hivemind_core.worker.operations import operation_names, own_operations

    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # operations' prints go to stderr, never into the protocol
    sys.stdout = sys.stderr
    proto_in = sys.stdin.buffer
    operation_names()  # import every operation module now, once
    _warm_up(Path(sys.argv[2]))
    baseline = address_space_bytes()
    write_reply(proto_out, "ready", pid=os.getpid(), confined=confined, confinement=confinement,
                own_operations=own_operations())
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
