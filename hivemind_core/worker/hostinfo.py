"""What a worker tells the node pool about its machine when it registers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import psutil


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def memory_mb() -> int:
    return int(psutil.virtual_memory().total // (1024 * 1024))


def gpu() -> str:
    """The first GPU ``nvidia-smi -L`` lists, or "" (none, or no NVIDIA tools)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return ""
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.splitlines()[0].strip() if out.strip() else ""


def hostname() -> str:
    return socket.gethostname()
