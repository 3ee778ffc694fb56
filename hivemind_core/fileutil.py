"""Atomic file writes (a temp file in the same directory, fsync, rename) and
private directories."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o600) -> Path:
    """Write ``data`` to ``path`` atomically with permission ``mode``.

    Readers see either the old file or the new one, never a torn write; the file
    never exists with wider permissions than ``mode``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


def private_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a directory only its owner may enter (0700): created so, or tightened
    if it exists with group/other access and belongs to this user. For data dirs:
    databases, blobs, uploads and results must not be readable by other local users."""
    folder = Path(path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_mode & 0o077 and st.st_uid == os.getuid():
        os.chmod(folder, 0o700)
    return folder


def check_output_path(path: str | os.PathLike[str], *, create_parents: bool = False) -> Path:
    """``path`` as a Path if a file can be written there, before any work is done for it.

    Refuses a directory, a path under a file, a missing folder (unless
    ``create_parents``) and a folder that takes no new file. Writability is
    tried, not guessed: ``os.access`` says yes to root even on /proc. Raises
    :class:`~hivemind_core.errors.OutputPathError` with a one-line message.
    """
    from hivemind_core.errors import OutputPathError

    def fail(problem: str) -> OutputPathError:
        return OutputPathError(f"--output: cannot write {target}: {problem}", field="output")

    target = Path(path).expanduser()
    if target.is_dir():
        raise fail(f"it is a directory; give a file name, e.g. {target / 'result'}")
    folder = target.parent
    blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise fail(f"{blocker} is a file, not a directory")
    if target.exists() and not target.is_file():
        raise fail("it exists and is not a regular file; choose another name")
    if not folder.exists():
        if not create_parents:
            raise fail(f"the directory {folder} does not exist; create it first or choose another place")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fail(f"cannot create the directory {folder} ({exc.strerror or exc})") from None
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".check")
    except OSError as exc:
        raise fail(f"cannot create files in {folder} ({exc.strerror or exc}); choose another place") from None
    os.close(fd)
    os.unlink(probe)
    return target
