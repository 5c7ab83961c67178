"""The governors' report as an A4 PDF: the page's figures, numbered pages, rows never split."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from server.reports.pages import GovernorsReport, Line

MARGIN = 18 * mm
_STYLES = getSampleStyleSheet()
BODY = ParagraphStyle("body", parent=_STYLES["BodyText"], fontSize=9.5, leading=12)
CELL = ParagraphStyle("cell", parent=BODY, fontSize=9, leading=11, spaceBefore=0, spaceAfter=0)
BASIS = ParagraphStyle("basis", parent=BODY, fontSize=8.5, textColor=colors.HexColor("#444444"))
H1 = ParagraphStyle("h1", parent=_STYLES["Heading1"], fontSize=17, spaceAfter=4)
H2 = ParagraphStyle("h2", parent=_STYLES["Heading2"], fontSize=12.5, spaceBefore=10)
GRID = TableStyle(
    [
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa5b1")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]
)


def _p(text: object, style: ParagraphStyle = CELL) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def _table(
    header: list[str], rows: Sequence[Sequence[object]], widths: list[float] | None = None
) -> Table:
    """A table whose header repeats on each page and whose rows are never cut in two."""
    data = [[_p(h) for h in header]] + [[_p(cell) for cell in row] for row in rows]
    table = Table(data, colWidths=widths, repeatRows=1, splitInRow=0, hAlign="LEFT")
    table.setStyle(GRID)
    return table


def _lines(title: str, lines: list[Line]) -> KeepTogether:
    """A short table of labelled counts, kept on one page."""
    rows = [[line.label, line.text] for line in lines]
    return KeepTogether([_table([title, "Devices"], rows, [110 * mm, 30 * mm])])


def _section(title: str, basis: str, *body: Any) -> list[Any]:
    # The heading stays with what follows it; long tables may still run onto the next page.
    return [KeepTogether([_p(title, H2), _p(basis, BASIS)]), *body]


def _numbered(school: str, term: str) -> type[Canvas]:
    class NumberedCanvas(Canvas):
        """Holds each page until the end, so every footer can say 'page n of N'."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self.setFont("Helvetica", 8)
                self.drawString(MARGIN, 10 * mm, f"{school} · {term}")
                self.drawRightString(A4[0] - MARGIN, 10 * mm, f"Page {number} of {total}")
                super().showPage()
            super().save()

    return NumberedCanvas


def render_pdf(report: GovernorsReport) -> bytes:
    """The report as A4 PDF bytes."""
    out = io.BytesIO()
    period, term = report.period, report.period.term.name
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 4 * mm,
        title=report.title,
        author=report.school_name,
        subject=f"Devices: {term}",
    )
    r, losses, audits, photos = report.register, report.losses, report.audits, report.photos
    story: list[Any] = [
        _p(report.school_name, H1),
        _p(report.title, H2),
        _p(
            f"Covers {period.text} (the term and "
            f"the holiday after it). Generated at {report.generated_at}, school time.",
            BODY,
        ),
        _p(
            "Every figure is counted from Trolley's records and says what it is based on. Where "
            "nothing was reported, it says 'not known'. No pupil's details are in this report; "
            "staff are named only for decisions they made.",
            BASIS,
        ),
        Spacer(1, 4),
    ]
    story += _section(
        "Devices in the register",
        r.basis,
        _p(f"{r.total} devices in use or in stock; {r.added} added during the period.", BODY),
        _lines("Kind of device", r.by_platform),
        Spacer(1, 4),
        _lines("Status", r.by_status),
    )
    story += _section(
        "Losses and decisions",
        losses.basis,
        _p(
            f"{losses.reported} reported ({losses.lost} lost, {losses.stolen} stolen): "
            f"{losses.found} found, {losses.written_off} written off, {losses.confirmed_stolen} "
            f"confirmed stolen, {losses.still_open} still open. {losses.ico_reported} reported "
            "to the ICO.",
            BODY,
        ),
        _table(
            ["Case", "Kind", "Reported", "ICO decision", "Decided by", "Decided", "Outcome"],
            [
                [
                    f"#{c.case}",
                    c.kind,
                    c.reported_on,
                    c.decision,
                    c.decided_by,
                    c.decided_on,
                    c.outcome,
                ]
                for c in losses.cases
            ],
            [14 * mm, 16 * mm, 27 * mm, 30 * mm, 28 * mm, 27 * mm, 22 * mm],
        )
        if losses.cases
        else _p("No losses were reported in the period.", BODY),
    )
    story += _section(
        "Termly audit",
        audits.basis,
        _p(
            "A whole-school audit was signed off this term."
            if audits.whole_school_signed_off
            else "No whole-school audit has been signed off for this term.",
            BODY,
        ),
        _table(
            ["Audit", "State", "Expected", "Found", "Missing", "Found %", "Signed off by"],
            [
                [
                    a.scope,
                    a.state,
                    a.expected,
                    a.found,
                    a.missing,
                    a.percent_text,
                    f"{a.signed_off_by} ({a.signed_off_on})" if a.signed_off_on != "—" else "—",
                ]
                for a in audits.audits
            ],
            [27 * mm, 22 * mm, 18 * mm, 16 * mm, 17 * mm, 20 * mm, 54 * mm],
        )
        if audits.audits
        else _p("No audit was started this term.", BODY),
    )
    story += _section(
        "Photos",
        photos.basis,
        _table(
            ["Photo wipes when devices were returned", "Returns"],
            [
                ["Confirmed by the device", photos.by_device],
                ["… of which within an hour of the return", photos.by_device_within_hour],
                ["Checked by hand by a named person", photos.by_hand],
                *[[f"… by {p.label}", p.text] for p in photos.by_hand_people],
                ["Not known", photos.not_known],
                ["All returns", photos.returns],
            ],
            [110 * mm, 30 * mm],
        ),
        Spacer(1, 4),
        _table(
            ["Half-termly photo check", "Done", "Devices", "Cleared", "Holding", "Not known"],
            [
                [
                    h.label,
                    f"by {h.completed_by}, {h.completed_on}" if h.done else "not done",
                    _known(h.devices),
                    _known(h.cleared),
                    _known(h.still_holding),
                    _known(h.unconfirmed),
                ]
                for h in photos.halves
            ],
            [45 * mm, 52 * mm, 18 * mm, 18 * mm, 18 * mm, 20 * mm],
        ),
        _p(
            f"Random spot checks: {photos.spot_checks} drawn, {photos.spot_devices_checked} "
            f"devices checked, {photos.spot_findings} with photos or other personal data found.",
            BODY,
        ),
    )
    resets = report.resets
    story += _section(
        "Factory resets",
        resets.basis,
        _lines(
            "Factory resets",
            [
                Line("Asked for", resets.asked),
                Line("Confirmed by the device", resets.confirmed),
                Line("Still waiting", resets.waiting),
                Line("Not done", resets.not_done),
            ],
        ),
    )
    compliance = report.compliance
    story += _section(
        "Profiles: each setting as devices reported it",
        compliance.basis,
        _table(
            ["Setting", "Applied", "Not applied", "Not known"],
            [[s.label, s.applied, s.not_applied, s.not_known] for s in compliance.settings],
            [80 * mm, 28 * mm, 28 * mm, 28 * mm],
        )
        if compliance.settings
        else _p("No device has a restriction profile to enforce.", BODY),
        Spacer(1, 4),
        _lines("Passcode and encryption, as devices reported them", compliance.protection),
    )
    doc.build(story, canvasmaker=_numbered(report.school_name, term))
    return out.getvalue()


def _known(value: int | None) -> str:
    return "not known" if value is None else str(value)
