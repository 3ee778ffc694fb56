"""``--output FILE`` for configs: checked before anything is stored, then written 0600 atomically.

A client config with a generated private key exists only once, so the CLI
checks the target first (:func:`prepare_output`) and writes it inside the
peer's transaction (``add_peer(deliver=...)``): a path that cannot be written
never leaves a stored peer whose key is lost. Errors are one-line
:class:`OutputPathError` messages, not tracebacks.
"""

from __future__ import annotations

from pathlib import Path

from hivemind_core.errors import OutputPathError
from hivemind_core.fileutil import atomic_write, check_output_path


def prepare_output(path_text: str) -> Path:
    """The target path, its directory created and proven writable; :class:`OutputPathError` otherwise."""
    return check_output_path(path_text, create_parents=True)


def write_output(target: Path, text: str) -> Path:
    """Write ``text`` to ``target`` (0600, temp file + rename); :class:`OutputPathError` on failure."""
    try:
        return atomic_write(target, text)
    except OSError as exc:
        raise OutputPathError(f"--output: cannot write {target}: {exc.strerror or exc}",
                              field="output") from None
