"""Formatting helpers the pages share. A running task's times come back from
SQLite timezone-aware or naive; 'until now' must work with both (it raised
TypeError on every running task and hid the Tasks page and its Cancel button)."""

from __future__ import annotations

import datetime as dt

from pages._ui import fmt_duration


def test_run_time_of_a_running_task_with_aware_or_naive_start() -> None:
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=125)
    for start in (started, started.replace(tzinfo=None)):
        text = fmt_duration(start, None)
        assert text in ("2 min 5 s", "2 min 6 s", "2 min 7 s"), text


def test_finished_task_mixing_aware_and_naive() -> None:
    start = dt.datetime(2026, 1, 1, 10, 0, 0, tzinfo=dt.UTC)
    assert fmt_duration(start, dt.datetime(2026, 1, 1, 10, 0, 42)) == "42.0 s"
    assert fmt_duration(start.replace(tzinfo=None), start + dt.timedelta(hours=2, minutes=3)) == "2 h 3 min"
    assert fmt_duration(None, None) == "—"
