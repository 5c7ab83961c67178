"""Label sheets: every printed QR code scans, lands in its slot, and the PDF is reproducible."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections import Counter

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from provisioning.errors import LabelLayoutError, ProvisioningError
from provisioning.labels import (
    L7160,
    L7163,
    LAYOUTS,
    SINGLE_62X29,
    Label,
    LabelLayout,
    PlacedLabel,
    SheetPage,
    plan_pages,
    render_html,
    render_pdf,
    render_svg_sheets,
)
from tests.provisioning.support import decode_qr_codes, rasterise_svg_paths

BASE = "https://trolley.oakfield.example"
SCHOOL = "Oakfield Primary School"
DPI = 300
PX_PER_MM = DPI / 25.4
SVG_NS = "{http://www.w3.org/2000/svg}"


def _labels(count: int, *, school: str = SCHOOL) -> list[Label]:
    """`count` device labels with distinct tags, every other one with a caption."""
    return [
        Label.for_device(BASE, f"IPAD-{i:03d}", school, "Trolley A" if i % 2 else None)
        for i in range(count)
    ]


def _rasterise(pdf: bytes) -> list[Image.Image]:
    """Every page of a PDF as an image at 300 dpi."""
    document = pdfium.PdfDocument(pdf)
    try:
        images = []
        for index in range(len(document)):
            page = document[index]
            bitmap = page.render(scale=DPI / 72)
            images.append(bitmap.to_pil().convert("L"))
            bitmap.close()
            page.close()
        return images
    finally:
        document.close()


def _centre_mm(code: zxingcpp.Barcode) -> tuple[float, float]:
    """The centre of a decoded code, in mm from the page's top-left."""
    p = code.position
    corners = [p.top_left, p.top_right, p.bottom_right, p.bottom_left]
    return (
        sum(c.x for c in corners) / 4 / PX_PER_MM,
        sum(c.y for c in corners) / 4 / PX_PER_MM,
    )


def _slot_at(layout: LabelLayout, x: float, y: float) -> int:
    """The 1-based slot whose box contains a point (failing if none does)."""
    for slot in range(1, layout.per_page + 1):
        left, top, width, height = layout.slot_box(slot)
        if left <= x <= left + width and top <= y <= top + height:
            return slot
    raise AssertionError(f"({x:.1f}, {y:.1f}) mm is outside every label")


def _scan_pdf(
    pdf: bytes, layout: LabelLayout, planned: list[SheetPage] | None = None
) -> list[tuple[str, int, int]]:
    """Every QR code on every page as (text, page number, slot), checked against the plan."""
    found = []
    for page_number, image in enumerate(_rasterise(pdf), start=1):
        for code in decode_qr_codes(image):
            centre = _centre_mm(code)
            slot = _slot_at(layout, *centre)
            found.append((code.text, page_number, slot))
            if planned is not None:
                (placed,) = [p for p in planned[page_number - 1].labels if p.slot == slot]
                half = len(placed.qr) * placed.qr_module_mm / 2
                expected = (placed.qr_origin[0] + half, placed.qr_origin[1] + half)
                # Printed where the plan says, to within a quarter of a millimetre.
                assert centre == pytest.approx(expected, abs=0.25)
    return found


# --- layouts as data -------------------------------------------------------------------------


def test_avery_l7160_geometry() -> None:
    assert (L7160.columns, L7160.rows, L7160.per_page) == (3, 7, 21)
    assert (L7160.label_width_mm, L7160.label_height_mm) == (63.5, 38.1)
    assert L7160.slot_box(1) == (7.25, 15.15, 63.5, 38.1)
    assert L7160.slot_box(3) == pytest.approx((7.25 + 2 * 66.04, 15.15, 63.5, 38.1))
    assert L7160.slot_box(21) == pytest.approx((7.25 + 2 * 66.04, 15.15 + 6 * 38.1, 63.5, 38.1))
    assert L7160.slot_box(4)[:2] == pytest.approx((7.25, 15.15 + 38.1))


def test_avery_l7163_geometry() -> None:
    assert (L7163.columns, L7163.rows, L7163.per_page) == (2, 7, 14)
    assert L7163.slot_box(1) == (4.65, 15.15, 99.1, 38.1)
    assert L7163.slot_box(14) == pytest.approx((4.65 + 101.6, 15.15 + 6 * 38.1, 99.1, 38.1))


def test_single_label_layout_is_one_label_per_page() -> None:
    assert SINGLE_62X29.per_page == 1
    assert SINGLE_62X29.slot_box(1) == (0.0, 0.0, 62.0, 29.0)
    assert LAYOUTS == {"L7160": L7160, "L7163": L7163, "62x29": SINGLE_62X29}


@pytest.mark.parametrize("layout", [L7160, L7163, SINGLE_62X29], ids=["L7160", "L7163", "62x29"])
def test_every_slot_is_on_the_page(layout: LabelLayout) -> None:
    for slot in range(1, layout.per_page + 1):
        x, y, width, height = layout.slot_box(slot)
        assert x >= 0 and y >= 0
        assert x + width <= layout.page_width_mm and y + height <= layout.page_height_mm
    with pytest.raises(LabelLayoutError, match="slot"):
        layout.slot_box(layout.per_page + 1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"horizontal_pitch_mm": 60.0}, "overlap"),
        ({"columns": 4}, "do not fit"),
        ({"top_margin_mm": 40.0}, "do not fit"),
        ({"rows": 0}, "at least one"),
        ({"label_width_mm": 0.0}, "positive"),
    ],
)
def test_impossible_layouts_are_refused(changes: dict[str, float], message: str) -> None:
    fields = {**L7160.__dict__, **changes}
    with pytest.raises(LabelLayoutError, match=message):
        LabelLayout(**fields)


# --- the PDF: every code scans, once, in its slot --------------------------------------------


@pytest.mark.parametrize(
    ("layout", "pages"),
    [(L7160, 2), (L7163, 2), (SINGLE_62X29, 25)],
    ids=["L7160", "L7163", "62x29"],
)
def test_every_label_of_25_scans_exactly_once_in_its_slot(layout: LabelLayout, pages: int) -> None:
    labels = _labels(25)
    pdf = render_pdf(labels, layout)
    document = pdfium.PdfDocument(pdf)
    try:
        assert len(document) == pages
        width, height = document[0].get_size()
    finally:
        document.close()
    assert (width / 72 * 25.4, height / 72 * 25.4) == pytest.approx(
        (layout.page_width_mm, layout.page_height_mm), abs=0.01
    )
    found = _scan_pdf(pdf, layout, plan_pages(labels, layout))
    counts = Counter(text for text, _, _ in found)
    assert counts == Counter(label.url for label in labels)
    expected = {
        label.url: (i // layout.per_page + 1, i % layout.per_page + 1)
        for i, label in enumerate(labels)
    }
    assert {text: (page, slot) for text, page, slot in found} == expected


def test_start_position_skips_used_slots() -> None:
    labels = _labels(19)
    pdf = render_pdf(labels, L7160, start_position=5)
    found = sorted(
        _scan_pdf(pdf, L7160, plan_pages(labels, L7160, start_position=5)),
        key=lambda item: (item[1], item[2]),
    )
    # Slots 1-4 of the first sheet were used already: 17 labels fill 5-21, 2 go to sheet two.
    assert [(page, slot) for _, page, slot in found] == [
        *((1, slot) for slot in range(5, 22)),
        (2, 1),
        (2, 2),
    ]
    assert [text for text, _, _ in found] == [label.url for label in labels]


@pytest.mark.parametrize("start", [0, -1, 22, True])
def test_start_position_must_be_on_the_sheet(start: int) -> None:
    with pytest.raises(LabelLayoutError, match="start position must be 1-21"):
        render_pdf(_labels(1), L7160, start_position=start)


def test_the_last_slot_works_as_a_start_position() -> None:
    pages = plan_pages(_labels(2), L7163, start_position=14)
    assert [[placed.slot for placed in page.labels] for page in pages] == [[14], [1]]


def test_no_labels_is_an_error() -> None:
    with pytest.raises(LabelLayoutError, match="no labels"):
        render_pdf([], L7160)


def test_pdf_is_byte_for_byte_reproducible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    labels = _labels(25)
    first = render_pdf(labels, L7160)
    real_time = time.time
    # A day later the bytes must not change: no timestamps, no random document id.
    monkeypatch.setattr(time, "time", lambda: real_time() + 86_400)
    second = render_pdf(labels, L7160)
    assert first == second
    assert render_pdf(_labels(25, school="Elm Tree Primary"), L7160) != first


def test_pdf_text_holds_the_tag_and_school() -> None:
    pdf = render_pdf([Label.for_device(BASE, "CB-17", "Ysgol Gymraeg Gŵyr", "Trolley B")], L7163)
    document = pdfium.PdfDocument(pdf)
    try:
        page = document[0]
        text_page = page.get_textpage()
        text = text_page.get_text_range()
        text_page.close()
        page.close()
    finally:
        document.close()
    assert "CB-17" in text
    # Standard Helvetica has no ŵ; the PDF prints the base letter rather than a blank box.
    assert "Ysgol Gymraeg Gwyr" in text
    assert "Trolley B" in text


# --- what goes on a label --------------------------------------------------------------------

WORST_CASE = Label(
    asset_tag="ABCDEFGHIJKLMNO-QRSTUVWXYZ012345",
    url=BASE + "/d/ABCDEFGHIJKLMNO-QRSTUVWXYZ012345",
    school_name="St Mary's Church of England Voluntary Aided Primary School and Nursery, Llanfair "
    "Pwllgwyngyll, Ynys Môn",
    caption="Property of the school: please return to the computing cupboard in the library",
)


def _check_inside(placed: PlacedLabel) -> None:
    """Every line of text sits inside the label, to the right of the QR code."""
    x, y, width, height = placed.box
    qr_right = placed.qr_origin[0] + len(placed.qr) * placed.qr_module_mm
    assert placed.qr_origin[1] + len(placed.qr) * placed.qr_module_mm <= y + height
    qr_bottom = placed.qr_origin[1] + len(placed.qr) * placed.qr_module_mm
    for line in placed.lines:
        size_mm = line.size_pt * 25.4 / 72
        # Beside the QR code, or (a long tag) along the foot of the label below it.
        assert line.x_mm >= qr_right or line.baseline_mm - 0.75 * size_mm >= qr_bottom
        assert line.x_mm >= x + 1.0, line.text
        assert line.x_mm + line.width_mm <= x + width - 1.0, line.text
        assert line.baseline_mm - 0.75 * size_mm >= y + 1.0, line.text
        assert line.baseline_mm + 0.22 * size_mm <= y + height - 1.0, line.text
    ordered = [line.baseline_mm for line in placed.lines]
    assert ordered == sorted(ordered)


@pytest.mark.parametrize("layout", [L7160, L7163, SINGLE_62X29], ids=["L7160", "L7163", "62x29"])
@pytest.mark.parametrize("label", [*_labels(2), WORST_CASE], ids=["plain", "caption", "worst"])
def test_text_stays_inside_the_label(layout: LabelLayout, label: Label) -> None:
    (page,) = plan_pages([label], layout)
    (placed,) = page.labels
    _check_inside(placed)
    tag_lines = [line.text for line in placed.lines if line.font == "Helvetica-Bold"]
    assert "".join(tag_lines) == label.asset_tag  # the tag is never cut short


def test_the_asset_tag_is_the_largest_print() -> None:
    for layout in (L7160, L7163, SINGLE_62X29):
        (page,) = plan_pages(_labels(2)[1:], layout)
        tag, *rest = page.labels[0].lines
        assert tag.text == "IPAD-001" and tag.font == "Helvetica-Bold"
        assert tag.size_pt >= 14
        assert all(tag.size_pt >= 2 * line.size_pt for line in rest)
        # The school name (wrapped if need be), then the caption.
        assert " ".join(line.text for line in rest[:-1]) == SCHOOL
        assert rest[-1].text == "Trolley A"


def _pdf_lines(pdf: bytes) -> list[str]:
    """The text of a one-page PDF, line by line, as a reader copying it would get it."""
    document = pdfium.PdfDocument(pdf)
    try:
        page = document[0]
        text_page = page.get_textpage()
        text = text_page.get_text_range()
        text_page.close()
        page.close()
    finally:
        document.close()
    return [line.strip() for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("layout", [L7160, L7163, SINGLE_62X29], ids=["L7160", "L7163", "62x29"])
@pytest.mark.parametrize("tag", ["OAK-CB-001", "OAK-IPAD-031", WORST_CASE.asset_tag])
def test_an_asset_tag_is_never_broken_across_lines(layout: LabelLayout, tag: str) -> None:
    """The printed tag is read and typed as one word: "OAK-" / "CB-001" was misread."""
    label = Label.for_device(BASE, tag, SCHOOL, "Year 6 trolley")
    assert tag in _pdf_lines(render_pdf([label], layout))
    (sheet,) = render_svg_sheets([label], layout)
    texts = [element.text for element in ET.fromstring(sheet).iter(f"{SVG_NS}text")]
    assert tag in texts
    (page,) = plan_pages([label], layout)
    (tag_line,) = [line for line in page.labels[0].lines if line.font == "Helvetica-Bold"]
    # Short tags stay large beside the QR code; the longest runs along the foot, still legible.
    assert tag_line.size_pt >= (10 if len(tag) <= 12 else 7)
    _check_inside(page.labels[0])
    assert _scan_pdf(render_pdf([label], layout), layout, [page]) == [(label.url, 1, 1)]


def test_long_school_names_wrap_then_end_in_an_ellipsis() -> None:
    (page,) = plan_pages([WORST_CASE], L7160)
    school_lines = [line for line in page.labels[0].lines if line.font == "Helvetica"][:2]
    assert school_lines[0].text.startswith("St Mary's")
    assert school_lines[1].text.endswith("\u2026")
    assert school_lines[0].size_pt == 5


def test_welsh_letters_keep_their_accents_in_svg_and_fall_back_in_pdf() -> None:
    (page,) = plan_pages([Label.for_device(BASE, "X1", "Ysgol Gŵyr")], L7163)
    school = page.labels[0].lines[1]
    assert school.text == "Ysgol Gŵyr"
    assert school.pdf_text == "Ysgol Gwyr"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"asset_tag": "../x"}, "asset tag"),
        ({"url": "javascript:alert(1)"}, "http"),
        ({"url": BASE + "/d/" + "x" * 400}, "http"),
        ({"school_name": "  "}, "school name must not be empty"),
        ({"school_name": "Oak\nfield"}, "control characters"),
        ({"school_name": "x" * 121}, "at most 120"),
        ({"caption": "x" * 81}, "at most 80"),
    ],
)
def test_bad_labels_are_refused(fields: dict[str, str], message: str) -> None:
    values = {"asset_tag": "IPAD-001", "url": BASE + "/d/IPAD-001", "school_name": SCHOOL}
    values.update(fields)
    with pytest.raises(LabelLayoutError, match=message) as caught:
        Label(**values)
    assert isinstance(caught.value, ProvisioningError)


def test_label_for_device_points_at_the_device_page() -> None:
    label = Label.for_device(BASE + "/", "IPAD-001", SCHOOL)
    assert label.url == BASE + "/d/IPAD-001"


# --- SVG sheets and the HTML page ------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "pages"),
    [(L7160, 2), (L7163, 2), (SINGLE_62X29, 25)],
    ids=["L7160", "L7163", "62x29"],
)
def test_svg_sheets_scan_like_the_pdf(layout: LabelLayout, pages: int) -> None:
    labels = _labels(25)
    sheets = render_svg_sheets(labels, layout)
    assert len(sheets) == pages
    found: list[str] = []
    for sheet in sheets:
        root = ET.fromstring(sheet)
        assert root.get("width") == f"{layout.page_width_mm:g}mm"
        assert root.get("height") == f"{layout.page_height_mm:g}mm"
        image = rasterise_svg_paths(
            sheet,
            width=layout.page_width_mm,
            height=layout.page_height_mm,
            px_per_unit=PX_PER_MM,
        )
        found.extend(code.text for code in decode_qr_codes(image))
    assert Counter(found) == Counter(label.url for label in labels)


def test_svg_text_is_escaped_and_well_formed() -> None:
    sheets = render_svg_sheets(
        [Label.for_device(BASE, "IPAD-001", "Smith & Jones <Academy>", 'Say "hi"')], L7163
    )
    root = ET.fromstring(sheets[0])
    texts = [element.text for element in root.iter(f"{SVG_NS}text")]
    assert texts == ["IPAD-001", "Smith & Jones <Academy>", 'Say "hi"']


def test_svg_sheets_honour_the_start_position() -> None:
    (sheet,) = render_svg_sheets(_labels(1), L7160, start_position=21)
    root = ET.fromstring(sheet)
    x = float(next(root.iter(f"{SVG_NS}text")).get("x", "0"))
    slot_x = L7160.slot_box(21)[0]
    assert slot_x < x < slot_x + L7160.label_width_mm


def test_html_page_prints_one_sheet_per_page() -> None:
    html = render_html(_labels(25), L7160, title="Labels <Oakfield>")
    assert html.count('<div class="sheet">') == 2
    assert "@page{size:210mm 297mm;margin:0}" in html
    assert "<title>Labels &lt;Oakfield&gt;</title>" in html
    assert "break-after:page" in html
    assert "Avery L7160" in html
