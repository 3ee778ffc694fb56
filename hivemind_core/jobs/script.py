"""Run the user's code: ``process(df)`` of script jobs, ``fit_score`` of
machine_learning jobs, ``simulate`` of simulations.

Only ever called inside the worker's sandboxed child. A failure inside the
user's code comes back as the user's own traceback (only the frames of their
script, with their line numbers), not ours: :class:`ScriptError` is a
HiveMindError, whose message the sandbox reports as it is (no traceback of
ours around it). A broken contract (wrong return type) is one plain line. A
MemoryError is let through, so the sandbox reports it as the memory overrun
it is (a plain message naming the limit).
"""

from __future__ import annotations

import linecache
import reprlib
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from hivemind_core.errors import HiveMindError

SCRIPT_FILENAME = "<script>"
_SHOW = reprlib.Repr()   # short reprs of what a user function returned
_SHOW.maxstring = _SHOW.maxother = 60
_SHOW.maxlist = _SHOW.maxdict = 5


class ScriptError(HiveMindError):
    """The user's script raised, or broke its function's contract; the message is for its author."""


def _user_traceback(exc: BaseException) -> str:
    tb = traceback.TracebackException.from_exception(exc)
    frames = [f for f in tb.stack if f.filename == SCRIPT_FILENAME]
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.StackSummary.from_list(frames).format()
    lines += list(tb.format_exception_only())
    return "".join(lines).rstrip()


def load_function(source: str, name: str, usage: str) -> Callable[..., Any]:
    """Execute ``source`` and return its function ``name`` (``usage`` says what it should be)."""
    linecache.cache[SCRIPT_FILENAME] = (len(source), None, source.splitlines(True), SCRIPT_FILENAME)
    namespace = {"__name__": "__hivemind_script__", "pd": pd, "np": np}
    try:
        exec(compile(source, SCRIPT_FILENAME, "exec"), namespace)  # noqa: S102 - running user code is the point; the worker sandboxes it
    except MemoryError:
        raise
    except SystemExit as exc:
        raise ScriptError(_exit_message(exc, "while loading")) from None
    except Exception as exc:  # noqa: BLE001 - any user error is reported to the user
        raise ScriptError(_user_traceback(exc)) from None
    fn = namespace.get(name)
    if not callable(fn):
        raise ScriptError(f"script: define a function {usage}")
    return fn


def call_user(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``; any exception becomes a :class:`ScriptError` with the user's traceback."""
    try:
        return fn(*args)
    except MemoryError:
        raise   # the sandbox's memory overrun message, not a traceback
    except SystemExit as exc:   # exit() would end the sandbox process: a crash report full of our frames
        raise ScriptError(_exit_message(exc, f"in {getattr(fn, '__name__', 'the script')}")) from None
    except Exception as exc:  # noqa: BLE001 - any user error is reported to the user
        raise ScriptError(_user_traceback(exc)) from None


def _exit_message(exc: SystemExit, where: str) -> str:
    return (f"script: exit({_SHOW.repr(exc.code) if exc.code is not None else ''}) called {where}; "
            "a job's functions return their result (or raise an exception to fail)")


def described(value: Any) -> str:
    """What a user function returned, for a message: its type and a short repr."""
    return f"{type(value).__name__} {_SHOW.repr(value)}" if value is not None else "None (nothing)"


def as_frame(result: Any, function: str, expected: str = "a pandas DataFrame") -> pd.DataFrame:
    """A user function's DataFrame (or Series) result with a fresh index; ScriptError otherwise
    (saying what ``function`` returned and ``expected``, what it should)."""
    if isinstance(result, pd.Series):
        result = result.to_frame()
    if not isinstance(result, pd.DataFrame):
        raise ScriptError(f"script: {function} must return {expected}, got {described(result)}")
    dupes = result.columns[result.columns.duplicated()]
    if len(dupes):
        raise ScriptError(f"script: {function} returned a DataFrame with two columns named "
                          f"{_SHOW.repr(dupes[0])}; give each column its own name")
    return result.reset_index(drop=True)


def run_script(source: str, df: pd.DataFrame) -> pd.DataFrame:
    """Execute ``source`` and return ``process(df)``; :class:`ScriptError` on any user error."""
    process = load_function(source, "process", "process(df) that returns a DataFrame")
    return as_frame(call_user(process, df), "process(df)")
