"""Child processes that never outlive their parent.

The embedded cluster's node pool and workers are started with
``--parent-pid PID``; :func:`exit_with_parent` then watches that pid from a
daemon thread and calls ``on_parent_exit`` once it is gone — also when the
parent was ``kill -9``'d and had no chance to stop them. (``PR_SET_PDEATHSIG``
alone is not enough there: it fires when the *thread* that forked exits,
which in a Streamlit app is a short-lived script thread.)

:func:`set_parent_death_signal` is used on top of that for the worker's
sandbox children, which are forked by long-lived threads.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
POLL_S = 0.5


def pid_alive(pid: int) -> bool:
    """True while a process with this pid exists (also one we may not signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def parent_alive(pid: int) -> bool:
    if os.getppid() != pid:  # re-parented: the original parent is gone
        return False
    return pid_alive(pid)


def exit_with_parent(pid: int, on_parent_exit: Callable[[], None]) -> threading.Thread:
    """Call ``on_parent_exit`` (once) as soon as process ``pid`` has exited."""

    def watch() -> None:
        stop = threading.Event()
        while parent_alive(pid):
            stop.wait(POLL_S)
        log.warning("parent process %d is gone; shutting down", pid)
        on_parent_exit()

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.start()
    return thread


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """Linux: deliver ``sig`` to this process when its parent (thread) dies. No-op elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except OSError:
        pass
