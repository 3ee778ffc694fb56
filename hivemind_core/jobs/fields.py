"""Readers for the fields of a job spec's JSON, shared by every part of the spec.

Each takes the raw JSON value and its path in the spec (``pipeline.limit``,
``grid.alpha``) and returns the typed value, or raises
:class:`~hivemind_core.errors.ValidationError` whose ``field`` is that path and
whose message says what is wrong and what to give instead.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

from hivemind_core.errors import ValidationError


def fail(field_path: str, problem: str) -> ValidationError:
    return ValidationError(f"{field_path}: {problem}", field=field_path)


def obj(raw: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise fail(path, f"must be a JSON object, got {type(raw).__name__}")
    return raw


def text(raw: Any, path: str, *, allow_empty: bool = False) -> str:
    if not isinstance(raw, str):
        raise fail(path, f"must be a string, got {json.dumps(raw)}")
    if not allow_empty and not raw.strip():
        raise fail(path, "must not be empty")
    return raw


def whole(raw: Any, path: str, lo: int, hi: int | None = None) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise fail(path, f"must be a whole number, got {json.dumps(raw)}")
    if raw < lo or (hi is not None and raw > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise fail(path, f"must be {bound}, got {raw}")
    return raw


def flag(raw: Any, path: str) -> bool:
    if not isinstance(raw, bool):
        raise fail(path, f"must be true or false, got {json.dumps(raw)}")
    return raw


def choice(raw: Any, path: str, choices: tuple[str, ...]) -> str:
    if raw not in choices:
        raise fail(path, f"{json.dumps(raw)} is not one of: {', '.join(choices)}")
    return raw


def check_keys(obj: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> None:
    for key in obj:
        if key not in allowed:
            where = f"{path}.{key}" if path else key
            raise fail(where, f"unknown field; allowed here: {', '.join(allowed)}")


def _takes(fn: ast.FunctionDef, n: int) -> bool:
    """Can ``fn`` be called with ``n`` positional arguments?"""
    positional = len(fn.args.posonlyargs) + len(fn.args.args)
    required = positional - len(fn.args.defaults)
    kw_required = any(d is None for d in fn.args.kw_defaults)
    return not kw_required and required <= n and (n <= positional or fn.args.vararg is not None)


def check_script(source: str, function: str, arguments: tuple[str, ...], returns: str) -> None:
    """``source`` is valid Python defining ``function`` (at top level) callable with ``arguments``.

    Only parsed here, never run: user code runs in the worker's sandboxed child.
    """
    try:
        tree = ast.parse(source, filename="<script>")
    except SyntaxError as exc:
        raise fail("script", f"is not valid Python (line {exc.lineno}: {exc.msg})") from None
    call = f"{function}({', '.join(arguments)})"
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    if not defs:
        raise fail("script", f"must define a function {call} that returns {returns}")
    if not _takes(defs[-1], len(arguments)):
        raise fail("script", f"{function} must take {len(arguments)} argument(s): {call}")
