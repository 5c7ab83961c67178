"""QR rendering: what zxing-cpp reads back from the PNG and the SVG."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from provisioning.errors import QRCodeError
from provisioning.payload import EnrolmentPayload
from provisioning.qr import QUIET_ZONE, qr_matrix, qr_png, qr_svg
from tests.provisioning.support import decode_qr_codes, rasterise_svg_paths

ENROLMENT = EnrolmentPayload(
    server_url="https://trolley.oakfield.example",
    token="Qm9ndXMtdG9rZW4tZm9yLXRlc3RzLW9ubHktMTIzNDU",
    school_slug="oakfield",
    asset_tag="IPAD-042",
    ca_fingerprint="ab" * 32,
).encode()

TEXTS = [
    "https://trolley.oakfield.example/d/IPAD-042",
    ENROLMENT,
    "Ysgol Gŵyr \u2013 Cwpwrdd 3",  # Welsh and an en dash: must survive as UTF-8
    "0123456789",
]


@pytest.mark.parametrize("text", TEXTS)
def test_png_decodes_to_the_text(text: str) -> None:
    image = Image.open(io.BytesIO(qr_png(text)))
    assert image.format == "PNG"
    codes = decode_qr_codes(image)
    assert [code.text for code in codes] == [text]
    assert codes[0].ec_level == "M"


@pytest.mark.parametrize("text", TEXTS)
def test_svg_decodes_to_the_text(text: str) -> None:
    svg = qr_svg(text)
    root = ET.fromstring(svg)
    n = len(qr_matrix(text))
    assert root.get("viewBox") == f"0 0 {n} {n}"
    image = rasterise_svg_paths(svg, width=n, height=n, px_per_unit=8)
    assert [code.text for code in decode_qr_codes(image)] == [text]


def test_the_quiet_zone_is_kept() -> None:
    matrix = qr_matrix("https://trolley.oakfield.example/d/IPAD-042")
    n = len(matrix)
    for i in range(QUIET_ZONE):
        assert not any(matrix[i]) and not any(matrix[n - 1 - i])
        assert not any(row[i] or row[n - 1 - i] for row in matrix)
    assert matrix[QUIET_ZONE][QUIET_ZONE]  # the finder pattern starts right after it
    image = Image.open(io.BytesIO(qr_png("x", scale=5)))
    assert image.getpixel((0, 0)) == 255 and image.getpixel(
        (QUIET_ZONE * 5 - 1, QUIET_ZONE * 5 - 1)
    )
    assert image.getpixel((QUIET_ZONE * 5, QUIET_ZONE * 5)) == 0


def test_png_scale_sets_pixels_per_module() -> None:
    n = len(qr_matrix("hello"))
    for scale in (1, 4, 10):
        assert Image.open(io.BytesIO(qr_png("hello", scale=scale))).size == (n * scale, n * scale)
    for bad in (0, 65, True):
        with pytest.raises(QRCodeError, match="scale"):
            qr_png("hello", scale=bad)


def test_svg_sizes_and_escaping() -> None:
    svg = qr_svg("a&b", size="40mm", title='Label "<IPAD>"')
    root = ET.fromstring(svg)
    assert root.get("width") == "40mm" and root.get("height") == "40mm"
    assert root.findtext("{http://www.w3.org/2000/svg}title") == 'Label "<IPAD>"'
    assert "width" not in ET.fromstring(qr_svg("a")).attrib  # scales to its container


def test_svg_never_shows_the_encoded_text_by_default() -> None:
    svg = qr_svg(ENROLMENT)
    assert ENROLMENT not in svg  # an enrolment code carries a secret token
    assert re.search(r"<title>QR code</title>", svg)


def test_outputs_are_deterministic() -> None:
    assert qr_png(ENROLMENT) == qr_png(ENROLMENT)
    assert qr_svg(ENROLMENT) == qr_svg(ENROLMENT)


def test_empty_or_oversized_text_is_refused() -> None:
    with pytest.raises(QRCodeError, match="needs some text"):
        qr_matrix("")
    with pytest.raises(QRCodeError, match="too long"):
        qr_png("x" * 5000)
