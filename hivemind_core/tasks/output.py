"""Where the CLI saves a result (``--output FILE``): checked before any work is
queued, written through a temp file in the same folder and renamed into place,
so a bad path costs nothing and a reader never sees half a file. And the name a
downloaded result gets (the page's download button, the REST API's result)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hivemind_core.errors import OutputPathError
from hivemind_core.fileutil import check_output_path
from hivemind_core.jobs.names import file_name
from hivemind_core.jobs.results import RESULT_EXTENSIONS
from hivemind_core.tasks.models import Task


def download_name(task: Task) -> str:
    """The file name a result downloads as: the job's name made safe for Linux, Windows and macOS,
    with its format's extension; the task id when the name leaves nothing usable."""
    return file_name(task.name, RESULT_EXTENSIONS.get(task.result_format, ""), task.id)


def save_result(source: Path, target: str | os.PathLike[str]) -> Path:
    """Copy ``source`` to ``target`` (checked again: things change) via a temp file and a rename."""
    target = check_output_path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputPathError(f"--output: writing {target} failed: {exc.strerror or exc}",
                              field="output") from None
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
