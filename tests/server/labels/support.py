"""Reading label sheets back: rasterise each PDF page and decode every QR code on it."""

from __future__ import annotations

import pypdfium2 as pdfium

from tests.provisioning.support import decode_qr_codes

DPI = 300


def pdf_qr_texts(pdf: bytes) -> list[list[str]]:
    """The text of every QR code, page by page, in reading order (rows, then columns)."""
    document = pdfium.PdfDocument(pdf)
    try:
        pages = []
        for index in range(len(document)):
            page = document[index]
            bitmap = page.render(scale=DPI / 72)
            image = bitmap.to_pil().convert("L")
            bitmap.close()
            page.close()
            codes = decode_qr_codes(image)
            codes.sort(key=lambda c: (round(c.position.top_left.y / 50), c.position.top_left.x))
            pages.append([c.text for c in codes])
        return pages
    finally:
        document.close()


def pdf_text(pdf: bytes) -> str:
    """All the printed text of a PDF."""
    document = pdfium.PdfDocument(pdf)
    try:
        parts = []
        for index in range(len(document)):
            page = document[index]
            text = page.get_textpage()
            parts.append(text.get_text_range())
            text.close()
            page.close()
        # pdfium reports a hyphen that ends a line (a tag split over two) as U+FFFE.
        return "\n".join(parts).replace("\ufffe", "-")
    finally:
        document.close()
