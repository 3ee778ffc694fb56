"""Run operations in a persistent child process with a time limit, a memory
limit, a private scratch dir and a scrubbed environment.

One :class:`Sandbox` per worker slot. The child
(:mod:`hivemind_core.worker.sandbox_child`) is started once and reused for
many subtasks; it is replaced after a time-out, a memory overrun, a crash or a
cancellation. Whatever happens, :meth:`Sandbox.run` returns a
:class:`SandboxResult` with a plain message — it never raises for the
operation's sake.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import hivemind_core
from hivemind_core.worker.sandbox_child import HEADER

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(hivemind_core.__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0
POLL_S = 0.25  # how often a long run checks for cancellation


class SandboxCancelled(Exception):
    pass


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

    # ------------------------------------------------------------ child process

    def _start(self) -> subprocess.Popen:
        self.root.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "hivemind_core.worker.sandbox_child"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
            cwd=self.root, env=scrubbed_env(self.root), close_fds=True,
        )
        reply = self._read(proc, START_TIMEOUT_S)
        if not reply or reply[0] != "ready":
            self._kill(proc)
            raise RuntimeError(f"sandbox {self.name} failed to start (exit code {proc.poll()})")
        log.debug("sandbox %s started (pid %d)", self.name, proc.pid)
        return proc

    @staticmethod
    def _read(proc: subprocess.Popen, timeout: float | None) -> tuple | None:
        """One reply frame, or None on EOF; TimeoutError when nothing came in ``timeout``."""
        fd = proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise TimeoutError
        header = _read_exact(fd, HEADER.size)
        if header is None:
            return None
        payload = _read_exact(fd, HEADER.unpack(header)[0])
        return None if payload is None else pickle.loads(payload)

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

    def cancel(self) -> None:
        """Stop the subtask running now (from another thread)."""
        self._cancel.set()

    def run(self, job: SandboxJob) -> SandboxResult:
        """Run ``job``; the caller calls :meth:`clean` once it has used a file result."""
        with self._lock:
            self._cancel.clear()
            scratch = self.scratch
            scratch.mkdir(parents=True, exist_ok=True)
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            frame = pickle.dumps({
                "subtask_id": job.subtask_id, "task_id": job.task_id, "operation": job.operation,
                "params": job.params, "input_path": str(job.input_path) if job.input_path else "",
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
            if reply is None:
                code = proc.wait()
                self._recycle()
                return SandboxResult("crashed", message=f"the sandbox process died while running the "
                                                        f"operation (exit code {code})")
            status = reply[0]
            if status == "ok":
                return SandboxResult("ok", data=reply[1], path=Path(reply[2]) if reply[2] else None)
            if status == "memory":
                self._recycle()
            return SandboxResult(status, message=reply[1])

    def _wait(self, proc: subprocess.Popen, timeout_s: float) -> tuple | None:
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
        """Empty the scratch dir (cheap when the operation left nothing)."""
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


def _read_exact(fd: int, n: int) -> bytes | None:
    parts, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)
