"""JSON input read in Python: JSON arrays of objects and the JSON Lines fallback.

pyarrow's JSON reader streams JSON Lines fast, but it cannot read a JSON array
(what ``output.format: json`` writes) and cannot put a number into a column it
has typed as text, and its errors count rows within a block. This module reads
both kinds record by record, streaming (never the whole file), and:

* infers the schema from a sample (int, float, bool, text; a column mixing
  numbers and text is text, all-missing is float — as for CSV);
* types a number that lands in a text column as its literal text (``7``,
  ``2.50``), so a column widens across the whole file like a CSV column does;
* names the real line number in every error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from hivemind_core.errors import ValidationError

CHUNK_CHARS = 1 << 20
_WS = re.compile(r"[ \t\r\n]*")
_INT = re.compile(r"-?\d+\Z")


class JsonNumber(str):
    """A JSON number kept as its literal text: a float or int column converts it,
    a text column keeps it as written."""

    __slots__ = ()


_DECODER = json.JSONDecoder(parse_float=JsonNumber, parse_int=JsonNumber)


def _bad(line: int, problem: str) -> ValidationError:
    return ValidationError(f"input: line {line}: {problem}", field="input")


def first_char(path: Path) -> str:
    """The first non-blank character of a text file ("" if none in its first KiB)."""
    with path.open("rb") as fh:
        head = fh.read(1024).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1].decode("latin-1")


# ----------------------------------------------------------------- records

def iter_lines(path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(line number, bytes read, record) of a JSON Lines file."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                record = _DECODER.decode(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
            except UnicodeDecodeError as exc:
                raise ValidationError(f"input: line {number} is not UTF-8 text (byte {exc.start} of the line); "
                                      "JSON must be UTF-8", field="input.encoding") from None
            except json.JSONDecodeError as exc:
                raise _bad(number, f"not valid JSON ({exc.msg} at character {exc.colno}); each line must be "
                           "one JSON object") from None
            if not isinstance(record, dict):
                raise _bad(number, f"holds a JSON {type(record).__name__}, not an object; each line must be "
                           "one object such as {\"column\": value}")
            yield number, len(raw), record


class _ArrayScanner:
    """Walks a ``[ {...}, {...} ]`` file chunk by chunk, one object at a time."""

    def __init__(self, fh: Any) -> None:
        self.fh, self.buf, self.pos, self.base_line, self.eof = fh, "", 0, 1, False

    def line(self, pos: int | None = None) -> int:
        return self.base_line + self.buf.count("\n", 0, self.pos if pos is None else pos)

    def more(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = self.fh.read(CHUNK_CHARS)
        except UnicodeDecodeError:
            raise ValidationError(f"input: the JSON file is not UTF-8 text (near line {self.line()}); JSON "
                                  "must be UTF-8", field="input.encoding") from None
        if not chunk:
            self.eof = True
            return False
        self.base_line += self.buf.count("\n", 0, self.pos)
        self.buf, self.pos = self.buf[self.pos:] + chunk, 0
        return True

    def peek(self) -> str:
        """The next non-blank character ("" at the end of the file)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def column(self) -> int:
        return self.pos - self.buf.rfind("\n", 0, self.pos)

    def incomplete(self) -> ValidationError:
        """The file ended inside the array (``[`` or ``[{...},``): say so, not what was expected next."""
        return _bad(self.line(), f"the JSON is incomplete: the file ends at column {self.column()} before the "
                                 "array is closed with ]")

    def expect(self, chars: str, what: str) -> str:
        c = self.peek()
        if c == "" and "[" not in chars:
            raise self.incomplete()
        if c == "" or c not in chars:
            found = f"{c!r}" if c else "the end of the file"
            raise _bad(self.line(), f"expected {what}, found {found}")
        self.pos += 1
        return c

    def value(self) -> tuple[int, int, dict[str, Any]]:
        """(line, length in characters, object) of the next item."""
        if self.peek() == "":
            raise self.incomplete()
        if self.peek() != "{":
            raise _bad(self.line(), "each item of the JSON array must be an object such as {\"column\": value}")
        while True:
            try:
                record, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.more():
                    continue
                if not self.buf[exc.pos:].strip():   # it broke off at the end of the file
                    self.pos = len(self.buf)
                    raise self.incomplete() from None
                raise _bad(self.base_line + exc.lineno - 1, f"not valid JSON ({exc.msg})") from None
            number, length = self.line(), end - self.pos
            self.pos = end
            return number, length, record


def iter_array(path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(line number, size in characters, record) of a file holding one JSON array of objects."""
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        scan = _ArrayScanner(fh)
        scan.expect("[", "a JSON array of objects starting with [")
        if scan.peek() == "]":
            scan.pos += 1
        else:
            while True:
                yield scan.value()
                if scan.expect(",]", "',' or ']' after an object") == "]":
                    break
        if scan.peek():
            raise _bad(scan.line(), "unexpected text after the closing ] of the JSON array")


def iter_records(path: Path, fmt: str) -> Iterator[tuple[int, int, dict[str, Any]]]:
    return iter_array(path) if fmt == "json" else iter_lines(path)


# ----------------------------------------------------------------- schema

def _kind(value: Any, line: int, column: str) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, JsonNumber):
        return "int" if _INT.match(value) else "float"
    if isinstance(value, str):
        return "string"
    raise _bad(line, f"column {column!r} holds a nested {'object' if isinstance(value, dict) else 'list'}, "
               "which jobs cannot use; flatten it or store it as text")


def _type_of(kinds: set[str]) -> pa.DataType:
    kinds = kinds - {"null"}
    if not kinds or kinds <= {"int", "float"}:
        return pa.int64() if kinds == {"int"} else pa.float64()   # all-missing: NaN floats, as in pandas
    if kinds == {"bool"}:
        return pa.bool_()
    return pa.string()


def infer_schema(path: Path, fmt: str, sample_bytes: int) -> pa.Schema:
    """Column types from the records in about the first ``sample_bytes`` of the file."""
    kinds: dict[str, set[str]] = {}
    read = 0
    for line, size, record in iter_records(path, fmt):
        for column, value in record.items():
            kinds.setdefault(column, set()).add(_kind(value, line, column))
        read += size
        if read >= sample_bytes:
            break
    if not kinds:
        raise ValidationError("input: the file has no JSON records in it", field="input")
    return pa.schema([(column, _type_of(k)) for column, k in kinds.items()])


# ----------------------------------------------------------------- batches

def _converter(arrow_type: pa.DataType, column: str, widen: Callable[[str], Exception]
               ) -> Callable[[Any, int], Any]:
    def check(value: Any, line: int) -> None:
        if isinstance(value, (dict, list)):
            _kind(value, line, column)

    if pa.types.is_string(arrow_type):
        def to_text(value: Any, line: int) -> Any:
            if value is None or isinstance(value, str):
                return value
            if isinstance(value, bool):
                return "true" if value else "false"
            check(value, line)
            return str(value)
        return to_text
    if pa.types.is_integer(arrow_type):
        def to_int(value: Any, line: int) -> Any:
            if value is None:
                return None
            if isinstance(value, JsonNumber) and _INT.match(value):
                return int(value)
            check(value, line)
            raise widen(column)
        return to_int
    if pa.types.is_floating(arrow_type):
        def to_float(value: Any, line: int) -> Any:
            if value is None:
                return None
            if isinstance(value, JsonNumber):
                return float(value)
            check(value, line)
            raise widen(column)
        return to_float

    def to_bool(value: Any, line: int) -> Any:
        if value is None or isinstance(value, bool):
            return value
        check(value, line)
        raise widen(column)
    return to_bool


def record_batches(path: Path, fmt: str, target: pa.Schema, batch_bytes: int,
                   widen: Callable[[str], Exception]) -> Iterator[pa.RecordBatch]:
    """The file as batches of exactly ``target``; ``widen(column)`` is raised when a value
    needs a wider type than the column has (the caller restarts with it)."""
    converters = [(f.name, _converter(f.type, f.name, widen)) for f in target]

    def batch(columns: list[list[Any]]) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays([pa.array(v, type=f.type) for v, f in zip(columns, target, strict=True)],
                                          schema=target)

    columns: list[list[Any]] = [[] for _ in converters]
    rows = size = 0
    for line, length, record in iter_records(path, fmt):
        for values, (name, convert) in zip(columns, converters, strict=True):
            values.append(convert(record.get(name), line))
        rows, size = rows + 1, size + length
        if size >= batch_bytes:
            yield batch(columns)
            columns, rows, size = [[] for _ in converters], 0, 0
    if rows:
        yield batch(columns)
