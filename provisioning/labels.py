"""Printable asset-label sheets: one layout plan, written out as PDF, SVG or an HTML page.

Each label carries the QR code of its URL, the asset tag in large print and the school name.
The plan is computed once in millimetres from the top-left corner of the page; the PDF and SVG
writers only translate it, so both outputs put everything in the same place.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from html import escape

from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas

from provisioning.errors import LabelLayoutError, QRCodeError
from provisioning.payload import is_http_url, is_valid_asset_tag, label_url
from provisioning.qr import QRMatrix, dark_runs, qr_matrix, svg_path_data

__all__ = [
    "L7160",
    "L7163",
    "LAYOUTS",
    "SINGLE_62X29",
    "Label",
    "LabelLayout",
    "PlacedLabel",
    "SheetPage",
    "TextLine",
    "plan_pages",
    "render_html",
    "render_pdf",
    "render_svg_sheets",
]

PT_TO_MM = 25.4 / 72
MAX_SCHOOL_NAME_CHARS = 120
MAX_CAPTION_CHARS = 80
MAX_LABEL_URL_CHARS = 300

BOLD = "Helvetica-Bold"
REGULAR = "Helvetica"
# The PDF uses the standard Helvetica (never embedded, so the bytes stay stable); SVG asks the
# browser for the same face or its metric twin Arial, and pins widths with textLength.
SVG_FONT_FAMILY = "Helvetica, Arial, 'Liberation Sans', sans-serif"
ELLIPSIS = "\u2026"
_ASCENT = 0.75  # Helvetica cap height is 0.72 em; a little more covers accents
# Below this size beside the QR code, a tag runs along the label's foot instead (up to the
# larger size), under a QR code made that much smaller.
TAG_BESIDE_MIN_PT = 8.0
TAG_UNDER_MAX_PT = 12.0
TAG_UNDER_GAP = 0.8


@dataclass(frozen=True)
class LabelLayout:
    """A sheet of labels as data: page size, label size, grid, margins and pitches (mm)."""

    name: str
    page_width_mm: float
    page_height_mm: float
    label_width_mm: float
    label_height_mm: float
    columns: int
    rows: int
    top_margin_mm: float
    left_margin_mm: float
    horizontal_pitch_mm: float
    vertical_pitch_mm: float

    def __post_init__(self) -> None:
        """Refuse a grid that does not fit its page or whose labels overlap."""
        if self.columns < 1 or self.rows < 1:
            raise LabelLayoutError(f"{self.name}: a sheet needs at least one row and column")
        if self.label_width_mm <= 0 or self.label_height_mm <= 0:
            raise LabelLayoutError(f"{self.name}: label sizes must be positive")
        if self.horizontal_pitch_mm < self.label_width_mm or (
            self.vertical_pitch_mm < self.label_height_mm
        ):
            raise LabelLayoutError(f"{self.name}: labels would overlap")
        right = self.left_margin_mm + (self.columns - 1) * self.horizontal_pitch_mm
        bottom = self.top_margin_mm + (self.rows - 1) * self.vertical_pitch_mm
        # 0.01 mm of slack: published sheet dimensions are rounded to two decimals.
        if right + self.label_width_mm > self.page_width_mm + 0.01 or (
            bottom + self.label_height_mm > self.page_height_mm + 0.01
        ):
            raise LabelLayoutError(f"{self.name}: the labels do not fit on the page")

    @property
    def per_page(self) -> int:
        """How many labels one sheet holds."""
        return self.columns * self.rows

    def slot_box(self, slot: int) -> tuple[float, float, float, float]:
        """(x, y, width, height) in mm from the page's top-left of a 1-based slot, row by row."""
        if not 1 <= slot <= self.per_page:
            raise LabelLayoutError(f"{self.name}: slot must be 1-{self.per_page}")
        row, column = divmod(slot - 1, self.columns)
        return (
            self.left_margin_mm + column * self.horizontal_pitch_mm,
            self.top_margin_mm + row * self.vertical_pitch_mm,
            self.label_width_mm,
            self.label_height_mm,
        )


L7160 = LabelLayout(
    name="Avery L7160",
    page_width_mm=210.0,
    page_height_mm=297.0,
    label_width_mm=63.5,
    label_height_mm=38.1,
    columns=3,
    rows=7,
    top_margin_mm=15.15,
    left_margin_mm=7.25,
    horizontal_pitch_mm=66.04,
    vertical_pitch_mm=38.1,
)
L7163 = LabelLayout(
    name="Avery L7163",
    page_width_mm=210.0,
    page_height_mm=297.0,
    label_width_mm=99.1,
    label_height_mm=38.1,
    columns=2,
    rows=7,
    top_margin_mm=15.15,
    left_margin_mm=4.65,
    horizontal_pitch_mm=101.6,
    vertical_pitch_mm=38.1,
)
# One label per page, for label printers (e.g. the common 62 x 29 mm die-cut roll).
SINGLE_62X29 = LabelLayout(
    name="62 x 29 mm label",
    page_width_mm=62.0,
    page_height_mm=29.0,
    label_width_mm=62.0,
    label_height_mm=29.0,
    columns=1,
    rows=1,
    top_margin_mm=0.0,
    left_margin_mm=0.0,
    horizontal_pitch_mm=62.0,
    vertical_pitch_mm=29.0,
)
LAYOUTS: dict[str, LabelLayout] = {"L7160": L7160, "L7163": L7163, "62x29": SINGLE_62X29}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Label:
    """One asset label: the QR code of `url`, the asset tag, the school, an optional caption."""

    asset_tag: str
    url: str
    school_name: str
    caption: str | None = None

    def __post_init__(self) -> None:
        """Validate the fields, so a sheet never half-renders."""
        if not is_valid_asset_tag(self.asset_tag):
            raise LabelLayoutError(
                "asset tag must be 1-32 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if len(self.url) > MAX_LABEL_URL_CHARS or not is_http_url(self.url):
            raise LabelLayoutError(
                f"label URL must be an http(s) URL of at most {MAX_LABEL_URL_CHARS} characters"
            )
        _check_text(self.school_name, "school name", MAX_SCHOOL_NAME_CHARS, required=True)
        if self.caption is not None:
            _check_text(self.caption, "caption", MAX_CAPTION_CHARS, required=False)

    @classmethod
    def for_device(
        cls, base_url: str, asset_tag: str, school_name: str, caption: str | None = None
    ) -> Label:
        """The label of a device, pointing at `<base URL>/d/<asset tag>`."""
        return cls(asset_tag, label_url(base_url, asset_tag), school_name, caption)


def _check_text(value: str, what: str, limit: int, *, required: bool) -> None:
    """A printable one-line text of bounded length."""
    if not isinstance(value, str):
        raise LabelLayoutError(f"{what} must be text")
    if required and not value.strip():
        raise LabelLayoutError(f"{what} must not be empty")
    if len(value) > limit:
        raise LabelLayoutError(f"{what} must be at most {limit} characters")
    if _CONTROL.search(value):
        raise LabelLayoutError(f"{what} must not contain control characters")


@dataclass(frozen=True)
class TextLine:
    """One line of text placed on the page (`text` for SVG, `pdf_text` for Helvetica in PDF)."""

    text: str
    pdf_text: str
    x_mm: float
    baseline_mm: float
    font: str
    size_pt: float
    width_mm: float


@dataclass(frozen=True)
class PlacedLabel:
    """A label with everything on it positioned, in mm from the page's top-left corner."""

    label: Label
    slot: int
    box: tuple[float, float, float, float]
    qr_origin: tuple[float, float]
    qr_module_mm: float
    qr: QRMatrix
    lines: tuple[TextLine, ...]


@dataclass(frozen=True)
class SheetPage:
    """One printed page: its layout and the labels on it."""

    layout: LabelLayout
    labels: tuple[PlacedLabel, ...]


def _pdf_safe(text: str) -> str:
    """Each character kept if Helvetica's WinAnsi encoding has it, else its base letter or '?'."""
    # One character out per character in, so a slice of the safe text matches the original.
    out = []
    for ch in text:
        try:
            ch.encode("cp1252")
            out.append(ch)
            continue
        except UnicodeEncodeError:
            pass
        base = unicodedata.normalize("NFKD", ch)[:1]
        try:
            base.encode("cp1252")
            out.append(base if base and not unicodedata.combining(base) else "?")
        except UnicodeEncodeError:
            out.append("?")
    return "".join(out)


def _width_mm(text: str, font: str, size_pt: float) -> float:
    """Printed width of WinAnsi text in Helvetica."""
    return float(stringWidth(text, font, size_pt)) * PT_TO_MM


@dataclass(frozen=True)
class _Block:
    """Lines of one text field at one size, as (start, end, ellipsis) slices of the text."""

    size_pt: float
    spans: tuple[tuple[int, int, bool], ...]


@dataclass(frozen=True)
class _Field:
    """A fitted text field with its original and WinAnsi-safe characters and spacing."""

    block: _Block
    text: str
    safe: str
    font: str
    leading: float
    gap_before: float

    @property
    def height_mm(self) -> float:
        """Vertical space taken, including the gap above."""
        size_mm = self.block.size_pt * PT_TO_MM
        return self.gap_before + len(self.block.spans) * size_mm * self.leading


def _span_text(text: str, span: tuple[int, int, bool]) -> str:
    """The characters of a span, with an ellipsis if it was cut short."""
    start, end, cut = span
    return text[start:end] + (ELLIPSIS if cut else "")


def _wrap(safe: str, font: str, size: float, width: float) -> list[tuple[int, int, bool]]:
    """Greedy word wrap into spans; a single word too wide stays on its own (too wide) line."""
    spans: list[tuple[int, int, bool]] = []
    start = end = -1
    for word in re.finditer(r"\S+", safe):
        if start < 0:
            start, end = word.start(), word.end()
        elif _width_mm(safe[start : word.end()], font, size) <= width:
            end = word.end()
        else:
            spans.append((start, end, False))
            start, end = word.start(), word.end()
    if start >= 0:
        spans.append((start, end, False))
    return spans


def _truncate(
    safe: str, span: tuple[int, int, bool], font: str, size: float, width: float
) -> tuple[int, int, bool]:
    """Shorten a span, adding an ellipsis, until it fits `width`."""
    start, end, cut = span
    while end > start and _width_mm(_span_text(safe, (start, end, cut)), font, size) > width:
        end -= 1
        cut = True
        while end > start and safe[end - 1] == " ":
            end -= 1
    return start, end, cut


def _fit_text(
    safe: str, font: str, *, max_pt: float, min_pt: float, max_lines: int, width: float
) -> _Block:
    """The largest size at which the text wraps into `max_lines`; else cut at `min_pt`."""
    size = max_pt
    while size >= min_pt:
        spans = _wrap(safe, font, size, width)
        if len(spans) <= max_lines and all(
            _width_mm(_span_text(safe, s), font, size) <= width for s in spans
        ):
            return _Block(size, tuple(spans))
        size = round(size - 0.5, 2)
    spans = _wrap(safe, font, min_pt, width)
    if len(spans) > max_lines:
        start, _, _ = spans[max_lines - 1]
        last_end = spans[-1][1]
        spans = [*spans[: max_lines - 1], (start, last_end, True)]
    return _Block(min_pt, tuple(_truncate(safe, s, font, min_pt, width) for s in spans))


def _fit_tag(tag: str, *, max_pt: float, width: float) -> _Block:
    """The asset tag on one line, as large as fits: a tag broken across lines is misread."""
    return _Block(min(max_pt, width / _width_mm(tag, BOLD, 1.0)), ((0, len(tag), False),))


def _stack(fields: Sequence[_Field], x: float, top: float) -> list[TextLine]:
    """The lines of `fields`, one under another from `top`, starting at `x`."""
    lines: list[TextLine] = []
    for field in fields:
        top += field.gap_before
        size_mm = field.block.size_pt * PT_TO_MM
        for span in field.block.spans:
            pdf_text = _span_text(field.safe, span)
            lines.append(
                TextLine(
                    text=_span_text(field.text, span),
                    pdf_text=pdf_text,
                    x_mm=x,
                    # Baseline below the line top by the ascent, plus half the extra leading.
                    baseline_mm=top + (_ASCENT + (field.leading - 1.0) / 2) * size_mm,
                    font=field.font,
                    size_pt=field.block.size_pt,
                    width_mm=_width_mm(pdf_text, field.font, field.block.size_pt),
                )
            )
            top += size_mm * field.leading
    return lines


def _place_label(label: Label, slot: int, box: tuple[float, float, float, float]) -> PlacedLabel:
    """Position the QR code and the text of one label inside its box."""
    x, y, width, height = box
    pad = 2.0 if height >= 35 else 1.5
    matrix = qr_matrix(label.url)
    tag_max = 22.0 if height >= 35 else 18.0
    # Beside a full-height QR code: the label's width less the code and a half-millimetre gap.
    beside = _fit_tag(label.asset_tag, max_pt=tag_max, width=width - height - 0.5)
    foot = 0.0
    tag = beside
    if beside.size_pt < TAG_BESIDE_MIN_PT:
        # A long tag reads better across the foot of the label, under a smaller QR code.
        under = _fit_tag(label.asset_tag, max_pt=TAG_UNDER_MAX_PT, width=width - 2 * pad)
        if under.size_pt > beside.size_pt:
            tag = under
            foot = TAG_UNDER_GAP + under.size_pt * PT_TO_MM
    qr_size = height - 2 * pad - foot
    module = qr_size / len(matrix)
    text_x = x + pad + qr_size + 0.5
    text_width = x + width - pad - text_x
    if text_width < 12:
        raise LabelLayoutError("these labels leave no room for text beside the QR code")
    school_text = " ".join(label.school_name.split())
    school_safe = _pdf_safe(school_text)
    caption_text = " ".join(label.caption.split()) if label.caption else ""
    caption_safe = _pdf_safe(caption_text)
    school = _fit_text(school_safe, REGULAR, max_pt=8, min_pt=5, max_lines=2, width=text_width)
    caption = (
        _fit_text(caption_safe, REGULAR, max_pt=7, min_pt=5, max_lines=1, width=text_width)
        if caption_safe
        else None
    )
    available = qr_size
    tag_field = _Field(tag, label.asset_tag, label.asset_tag, BOLD, leading=1.0, gap_before=0.0)
    while True:
        # Stacked and centred beside the QR code: the tag (unless it runs along the foot),
        # a gap, school lines, a gap, the caption.
        fields = [_Field(school, school_text, school_safe, REGULAR, leading=1.15, gap_before=1.2)]
        if caption is not None:
            fields.append(
                _Field(caption, caption_text, caption_safe, REGULAR, leading=1.15, gap_before=0.8)
            )
        if foot:
            fields[0] = replace(fields[0], gap_before=0.0)
        else:
            fields.insert(0, tag_field)
        total = sum(field.height_mm for field in fields)
        if foot or total <= available or tag_field.block.size_pt <= 6:
            break
        tag_field = replace(tag_field, block=_Block(tag_field.block.size_pt - 0.5, tag.spans))
    top = y + pad + max(0.0, (available - total) / 2)
    lines = _stack(fields, text_x, top)
    if foot:
        lines += _stack([replace(tag_field, gap_before=TAG_UNDER_GAP)], x + pad, y + pad + qr_size)
    return PlacedLabel(
        label=label,
        slot=slot,
        box=box,
        qr_origin=(x + pad, y + pad),
        qr_module_mm=module,
        qr=matrix,
        lines=tuple(lines),
    )


def plan_pages(
    labels: Sequence[Label], layout: LabelLayout, *, start_position: int = 1
) -> list[SheetPage]:
    """Lay labels out page by page, the first one in slot `start_position` of the first sheet."""
    if not labels:
        raise LabelLayoutError("there are no labels to print")
    if (
        isinstance(start_position, bool)
        or not isinstance(start_position, int)
        or not 1 <= start_position <= layout.per_page
    ):
        raise LabelLayoutError(
            f"start position must be 1-{layout.per_page} for {layout.name} "
            "(the first unused label on the sheet, counting along each row)"
        )
    pages: list[list[PlacedLabel]] = []
    for offset, label in enumerate(labels):
        page, slot_index = divmod(start_position - 1 + offset, layout.per_page)
        if page == len(pages):
            pages.append([])
        slot = slot_index + 1
        try:
            pages[page].append(_place_label(label, slot, layout.slot_box(slot)))
        except QRCodeError as exc:
            raise LabelLayoutError(f"label {label.asset_tag}: {exc}") from exc
    return [SheetPage(layout, tuple(placed)) for placed in pages]


def render_pdf(
    labels: Sequence[Label],
    layout: LabelLayout,
    *,
    start_position: int = 1,
    outlines: bool = False,
) -> bytes:
    """A PDF of the label sheets; the same input always gives the same bytes."""
    pages = plan_pages(labels, layout, start_position=start_position)
    page_height = layout.page_height_mm
    buffer = io.BytesIO()
    # invariant=1 fixes the creation date and document id, which otherwise change every run.
    pdf = canvas.Canvas(
        buffer,
        pagesize=(layout.page_width_mm * mm, page_height * mm),
        invariant=1,
        pageCompression=1,
    )
    pdf.setTitle(f"Trolley asset labels ({layout.name})")
    pdf.setCreator("Trolley")
    for page in pages:
        for placed in page.labels:
            if outlines:
                x, y, width, height = placed.box
                pdf.setStrokeGray(0.75)
                pdf.setLineWidth(0.25)
                pdf.roundRect(
                    x * mm, (page_height - y - height) * mm, width * mm, height * mm, 1.5 * mm
                )
            pdf.setFillGray(0)
            path = pdf.beginPath()
            qx, qy = placed.qr_origin
            module = placed.qr_module_mm
            for row, column, length in dark_runs(placed.qr):
                path.rect(
                    (qx + column * module) * mm,
                    (page_height - qy - (row + 1) * module) * mm,
                    length * module * mm,
                    module * mm,
                )
            pdf.drawPath(path, stroke=0, fill=1)
            for line in placed.lines:
                pdf.setFont(line.font, line.size_pt)
                pdf.drawString(line.x_mm * mm, (page_height - line.baseline_mm) * mm, line.pdf_text)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _svg_number(value: float) -> str:
    """A compact, stable decimal (mm to a thousandth)."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _svg_page(page: SheetPage, *, outlines: bool) -> str:
    """One sheet as an SVG measured in millimetres."""
    layout = page.layout
    w, h = _svg_number(layout.page_width_mm), _svg_number(layout.page_height_mm)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}mm" height="{h}mm"'
        f' viewBox="0 0 {w} {h}" role="img" aria-label="{escape(layout.name)} label sheet">',
        f'<rect width="{w}" height="{h}" fill="#fff"/>',
    ]
    for placed in page.labels:
        x, y, width, height = placed.box
        if outlines:
            parts.append(
                f'<rect x="{_svg_number(x)}" y="{_svg_number(y)}" width="{_svg_number(width)}"'
                f' height="{_svg_number(height)}" rx="1.5" fill="none" stroke="#bbb"'
                ' stroke-width="0.1"/>'
            )
        path = svg_path_data(placed.qr, origin=placed.qr_origin, module=placed.qr_module_mm)
        parts.append(f'<path fill="#000" shape-rendering="crispEdges" d="{path}"/>')
        for line in placed.lines:
            weight = ' font-weight="bold"' if line.font == BOLD else ""
            parts.append(
                f'<text x="{_svg_number(line.x_mm)}" y="{_svg_number(line.baseline_mm)}"'
                f' font-family="{SVG_FONT_FAMILY}"'
                f' font-size="{_svg_number(line.size_pt * PT_TO_MM)}"'
                f'{weight} textLength="{_svg_number(line.width_mm)}"'
                f' lengthAdjust="spacingAndGlyphs">{escape(line.text)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def render_svg_sheets(
    labels: Sequence[Label],
    layout: LabelLayout,
    *,
    start_position: int = 1,
    outlines: bool = False,
) -> list[str]:
    """One SVG per sheet, sized in millimetres, for previews and browser printing."""
    pages = plan_pages(labels, layout, start_position=start_position)
    return [_svg_page(page, outlines=outlines) for page in pages]


def render_html(
    labels: Sequence[Label],
    layout: LabelLayout,
    *,
    start_position: int = 1,
    title: str = "Asset labels",
) -> str:
    """A self-contained HTML page of the sheets that prints one sheet per page."""
    sheets = render_svg_sheets(labels, layout, start_position=start_position)
    w, h = _svg_number(layout.page_width_mm), _svg_number(layout.page_height_mm)
    body = "".join(f'<div class="sheet">{sheet}</div>' for sheet in sheets)
    return (
        '<!doctype html><html lang="en-GB"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>"
        f"@page{{size:{w}mm {h}mm;margin:0}}"
        "html,body{margin:0;padding:0}"
        f".sheet{{width:{w}mm;height:{h}mm;overflow:hidden;break-after:page}}"
        ".sheet:last-child{break-after:auto}"
        ".sheet svg{display:block}"
        "@media screen{body{background:#ddd;font-family:sans-serif}"
        ".sheet{background:#fff;margin:1em auto;box-shadow:0 0 4px #888}"
        ".note{max-width:40em;margin:1em auto}}"
        "@media print{.note{display:none}}"
        "</style></head><body>"
        f'<p class="note">Print on {escape(layout.name)} at 100% ("Actual size"), with no '
        "margins or scaling. For exact placement, print the PDF instead.</p>"
        f"{body}</body></html>"
    )
