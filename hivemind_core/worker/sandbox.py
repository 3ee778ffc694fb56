"""Run operations in a persistent child process with a time limit, a memory
limit, a private scratch dir and a scrubbed environment.

One :class:`Sandbox` per worker slot. The child
(:mod:`hivemind_core.worker.sandbox_child`) is started once and reused for
many subtasks; it is replaced after a time-out, a memory overrun, a crash or a
cancellation. Whatever happens, :meth:`Sandbox.run` returns a
:class:`SandboxResult` with a plain message — it never raises for the
operation's sake.

The child confines itself with Landlock before it loads any user code: it can
read the interpreter and libraries, the subtask's input (:attr:`Sandbox.input_dir`)
and read/write only its scratch dir (:attr:`Sandbox.scratch`); no TCP. On a
kernel without Landlock it runs unconfined and the worker logs a WARNING once.

The child is shared by the subtasks of different tasks and users, and user code
can leave a thread or a background process behind. So once user code (any
operation not registered with ``user_code=False``) has run in a child, that child
belongs to the user code's task: before a subtask of another task runs, the slot
is *recycled* — its whole process tree killed (the keeper, see
:mod:`~hivemind_core.worker.sandbox_child`, is a child subreaper, so even a
``setsid`` double-forked grandchild is still in its tree) and the scratch and
input dirs replaced by new ones. Landlock rules hold on to the directories'
inodes, not their paths: a process that somehow survived, confined to the old
dirs, cannot reach the new ones at the same paths. After each user-code subtask
the slot's process tree is also checked, and a child that left processes running
is recycled at once (threads inside the child cannot be seen from outside
cheaply: hence the recycle on a task change). Pipeline-only work never taints a
child and keeps it warm across tasks. Inputs are fetched into :attr:`Sandbox.inbox`,
out of the child's reach, and linked into the input dir only when their subtask
runs, after any recycle.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import select
import shutil
import stat
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hivemind_core
from hivemind_core.fileutil import private_dir
from hivemind_core.worker.sandbox_child import HEADER, INLINE_LIMIT, kill_descendants, live_descendants

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(hivemind_core.__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0
POLL_S = 0.25  # how often a long run checks for cancellation


class SandboxCancelled(Exception):
    pass


class BadReply(Exception):
    """The child wrote something that is not a reply of ours (user code can write to the pipe)."""


REPLY_STATUSES = ("ready", "ok", "error", "memory")
MAX_META = 64 * 1024 * 1024     # a reply's JSON (a traceback can be long, but not this long)
FRAME_TIMEOUT_S = 30.0          # once a reply has begun, the rest of it must come within this
RESULT_NAME = "result.out"      # a file result, moved out of the child's reach (into the slot root)


_warned_unconfined = False


@dataclass
class SandboxJob:
    subtask_id: str
    task_id: str
    operation: str
    params: bytes
    input_path: Path | None
    timeout_s: float
    memory_mb: int


@dataclass
class SandboxResult:
    status: str                 # ok | error | timeout | memory | crashed | cancelled
    data: bytes | None = None   # small result inline
    path: Path | None = None    # or a file in the scratch dir
    message: str = ""           # traceback or a plain explanation

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def retryable(self) -> bool:
        """A crash may be the machine's fault; an operation's own error, time-out or
        memory overrun would happen again."""
        return self.status == "crashed"


def scrubbed_env(scratch: Path) -> dict[str, str]:
    """Only what Python needs: no tokens, no credentials from the worker's environment."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(PROJECT_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        # one thread per library: the slot is one core, and each thread's arena
        # would count against the memory limit
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "ARROW_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
        "HIVEMIND_SANDBOX_PARENT": str(os.getpid()),
    }


class Sandbox:
    def __init__(self, root: Path, name: str = "slot") -> None:
        self.root = Path(root)
        self.name = name
        self._proc: subprocess.Popen | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self.confined: bool | None = None   # known once the child has started
        self.confinement = ""               # what the child said about its confinement
        self.child_pid: int | None = None   # the serving process (the keeper's child; pid is the keeper's)
        self._own_ops: frozenset[str] = frozenset()  # operations that run no user code (the child said so)
        self._owner: str | None = None      # the task whose user code ran in this child

    # ------------------------------------------------------------ child process

    def _start(self) -> subprocess.Popen:
        # new dirs for each child, made before it starts: its Landlock rules are bound to them
        private_dir(self.root)
        self._remove_dirs()
        self.input_dir.mkdir()
        self.scratch.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-m", "hivemind_core.worker.sandbox_child", str(self.input_dir), str(self.scratch)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
            cwd=self.root, env=scrubbed_env(self.root), close_fds=True, start_new_session=True,
        )
        try:
            reply = self._read(proc, START_TIMEOUT_S)
        except BadReply:
            reply = None
        if not reply or reply["status"] != "ready":
            self._kill(proc)
            raise RuntimeError(f"sandbox {self.name} failed to start (exit code {proc.poll()})")
        self.confined, self.confinement = reply.get("confined") is True, str(reply.get("confinement", ""))
        # said before any user code ran in the child: trustworthy
        self.child_pid = reply.get("pid") if isinstance(reply.get("pid"), int) else None
        own = reply.get("own_operations")
        self._own_ops = frozenset(op for op in own if isinstance(op, str)) if isinstance(own, list) else frozenset()
        log.debug("sandbox %s started (pid %d): %s", self.name, proc.pid, self.confinement)
        if not self.confined:
            _warn_unconfined(self.confinement)
        return proc

    @staticmethod
    def _read(proc: subprocess.Popen, timeout: float | None) -> dict[str, Any] | None:
        """One reply (its JSON fields, its bytes as ``data``), or None on EOF; TimeoutError when
        nothing came in ``timeout``; :class:`BadReply` for anything but a well-formed reply.

        Never unpickled: user code in the child can write to this pipe."""
        fd = proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise TimeoutError
        deadline = time.monotonic() + FRAME_TIMEOUT_S
        header = _read_exact(fd, HEADER.size, deadline)
        if header is None:
            return None
        size = HEADER.unpack(header)[0]
        if size > MAX_META:
            raise BadReply(f"reply header of {size} bytes")
        meta = _read_exact(fd, size, deadline)
        header = _read_exact(fd, HEADER.size, deadline)
        if meta is None or header is None:
            return None
        size = HEADER.unpack(header)[0]
        if size > INLINE_LIMIT:
            raise BadReply(f"inline result of {size} bytes")
        data = _read_exact(fd, size, deadline)
        if data is None:
            return None
        try:
            reply = json.loads(meta)
        except ValueError as exc:
            raise BadReply(f"reply is not JSON ({exc})") from None
        if not isinstance(reply, dict) or reply.get("status") not in REPLY_STATUSES:
            raise BadReply("reply without a known status")
        reply["data"] = data
        return reply

    def _kill(self, proc: subprocess.Popen) -> None:
        """Kill the keeper's whole tree (the child and whatever it left behind), then the keeper."""
        left = kill_descendants(proc.pid)
        if left:
            log.warning("sandbox %s: processes %s did not die on SIGKILL; their dirs are replaced anyway",
                        self.name, left)
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def _recycle(self) -> None:
        """Kill the slot's processes and drop its scratch and input dirs (the next child gets new ones)."""
        if self._proc is not None:
            self._kill(self._proc)
            self._proc = None
        self._owner = None
        self.child_pid = None
        self._remove_dirs()

    def _remove_dirs(self) -> None:
        """Remove the scratch and input dirs (and any an earlier removal could not finish).

        Renamed away first, so a new dir can take the path even if the removal fails."""
        for path in (self.scratch, self.input_dir):
            if path.exists() or path.is_symlink():
                os.replace(path, self.root / f".old-{uuid.uuid4().hex}")
        for old in self.root.glob(".old-*"):
            _remove_tree(old)

    def leftovers(self) -> list[int]:
        """Live processes of this slot other than the serving child: what user code left running."""
        if self._proc is None:
            return []
        return [pid for pid in live_descendants(self._proc.pid) if pid != self.child_pid]

    @property
    def pid(self) -> int | None:
        """The sandbox process the worker started (the keeper); a new one after each recycle."""
        return self._proc.pid if self._proc else None

    # ------------------------------------------------------------ running

    @property
    def scratch(self) -> Path:
        """The private scratch dir the running operation sees (emptied between subtasks)."""
        return self.root / "scratch"

    @property
    def input_dir(self) -> Path:
        """Where :meth:`run` links a subtask's input for the child to read (the one place it may
        read it from); replaced on every recycle, so never put an input here yourself."""
        return self.root / "input"

    @property
    def inbox(self) -> Path:
        """Where to fetch a subtask's input (created if missing): in the slot, out of the child's
        reach, so a child still holding another task's leftovers never sees it."""
        private_dir(self.root)
        path = self.root / "inbox"
        path.mkdir(exist_ok=True)
        return path

    def cancel(self) -> None:
        """Stop the subtask running now (from another thread)."""
        self._cancel.set()

    def run(self, job: SandboxJob) -> SandboxResult:
        """Run ``job``; the caller calls :meth:`clean` once it has used a file result."""
        with self._lock:
            self._cancel.clear()
            if self._proc is not None and (self._proc.poll() is not None
                                           or select.select([self._proc.stdout.fileno()], [], [], 0)[0]):
                # output between jobs: the child died, or something in it wrote to our pipe
                self._recycle()
            elif self._owner is not None and self._owner != job.task_id:
                log.debug("sandbox %s: task %s's user code ran in this child; new child for task %s",
                          self.name, self._owner, job.task_id)
                self._recycle()
            if self._proc is None:
                self._proc = self._start()
            self.scratch.mkdir(parents=True, exist_ok=True)
            user_code = job.operation not in self._own_ops
            staged = self._stage_input(job.input_path)
            try:
                result = self._run(job, staged)
            finally:
                if staged is not None:
                    staged.unlink(missing_ok=True)
            if user_code and self._proc is not None:
                self._owner = job.task_id
                left = self.leftovers()
                if left:
                    log.warning("sandbox %s: the user code of subtask %s left %d processes running; "
                                "replacing the sandbox", self.name, job.subtask_id, len(left))
                    self._recycle()
            return result

    def _stage_input(self, path: Path | None) -> Path | None:
        """Link (or copy) the input into :attr:`input_dir` for the run, the one place the child
        may read it; the path to remove afterwards, None if there is no input."""
        if path is None:
            return None
        staged = self.input_dir / f".staged-{uuid.uuid4().hex}-{Path(path).name}"
        try:
            os.link(path, staged)
        except OSError:  # another filesystem, or links not allowed
            shutil.copyfile(path, staged)
        return staged

    def _run(self, job: SandboxJob, input_path: Path | None) -> SandboxResult:
        """:meth:`run` with the input where the child may read it (called holding the lock)."""
        scratch = self.scratch
        proc = self._proc
        frame = pickle.dumps({
            "subtask_id": job.subtask_id, "task_id": job.task_id, "operation": job.operation,
            "params": job.params, "input_path": str(input_path) if input_path else "",
            "scratch_dir": str(scratch), "memory_mb": job.memory_mb,
        }, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            proc.stdin.write(HEADER.pack(len(frame)) + frame)
            proc.stdin.flush()
            reply = self._wait(proc, job.timeout_s)
        except TimeoutError:
            self._recycle()
            return SandboxResult("timeout", message=f"time limit of {job.timeout_s:g} s exceeded; "
                                                     "raise timeout_s or process smaller shards")
        except SandboxCancelled:
            self._recycle()
            return SandboxResult("cancelled", message="cancelled while running")
        except (BrokenPipeError, OSError):
            reply = None
        except BadReply as exc:
            log.warning("sandbox %s: %s; replacing the sandbox process", self.name, exc)
            self._recycle()
            return SandboxResult("crashed", message="the sandbox process sent a malformed reply (did the "
                                                    "operation write to the worker's pipe?)")
        if reply is None:
            code = proc.wait()
            self._recycle()
            return SandboxResult("crashed", message=f"the sandbox process died while running the "
                                                    f"operation (exit code {code})")
        status = reply["status"]
        if status == "ready" or reply.get("subtask_id") != job.subtask_id:
            log.warning("sandbox %s: a reply that is not the running subtask's; replacing the sandbox "
                        "process", self.name)
            self._recycle()
            return SandboxResult("crashed", message="the sandbox process sent a reply for another subtask")
        if status == "ok":
            path = reply.get("path")
            if not path:
                return SandboxResult("ok", data=reply["data"])
            claimed = self._claim_result(path)
            if claimed is None:  # user code forged a reply: its real one may still come
                self._recycle()
                return SandboxResult("error", message="the operation's result file must be a regular file "
                                                      "directly in its scratch dir")
            return SandboxResult("ok", path=claimed)
        if status == "memory":
            self._recycle()
        return SandboxResult(status, message=str(reply.get("message", "")))

    def _claim_result(self, path: object) -> Path | None:
        """Move a file result out of the scratch dir (where the child could still swap it) into
        the slot root (where it cannot); None unless it is a regular file directly in scratch.

        Keeps a script from making the worker upload a file the script itself may not read."""
        if not isinstance(path, str) or os.path.realpath(Path(path).parent) != os.path.realpath(self.scratch):
            return None
        claimed = self.root / RESULT_NAME
        try:  # the child may not rename scratch itself, and a rename never follows a symlink
            os.replace(self.scratch / Path(path).name, claimed)
        except OSError:
            return None
        if not stat.S_ISREG(os.lstat(claimed).st_mode):
            claimed.unlink(missing_ok=True)
            return None
        return claimed

    def _wait(self, proc: subprocess.Popen, timeout_s: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self._cancel.is_set():
                raise SandboxCancelled
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            try:
                return self._read(proc, min(left, POLL_S))
            except TimeoutError:
                continue

    def clean(self) -> None:
        """Empty the scratch dir (cheap when the operation left nothing); drop a claimed result."""
        (self.root / RESULT_NAME).unlink(missing_ok=True)
        try:
            leftovers = os.listdir(self.scratch)
        except FileNotFoundError:
            return
        for name in leftovers:
            path = self.scratch / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        self._cancel.set()
        with self._lock:
            if self._proc is not None:
                try:
                    self._proc.stdin.close()  # EOF: the child exits by itself
                    self._proc.wait(timeout=2)
                except (OSError, subprocess.TimeoutExpired):
                    pass
                self._recycle()

    def kill(self) -> None:
        """Kill the child now, even mid-run (shutdown after the drain time)."""
        proc = self._proc
        if proc is not None:
            kill_descendants(proc.pid)
            try:
                proc.kill()
            except ProcessLookupError:
                pass


def _warn_unconfined(confinement: str) -> None:
    global _warned_unconfined
    if not _warned_unconfined:
        _warned_unconfined = True
        log.warning("user code runs UNCONFINED on this worker (%s): scripts can read every file this "
                    "worker's OS user can, e.g. a co-located master's or node pool's data dir", confinement)


def _remove_tree(path: Path) -> None:
    """Remove ``path`` even if user code took the write bit off a dir in it."""

    def retry(func, failed, exc_info) -> None:  # noqa: ANN001 - shutil.rmtree's onerror
        try:
            os.chmod(os.path.dirname(failed), 0o700)
            func(failed)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)


def _read_exact(fd: int, n: int, deadline: float) -> bytes | None:
    parts, left = [], n
    while left:
        wait = deadline - time.monotonic()
        if wait <= 0 or not select.select([fd], [], [], wait)[0]:
            raise BadReply("the reply stopped half-way")
        chunk = os.read(fd, min(left, 1024 * 1024))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)
