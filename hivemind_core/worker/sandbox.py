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
from hivemind_core.worker.sandbox_child import HEADER, INLINE_LIMIT

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

    # ------------------------------------------------------------ child process

    def _start(self) -> subprocess.Popen:
        # both must exist before the child starts: its Landlock rules are bound to them
        private_dir(self.root)
        self.input_dir.mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "hivemind_core.worker.sandbox_child", str(self.input_dir), str(self.scratch)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
            cwd=self.root, env=scrubbed_env(self.root), close_fds=True,
        )
        try:
            reply = self._read(proc, START_TIMEOUT_S)
        except BadReply:
            reply = None
        if not reply or reply["status"] != "ready":
            self._kill(proc)
            raise RuntimeError(f"sandbox {self.name} failed to start (exit code {proc.poll()})")
        self.confined, self.confinement = reply.get("confined") is True, str(reply.get("confinement", ""))
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

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
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
        if self._proc is not None:
            self._kill(self._proc)
            self._proc = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # ------------------------------------------------------------ running

    @property
    def scratch(self) -> Path:
        """The private scratch dir the running operation sees (emptied between subtasks)."""
        return self.root / "scratch"

    @property
    def input_dir(self) -> Path:
        """Where a subtask's input goes for the child to read (the one place it may read it from)."""
        return self.root / "input"

    def cancel(self) -> None:
        """Stop the subtask running now (from another thread)."""
        self._cancel.set()

    def run(self, job: SandboxJob) -> SandboxResult:
        """Run ``job``; the caller calls :meth:`clean` once it has used a file result."""
        with self._lock:
            self._cancel.clear()
            self.scratch.mkdir(parents=True, exist_ok=True)
            if self._proc is not None and select.select([self._proc.stdout.fileno()], [], [], 0)[0]:
                # output between jobs: the child died, or something in it wrote to our pipe
                self._recycle()
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            staged = self._stage_input(job.input_path)
            try:
                return self._run(job, staged or job.input_path)
            finally:
                if staged is not None:
                    staged.unlink(missing_ok=True)

    def _stage_input(self, path: Path | None) -> Path | None:
        """An input outside :attr:`input_dir` is out of the child's reach: link (or copy) it
        in for the run; the path to remove afterwards, None if nothing was staged."""
        if path is None or Path(path).parent == self.input_dir:
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
