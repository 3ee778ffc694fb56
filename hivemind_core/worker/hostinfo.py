"""What a worker tells the node pool about its machine when it registers."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import uuid
from functools import cache
from pathlib import Path

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


MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")


@cache
def host_id() -> str:
    """The same short id for every worker process on one machine, another on any other:
    the OS machine id (falling back to the MAC address) with the host name, hashed so the
    machine id itself is not sent. Cluster totals count cores and memory once per host id."""
    machine = ""
    for name in MACHINE_ID_FILES:
        try:
            machine = Path(name).read_text().strip()
        except OSError:
            continue
        if machine:
            break
    machine = machine or f"mac-{uuid.getnode():012x}"
    return hashlib.sha256(f"{machine}|{hostname()}".encode()).hexdigest()[:16]


def sandbox_confinement() -> str:
    """How this machine confines user code (the sandbox child), for the node's ``sandbox``
    label: "landlock ABI N", or "UNCONFINED" on a kernel without Landlock (< 5.13 or disabled)."""
    from hivemind_core.monitoring.alerts import UNCONFINED
    from hivemind_core.worker.landlock import abi_version

    abi = abi_version()
    return f"landlock ABI {abi}" if abi else UNCONFINED
