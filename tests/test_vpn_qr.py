"""QR codes decode (zxing-cpp) back to exactly the config text."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
import zxingcpp
from PIL import Image

from hivemind_core.principal import Principal
from hivemind_core.vpn import service
from hivemind_core.vpn.qr import qr_png, qr_svg

ADMIN = Principal("root", "admin")


def decode_png(png: bytes) -> str:
    # Only QR codes: with every format on, zxing now and then also "finds" a Codabar
    # inside the QR's modules (seen in CI), which says nothing about our image.
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(results) == 1 and results[0].format == zxingcpp.BarcodeFormat.QRCode
    return results[0].bytes.decode("utf-8")


@pytest.mark.parametrize("options", [
    dict(), dict(preshared_key=True), dict(preshared_key=True, full_tunnel=True),
])
def test_qr_holds_exactly_the_config(options: dict) -> None:
    service.update_server_settings(ADMIN, endpoint="2001:db8::1", subnet_v6="fd00:ab::/64",
                                   dns="10.0.0.1, fd00:ab::1", mtu=1380)
    new = service.add_peer(ADMIN, "Ünïcode phone 📱", **options)  # non-ASCII name: config stays ASCII
    assert new.config.isascii()
    assert decode_png(qr_png(new.config)) == new.config


def test_svg_is_a_qr_svg() -> None:
    svg = qr_svg("[Interface]\n")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and root.find(".//{http://www.w3.org/2000/svg}path") is not None
