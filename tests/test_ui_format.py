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


def test_sizes_are_binary_units_labelled_as_such() -> None:
    """Upload limits and memory are binary (HIVEMIND_MAX_UPLOAD_MB x 1024 x 1024 bytes), so sizes
    are KiB / MiB / GiB; the pages use the one formatter of hivemind_core (API and CLI too)."""
    from hivemind_core.units import fmt_bytes as core_fmt_bytes
    from hivemind_core.units import fmt_mib
    from pages._ui import fmt_bytes

    assert fmt_bytes is core_fmt_bytes
    assert [fmt_bytes(n) for n in (0, 1023, 1024, 1536, 200 * 1024**2, 1024**3, 3 * 1024**4)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "200.0 MiB", "1.0 GiB", "3.0 TiB"]
    assert fmt_mib(200) == "200.0 MiB" and fmt_mib(1024) == "1.0 GiB" and fmt_bytes(None) == "—"
