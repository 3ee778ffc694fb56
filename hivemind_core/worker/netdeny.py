"""Take the network and every capability away from the sandbox child.

Why, on top of Landlock (:mod:`hivemind_core.worker.landlock`): Landlock limits
files, TCP bind/connect (ABI >= 4) and signals, but not other socket kinds. A
worker often runs as root (containers, the embedded cluster of a root-run app),
so user code kept root's capabilities: a raw ``AF_PACKET`` socket read every
local packet (other users' API tokens, login cookies, shard data on the way to
other workers), and MPTCP (``socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)``) got
around Landlock's TCP rule to reach the web app and the node pool. So the child,
right after Landlock and before any user code:

* drops every capability: the bounding set (so no later ``execve`` of anything
  gets one back, even as uid 0), the ambient set, and its effective, permitted and
  inheritable sets;
* installs a seccomp filter (inherited by all its children, irreversible) under
  which ``socket()`` works only for ``AF_UNIX`` (local pipes such as
  ``multiprocessing`` uses; abstract names are scoped by Landlock, paths by its
  file rules), every other family fails with ``EAFNOSUPPORT``; ``io_uring_setup``
  (which can open sockets on its own) fails with ``EPERM``; and calls through a
  foreign syscall ABI (x86 32-bit, x32) fail with ``EPERM``, so they cannot slip
  past the filter's syscall numbers.

Plain ``ctypes``; x86_64 and aarch64. On another architecture :func:`deny_network`
raises :class:`NetDenyUnavailable` and the caller says the child is not fully
confined.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from pathlib import Path

from hivemind_core.errors import HiveMindError

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
AF_UNIX = 1

# seccomp return values and BPF opcodes (linux/seccomp.h, linux/filter.h)
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
LD_W_ABS = 0x20            # BPF_LD | BPF_W | BPF_ABS
JEQ_K = 0x15               # BPF_JMP | BPF_JEQ | BPF_K
JGE_K = 0x35               # BPF_JMP | BPF_JGE | BPF_K
RET_K = 0x06               # BPF_RET | BPF_K
OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16   # struct seccomp_data (arg0's low 32 bits, little endian)

# machine -> (AUDIT_ARCH, socket nr, io_uring_setup nr)
ARCHES = {
    "x86_64": (0xC000003E, 41, 425),
    "aarch64": (0xC00000B7, 198, 425),
}
X32_SYSCALL_BIT = 0x40000000


class NetDenyUnavailable(HiveMindError):
    """This machine's architecture is not one the socket filter knows."""


class _Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def drop_capabilities() -> None:
    """Give up every capability for good (this process and all it starts)."""
    libc = _libc()
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        # needs CAP_SETPCAP; without it there is nothing to drop from (not root) or EINVAL past the end
        if libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0 and ctypes.get_errno() not in (
                errno.EPERM, errno.EINVAL):
            _check(-1, f"prctl(PR_CAPBSET_DROP, {cap})")
    if libc.prctl(PR_CAP_AMBIENT, ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0) != 0 and \
            ctypes.get_errno() != errno.EINVAL:   # EINVAL: kernel < 4.3, no ambient set
        _check(-1, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capset")


def _socket_filter(audit_arch: int, nr_socket: int, nr_io_uring_setup: int) -> list[_Filter]:
    deny_eperm = _Filter(RET_K, 0, 0, RET_ERRNO | errno.EPERM)
    return [
        _Filter(LD_W_ABS, 0, 0, OFF_ARCH),
        _Filter(JEQ_K, 1, 0, audit_arch),              # native ABI: go on
        deny_eperm,                                      # a foreign ABI (i386 socketcall, ...)
        _Filter(LD_W_ABS, 0, 0, OFF_NR),
        _Filter(JGE_K, 0, 1, X32_SYSCALL_BIT),
        deny_eperm,                                      # x32 numbers
        _Filter(JEQ_K, 0, 1, nr_io_uring_setup),
        deny_eperm,
        _Filter(JEQ_K, 0, 3, nr_socket),                 # not socket(): allow
        _Filter(LD_W_ABS, 0, 0, OFF_ARG0),
        _Filter(JEQ_K, 1, 0, AF_UNIX),
        _Filter(RET_K, 0, 0, RET_ERRNO | errno.EAFNOSUPPORT),
        _Filter(RET_K, 0, 0, RET_ALLOW),
    ]


def deny_network() -> None:
    """Install the socket filter (see the module docstring) for good."""
    machine = platform.machine()
    if machine not in ARCHES:
        raise NetDenyUnavailable(f"no socket filter for the {machine} architecture")
    rules = _socket_filter(*ARCHES[machine])
    program = (_Filter * len(rules))(*rules)
    libc = _libc()
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    prog = _Program(len(rules), ctypes.cast(program, ctypes.POINTER(_Filter)))
    _check(libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog), 0, 0),
           "prctl(PR_SET_SECCOMP)")


def lock_down() -> str:
    """Drop capabilities and deny the network: a short description of what was done."""
    drop_capabilities()
    deny_network()
    return "no capabilities; sockets: local (AF_UNIX) only"
