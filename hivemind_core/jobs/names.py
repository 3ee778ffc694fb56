"""Job names: checked once when a spec is parsed, and made safe wherever a name
(or other text a user gave) is shown or used.

* :func:`check_name` — the ``name`` field of a job spec: stripped, at most
  :data:`MAX_NAME_LENGTH` characters, no control characters (terminal escape
  sequences, line breaks, bidirectional overrides that reorder what is shown).
* :func:`printable` — text for a terminal: every non-printable character shown
  as its escape (``\\x1b``), so stored text (tasks made before the check, an
  error message quoting user data) never drives the terminal.
* :func:`file_name` — a download file name from a job name that works on
  Linux, Windows and macOS, falling back to the task id.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from hivemind_core.jobs.fields import fail, text

MAX_NAME_LENGTH = 200
MAX_FILE_STEM_BYTES = 150          # well under the 255-byte limit of ext4, APFS and NTFS, with the extension
# Invisible characters that reorder or hide the text around them (the "Trojan Source" set).
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_BAD_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})   # controls, lone surrogates, line/paragraph separators
_NOT_IN_FILE_NAMES = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                               *(f"LPT{i}" for i in range(1, 10))})


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _BAD_CATEGORIES or char in _BIDI_CONTROLS


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def check_name(raw: Any, path: str = "name") -> str:
    """The job name of a spec: stripped, one line of visible text, at most MAX_NAME_LENGTH characters."""
    name = text(raw, path, allow_empty=True).strip()
    for i, char in enumerate(name):
        if _unsafe(char):
            raise fail(path, f"must be plain text on one line; character {i + 1} is the control character "
                       f"{_escape(char)} (line breaks, tabs, escape sequences and direction overrides "
                       "are not allowed)")
    if len(name) > MAX_NAME_LENGTH:
        raise fail(path, f"is {len(name)} characters long; use at most {MAX_NAME_LENGTH}")
    return name


def one_line(raw: str) -> str:
    """``raw`` with every control or invisible reordering character (line breaks included) as a
    space, and each run of spaces as one."""
    cleaned = "".join(" " if _unsafe(c) or not c.isprintable() else c for c in raw)
    return re.sub(r"\s+", " ", cleaned).strip()


def clean_name(raw: str) -> str:
    """A name made from something unchecked (an uploaded file's name): :func:`one_line`, cut to
    MAX_NAME_LENGTH. Always passes :func:`check_name`."""
    return one_line(raw)[:MAX_NAME_LENGTH].strip()


def printable(value: object, *, keep_newlines: bool = False) -> str:
    """``value`` as text that is safe to print on a terminal: each non-printable character
    (ESC, CR, BEL, direction overrides ...) appears as its escape; ``keep_newlines`` keeps
    line breaks (multi-line error messages)."""
    out = []
    for char in str(value):
        if char == "\n" and keep_newlines:
            out.append(char)
        elif char.isprintable() and char not in _BIDI_CONTROLS:
            out.append(char)
        else:
            out.append(_escape(char))
    return "".join(out)


def file_name(name: str, extension: str, fallback: str) -> str:
    """A file name for ``name`` + ``extension`` (".csv") that Linux, Windows and macOS all accept:
    characters they refuse become ``_``, no leading dot or trailing dot/space, not a reserved
    Windows device name, at most MAX_FILE_STEM_BYTES bytes before the extension. ``fallback``
    (the task id) when nothing usable is left."""
    stem = unicodedata.normalize("NFC", name)
    stem = "".join("_" if _NOT_IN_FILE_NAMES.match(c) or not c.isprintable() or c in _BIDI_CONTROLS else c
                   for c in stem)
    stem = re.sub(r"\s+", " ", stem).strip(" .")
    if extension and stem.lower().endswith(extension.lower()):
        stem = stem[: -len(extension)].rstrip(" .")
    encoded = stem.encode("utf-8")[:MAX_FILE_STEM_BYTES]
    stem = encoded.decode("utf-8", errors="ignore").rstrip(" .")
    if not stem.strip("_"):
        stem = fallback
    if stem.split(".")[0].strip().upper() in _WINDOWS_RESERVED:
        stem = f"_{stem}"
    return f"{stem}{extension}"
