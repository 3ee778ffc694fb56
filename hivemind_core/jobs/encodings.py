"""Text encodings of input files: which names are real text codecs, and where a
file stops decoding (byte offset and line) for a one-line error."""

from __future__ import annotations

import codecs
from pathlib import Path

from hivemind_core.errors import ValidationError

SCAN_CHUNK = 1 << 20
DEFAULT_ENCODING = "utf-8"


def text_encoding(name: str) -> str:
    """The canonical name of a text encoding; ValidationError (field input.encoding) otherwise.

    ``codecs.lookup`` also knows bytes-to-bytes codecs (hex, base64, rot13, zlib ...),
    which cannot decode a file into text; they are refused here."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ValidationError(f"input.encoding: unknown encoding {name!r}; try utf-8, latin-1 or cp1252",
                              field="input.encoding") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ValidationError(f"input.encoding: {name!r} is not a text encoding (it turns bytes into bytes); "
                              "give the file's character encoding, e.g. utf-8, latin-1 or cp1252",
                              field="input.encoding")
    return info.name


class DecodeError(ValidationError):
    """The file does not decode with the encoding it is read with. ``problem`` says where and why
    (without the advice to set input.encoding), for a form that names its own encoding field."""

    def __init__(self, problem: str, encoding: str | None) -> None:
        super().__init__(f"{problem}; {_advice(encoding)}", field="input.encoding")
        self.problem, self.encoding = problem, encoding


def _advice(encoding: str | None) -> str:
    if encoding is None:
        return "if it uses another encoding, set input.encoding, e.g. \"latin-1\" or \"cp1252\""
    return "check input.encoding (the file's real encoding, e.g. utf-8, latin-1 or cp1252)"


def _what(encoding: str | None) -> str:
    return "the file is not valid UTF-8 text" if encoding is None else f"the file cannot be decoded as {encoding}"


def decode_error(path: Path, encoding: str | None, cause: BaseException | None = None) -> DecodeError:
    """A one-line error saying where ``path`` first fails to decode as ``encoding``
    (None: UTF-8 with an optional BOM): byte offset, line and the codec's reason."""
    codec = encoding or "utf-8-sig"
    decoder = codecs.getincrementaldecoder(codec)()
    offset = newlines = 0
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(SCAN_CHUNK):
                pending = len(decoder.getstate()[0])
                try:
                    newlines += decoder.decode(chunk).count("\n")
                except UnicodeDecodeError as exc:
                    data = exc.object
                    good = codecs.getincrementaldecoder(codec)(errors="replace").decode(data[:exc.start])
                    at = offset - pending + exc.start
                    byte = f" (byte 0x{data[exc.start]:02x})" if exc.start < len(data) else ""
                    line = newlines + good.count("\n") + 1
                    return DecodeError(f"input: {_what(encoding)}: {exc.reason} at byte offset {at}{byte}, "
                                       f"line {line}", encoding)
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return DecodeError(f"input: {_what(encoding)}: {exc.reason} at the end of the file", encoding)
    except UnicodeError as exc:
        return DecodeError(f"input: {_what(encoding)}: {exc}", encoding)
    reason = f": {cause}" if cause is not None else ""
    return DecodeError(f"input: {_what(encoding)}{reason}", encoding)
