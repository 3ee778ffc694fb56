"""Confine the sandbox child with Landlock before it runs any user code.

Why: user code (``script`` jobs' ``process(df)``, ML and simulation scripts)
runs in the worker's sandbox child. On the embedded cluster that child runs as
the same OS user as the master, so without confinement a script could read
``<data dir>/secrets/cookie_key`` (and forge an admin login), the VPN keys,
``master.db``, the node pool's database and blobs, and other users' uploads and
results. Landlock (a Linux security module, kernel >= 5.13, usable without
privileges) lets a process give up access to everything but a few file
hierarchies, irreversibly and for all its future children.

:func:`confine` is called by :mod:`hivemind_core.worker.sandbox_child` first
thing, while it is single-threaded (Landlock restricts the calling thread only)
and before it imports the operations or reads a job:
read + execute on what Python needs, read-only on the slot's input dir,
read-write on the slot's scratch dir, and (kernel ABI >= 4) no TCP at all;
(ABI >= 6) no signals to, and no abstract unix sockets of, processes outside the
sandbox. Only rights the running kernel's ABI knows are asked for, so one
ruleset works on every Landlock kernel. A kernel without Landlock raises
:class:`LandlockUnavailable`; the caller then runs unconfined and says so.

Plain ``ctypes`` syscalls (the Landlock syscall numbers are the same on every
architecture): no dependency.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hivemind_core.errors import HiveMindError

SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
LANDLOCK_RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

# filesystem rights (include/uapi/linux/landlock.h)
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13       # ABI 2: link/rename across directories
TRUNCATE = 1 << 14    # ABI 3
IOCTL_DEV = 1 << 15   # ABI 5
# network rights (ABI 4)
NET_BIND_TCP = 1 << 0
NET_CONNECT_TCP = 1 << 1
# scopes (ABI 6)
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

_FS_BY_ABI = {1: (1 << 13) - 1, 2: REFER, 3: TRUNCATE, 5: IOCTL_DEV}
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the only rights a rule on a file may hold

READ = EXECUTE | READ_FILE | READ_DIR
WRITE = (READ | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO
         | MAKE_SYM | REFER | TRUNCATE)
DEVICE_RW = READ_FILE | WRITE_FILE | TRUNCATE


class LandlockUnavailable(HiveMindError):
    """The kernel has no Landlock (too old, or not enabled at boot)."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@dataclass(frozen=True)
class Confinement:
    """What :func:`confine` did: ``abi`` 0 = nothing (``reason`` says why)."""

    abi: int
    reason: str = ""

    @property
    def confined(self) -> bool:
        return self.abi > 0

    def describe(self) -> str:
        if self.confined:
            network = "no TCP" if self.abi >= 4 else "network not restricted (Landlock ABI < 4)"
            return f"Landlock ABI {self.abi}: files limited to the interpreter, input and scratch dir; {network}"
        return f"NOT confined: {self.reason}"


_libc = None
_current = Confinement(0, "this process did not call confine()")


def current() -> Confinement:
    """This process's confinement (what the last :func:`confine` call did)."""
    return _current


def _syscall(*args: object) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    ret = _libc.syscall(*args)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or not enabled at boot)."""
    try:
        return _syscall(ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
                        ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP):
            return 0
        raise
    except AttributeError:  # no syscall() in this libc (not Linux)
        return 0


def handled_fs(abi: int) -> int:
    """Every filesystem right this ABI knows (all of them get restricted)."""
    return sum(bits for version, bits in _FS_BY_ABI.items() if version <= abi)


def _add_path_rule(ruleset_fd: int, path: Path, access: int, handled: int) -> bool:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False  # not there (e.g. no /lib64): nothing to allow
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            access &= FILE_RIGHTS
        attr = _PathBeneathAttr(access & handled, fd)
        _syscall(ctypes.c_long(SYS_LANDLOCK_ADD_RULE), ctypes.c_int(ruleset_fd),
                 ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(attr), ctypes.c_uint32(0))
    finally:
        os.close(fd)
    return True


def confine(read: Iterable[Path], write: Iterable[Path] = (), devices: Iterable[Path] = (),
            *, deny_network: bool = True) -> Confinement:
    """Restrict this process (and every process it starts) for good.

    ``read``: read + execute beneath these paths; ``write``: read, write, create,
    remove beneath these; ``devices``: read + write of these device files. All
    else in the filesystem is denied; so is TCP (when ``deny_network`` and the
    kernel's ABI >= 4), and signals to / abstract unix sockets of processes
    outside the sandbox (ABI >= 6). Paths that do not exist are skipped.

    Raises :class:`LandlockUnavailable` on a kernel without Landlock and
    ``OSError`` if the kernel refuses the ruleset (a bug: do not run user code).
    """
    global _current
    abi = abi_version()
    if abi > 0 and len(os.listdir("/proc/self/task")) != 1:
        # Landlock restricts the calling thread only: another thread would stay free
        raise RuntimeError("confine() must be called while the process has a single thread")
    if abi <= 0:
        _current = Confinement(0, "this kernel has no Landlock (needs Linux >= 5.13 with Landlock enabled)")
        raise LandlockUnavailable(_current.reason)
    handled = handled_fs(abi)
    attr = _RulesetAttr(handled_access_fs=handled)
    size = ctypes.sizeof(ctypes.c_uint64)
    if abi >= 4 and deny_network:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP  # and no rule allows any port
        size = 2 * ctypes.sizeof(ctypes.c_uint64)
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = ctypes.sizeof(_RulesetAttr)
    ruleset_fd = _syscall(ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), ctypes.byref(attr),
                          ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        for path in read:
            _add_path_rule(ruleset_fd, Path(path), READ, handled)
        for path in write:
            _add_path_rule(ruleset_fd, Path(path), WRITE, handled)
        for path in devices:
            _add_path_rule(ruleset_fd, Path(path), DEVICE_RW, handled)
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                       ctypes.c_ulong(0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
        _syscall(ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset_fd), ctypes.c_uint32(0))
    finally:
        os.close(ruleset_fd)
    _current = Confinement(abi)
    return _current
