"""Run a user's ``process(df) -> DataFrame`` script on a frame.

A failure inside the user's code comes back as the user's own traceback (only
the frames of their script, with their line numbers), not ours.
"""

from __future__ import annotations

import linecache
import traceback

import numpy as np
import pandas as pd

from hivemind_core.errors import HiveMindError

SCRIPT_FILENAME = "<script>"


class ScriptError(HiveMindError):
    """The user's script raised, or broke the process(df) contract; the message is for its author."""


def _user_traceback(exc: BaseException) -> str:
    tb = traceback.TracebackException.from_exception(exc)
    frames = [f for f in tb.stack if f.filename == SCRIPT_FILENAME]
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.StackSummary.from_list(frames).format()
    lines += list(tb.format_exception_only())
    return "".join(lines).rstrip()


def run_script(source: str, df: pd.DataFrame) -> pd.DataFrame:
    """Execute ``source`` and return ``process(df)``; :class:`ScriptError` on any user error."""
    linecache.cache[SCRIPT_FILENAME] = (len(source), None, source.splitlines(True), SCRIPT_FILENAME)
    namespace = {"__name__": "__hivemind_script__", "pd": pd, "np": np}
    try:
        exec(compile(source, SCRIPT_FILENAME, "exec"), namespace)  # noqa: S102 - running user code is the point; the worker sandboxes it
        process = namespace.get("process")
        if not callable(process):
            raise ScriptError("script: define a function process(df) that returns a DataFrame")
        result = process(df)
    except ScriptError:
        raise
    except Exception as exc:  # noqa: BLE001 - any user error is reported to the user
        raise ScriptError(_user_traceback(exc)) from None
    if isinstance(result, pd.Series):
        result = result.to_frame()
    if not isinstance(result, pd.DataFrame):
        raise ScriptError(f"script: process(df) must return a pandas DataFrame, got {type(result).__name__}")
    return result.reset_index(drop=True)
