"""Where the CLI saves a result (``--output FILE``): checked before any work is
queued, written through a temp file in the same folder and renamed into place,
so a bad path costs nothing and a reader never sees half a file."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hivemind_core.errors import ValidationError


def _fail(problem: str) -> ValidationError:
    return ValidationError(f"--output: {problem}", field="output")


def check_output(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path if a file can be written there: its folder exists and takes a new
    file, and it is not a folder itself. ValidationError (one line) otherwise."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise _fail(f"{target} is a folder; give a file name, e.g. {target / 'result.csv'}")
    folder = target.parent
    if not folder.exists():
        raise _fail(f"the folder {folder} does not exist; create it first or choose another place")
    if not folder.is_dir():
        raise _fail(f"{folder} is not a folder, so {target.name} cannot be created in it")
    if target.exists() and not target.is_file():
        raise _fail(f"{target} exists and is not a regular file; choose another name")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{target.name}.", suffix=".check"):
            pass
    except OSError as exc:
        raise _fail(f"cannot write into {folder}: {exc.strerror or exc}") from None
    return target


def save_result(source: Path, target: str | os.PathLike[str]) -> Path:
    """Copy ``source`` to ``target`` (checked again: things change) via a temp file and a rename."""
    target = check_output(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _fail(f"writing {target} failed: {exc.strerror or exc}") from None
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
