"""QR codes of a config (what the mobile apps scan), holding exactly the config text."""

from __future__ import annotations

import io

import segno


def _qr(text: str) -> segno.QRCode:
    # byte mode of the UTF-8 text; configs are ASCII, so no ECI is needed for scanners
    return segno.make_qr(text, error="m", encoding="utf-8")


def qr_png(text: str, scale: int = 4) -> bytes:
    buffer = io.BytesIO()
    _qr(text).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def qr_svg(text: str, scale: int = 4) -> bytes:
    buffer = io.BytesIO()
    _qr(text).save(buffer, kind="svg", scale=scale, border=4, xmldecl=False)
    return buffer.getvalue()
