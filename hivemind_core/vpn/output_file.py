"""``--output FILE`` for configs: checked before anything is stored, then written 0600 atomically.

A client config with a generated private key exists only once, so the CLI
checks the target first (:func:`prepare_output`) and writes it inside the
peer's transaction (``add_peer(deliver=...)``): a path that cannot be written
never leaves a stored peer whose key is lost. Errors are one-line
:class:`OutputPathError` messages, not tracebacks.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hivemind_core.fileutil import atomic_write
from hivemind_core.vpn.errors import OutputPathError


def _reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def prepare_output(path_text: str) -> Path:
    """The target path, with its directory created and proven writable; :class:`OutputPathError` otherwise.

    Writability is tried, not guessed (``os.access`` says yes to root even on
    /proc): a temp file like the one :func:`atomic_write` makes is created and
    removed again."""
    target = Path(path_text).expanduser()
    if target.is_dir():
        raise OutputPathError(f"Cannot write {target}: it is a directory; give a file name, "
                              f"e.g. {target / 'peer.conf'}.", field="output")
    parent = target.parent
    blocker = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise OutputPathError(f"Cannot write {target}: {blocker} is a file, not a directory.", field="output")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"Cannot write {target}: cannot create the directory {parent} ({_reason(exc)}).",
                              field="output") from None
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputPathError(f"Cannot write {target}: cannot create files in {parent} ({_reason(exc)}); "
                              "choose another --output path.", field="output") from None
    os.close(fd)
    os.unlink(probe)
    return target


def write_output(target: Path, text: str) -> Path:
    """Write ``text`` to ``target`` (0600, temp file + rename); :class:`OutputPathError` on failure."""
    try:
        return atomic_write(target, text)
    except OSError as exc:
        raise OutputPathError(f"Cannot write {target}: {_reason(exc)}.", field="output") from None
