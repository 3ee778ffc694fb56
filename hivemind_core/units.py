"""Sizes shown to people, in one unit system: binary (1 KiB = 1024 B), labelled as such.

Every size limit HiveMind has is binary — the upload limit (``HIVEMIND_MAX_UPLOAD_MB``,
Streamlit's ``server.maxUploadSize``, the REST API's check) counts 1024 x 1024 bytes per
"MB", as do memory limits — so sizes are written KiB / MiB / GiB, never the decimal
KB / MB / GB a file manager may show for the same file.
"""

from __future__ import annotations

MIB = 1024 * 1024
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def fmt_bytes(n: float | None) -> str:
    """``n`` bytes as text: "512 B", "1.5 KiB", "200.0 MiB", "1.0 GiB" ("—" for None)."""
    if n is None:
        return "—"
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def fmt_mib(megabytes: int) -> str:
    """A limit configured in (binary) megabytes, e.g. HIVEMIND_MAX_UPLOAD_MB, as :func:`fmt_bytes` shows it."""
    return fmt_bytes(megabytes * MIB)
