"""Shared helpers for the provisioning tests: fixed inputs, OpenSSL, and QR decoding."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import zxingcpp
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from PIL import Image, ImageDraw

NOW = datetime(2025, 9, 1, 8, 30, tzinfo=UTC)
SCHOOL = "Oakfield Primary School"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def fixed_ec_key(seed: int) -> ec.EllipticCurvePrivateKey:
    """A P-256 key that is the same on every run, so certificates compare byte for byte."""
    return ec.derive_private_key(0x5EED_0000 + seed, ec.SECP256R1())


def fixed_ed25519_key(seed: int) -> ed25519.Ed25519PrivateKey:
    """An Ed25519 key that is the same on every run."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def openssl(
    *args: str | Path, input_bytes: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the system's openssl and return the finished process (never raising)."""
    return subprocess.run(
        [OPENSSL, *map(str, args)], input=input_bytes, capture_output=True, timeout=30, check=False
    )


def decode_qr_codes(image: Image.Image) -> list[zxingcpp.Barcode]:
    """Every QR code zxing-cpp finds in an image."""
    return [
        code
        for code in zxingcpp.read_barcodes(image)
        if code.format == zxingcpp.BarcodeFormat.QRCode and code.valid
    ]


_PATH_RUN = re.compile(r"M([-\d.]+) ([-\d.]+)h([-\d.]+)v([-\d.]+)h[-\d.]+z")


def rasterise_svg_paths(
    svg: str, *, width: float, height: float, px_per_unit: float
) -> Image.Image:
    """Draw the filled run paths of one of our SVGs (the only shape they use) with Pillow."""
    image = Image.new("L", (round(width * px_per_unit), round(height * px_per_unit)), 255)
    draw = ImageDraw.Draw(image)
    for d in re.findall(r'<path fill="#000"[^>]* d="([^"]*)"', svg):
        consumed = "".join(m.group(0) for m in _PATH_RUN.finditer(d))
        assert consumed == d, "unexpected SVG path syntax"
        for match in _PATH_RUN.finditer(d):
            x, y, w, h = (float(v) * px_per_unit for v in match.groups())
            draw.rectangle((round(x), round(y), round(x + w) - 1, round(y + h) - 1), fill=0)
    return image
