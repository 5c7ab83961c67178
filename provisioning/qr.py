"""QR codes for any text, as SVG (web pages, print) or PNG, with error correction M."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from html import escape

import qrcode
import qrcode.constants
import qrcode.exceptions
from PIL import Image

from provisioning.errors import QRCodeError

__all__ = ["QUIET_ZONE", "QRMatrix", "dark_runs", "qr_matrix", "qr_png", "qr_svg", "svg_path_data"]

# The QR specification asks for four light modules around the code; scanners need them.
QUIET_ZONE = 4

QRMatrix = tuple[tuple[bool, ...], ...]


def qr_matrix(text: str) -> QRMatrix:
    """The modules of the smallest QR code holding `text`, quiet zone included (True = dark)."""
    if not isinstance(text, str) or not text:
        raise QRCodeError("a QR code needs some text")
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=QUIET_ZONE)
    try:
        code.add_data(text)
        code.make(fit=True)
    # qrcode 8 reports overflow as ValueError ("Invalid version") when fitting; older as its own.
    except (qrcode.exceptions.DataOverflowError, ValueError) as exc:
        raise QRCodeError(f"text of {len(text)} characters is too long for a QR code") from exc
    rows: list[list[object]] = code.get_matrix()
    return tuple(tuple(bool(cell) for cell in row) for row in rows)


def dark_runs(matrix: QRMatrix) -> Iterator[tuple[int, int, int]]:
    """Horizontal runs of dark modules as (row, first column, length): fewer shapes to draw."""
    for y, row in enumerate(matrix):
        x = 0
        width = len(row)
        while x < width:
            if not row[x]:
                x += 1
                continue
            start = x
            while x < width and row[x]:
                x += 1
            yield y, start, x - start


def svg_path_data(
    matrix: QRMatrix, *, origin: tuple[float, float] = (0.0, 0.0), module: float = 1.0
) -> str:
    """SVG path data drawing the dark modules, one rectangle per run."""
    ox, oy = origin
    commands = [
        f"M{_num(ox + x * module)} {_num(oy + y * module)}"
        f"h{_num(length * module)}v{_num(module)}h{_num(-length * module)}z"
        for y, x, length in dark_runs(matrix)
    ]
    return "".join(commands)


def _num(value: float) -> str:
    """A compact, stable decimal for SVG output."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def qr_svg(text: str, *, size: str | None = None, title: str | None = None) -> str:
    """A standalone SVG of the QR code; without `size` it scales to its container."""
    matrix = qr_matrix(text)
    n = len(matrix)
    dimensions = f' width="{escape(size)}" height="{escape(size)}"' if size else ""
    # The text is not the default title: an enrolment code holds a secret token.
    label = escape(title if title is not None else "QR code")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {n} {n}"{dimensions}'
        f' role="img" aria-label="{label}" shape-rendering="crispEdges">'
        f"<title>{label}</title>"
        f'<rect width="{n}" height="{n}" fill="#fff"/>'
        f'<path fill="#000" d="{svg_path_data(matrix)}"/>'
        "</svg>"
    )


def qr_png(text: str, *, scale: int = 8) -> bytes:
    """PNG bytes of the QR code, `scale` pixels per module (1-bit, white quiet zone)."""
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= 64:
        raise QRCodeError("scale must be a whole number of pixels per module, 1 to 64")
    matrix = qr_matrix(text)
    return _png(matrix, scale)


def _png(matrix: Sequence[Sequence[bool]], scale: int) -> bytes:
    """Encode a module matrix as a 1-bit PNG."""
    n = len(matrix)
    pixels = bytes(0 if dark else 255 for row in matrix for dark in row)
    image = Image.frombytes("L", (n, n), pixels).resize(
        (n * scale, n * scale), Image.Resampling.NEAREST
    )
    buffer = io.BytesIO()
    image.convert("1", dither=Image.Dither.NONE).save(buffer, format="PNG")
    return buffer.getvalue()
