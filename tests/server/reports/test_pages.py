"""The governors' report as a page and a PDF, for those allowed to read it and no one else."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

import pypdfium2 as pdfium
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices.models import Device
from server.losses.models import Decision, LossKind, LossReport, Outcome
from server.schools.models import School, Term
from server.schools.services import terms as school_terms
from tests.server.conftest import log_in_as

A4 = (595, 842)  # points, to the nearest whole point


def _losses(session: Session, devices: list[Device], head: User, start: datetime) -> None:
    for n, device in enumerate(devices):
        at = start + timedelta(hours=n)
        session.add(
            LossReport(
                school_id=device.school_id,
                device_id=device.id,
                kind=LossKind.LOST if n % 2 else LossKind.STOLEN,
                reported_at=at,
                aware_at=at,
                last_seen_at=at,
                last_seen_where="Hall",
                circumstances="Taken home by Alex in Year 6",
                decision=Decision.NO_REPORT,
                decided_by_id=head.id,
                decided_at=at + timedelta(hours=1),
                outcome=Outcome.FOUND,
                closed_at=at + timedelta(days=1),
            )
        )
    session.commit()


def _pdf_pages(data: bytes) -> list[tuple[tuple[int, int], str]]:
    pdf = pdfium.PdfDocument(io.BytesIO(data))
    try:
        pages = []
        for page in pdf:
            width, height = page.get_size()
            pages.append(((round(width), round(height)), page.get_textpage().get_text_range()))
        return pages
    finally:
        pdf.close()


def test_governors_the_head_and_the_sbm_read_it_and_teachers_do_not(
    app: Flask,
    session: Session,
    school: School,
    term: Term,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
) -> None:
    """The governor sees the report (before, only home-page text); a teacher is refused."""
    make_device()
    url = f"/reports/governors?term={term.id}"
    for role in (Role.GOVERNOR, Role.HEADTEACHER, Role.SBM):
        client = app.test_client()
        log_in_as(client, make_user(role))
        page = client.get(url)
        assert page.status_code == 200, role
        text = page.get_data(as_text=True)
        assert f"Governors&#39; report: {term.name}" in text
        assert 'data-figure="register-total">1<' in text
    for role in (Role.TEACHER, Role.COMPUTING_LEAD, Role.TECHNICIAN):
        client = app.test_client()
        log_in_as(client, make_user(role))
        assert client.get(url).status_code == 403, role
        assert client.get(f"/reports/governors.pdf?term={term.id}").status_code == 403, role


def test_the_governors_home_page_leads_to_the_report(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    log_in_as(client, make_user(Role.GOVERNOR))
    home = client.get("/").get_data(as_text=True)
    assert 'href="/reports/governors"' in home
    # The default is the term under way (or just finished), whichever day the tests run.
    assert client.get("/reports/governors").status_code == 200


def test_another_schools_term_is_not_found(
    client: FlaskClient,
    session: Session,
    other_school: School,
    make_user: Callable[..., User],
) -> None:
    log_in_as(client, make_user(Role.GOVERNOR))
    theirs = school_terms(session, other_school.id)[0]
    assert client.get(f"/reports/governors?term={theirs.id}").status_code == 404
    assert client.get(f"/reports/governors.pdf?term={theirs.id}").status_code == 404


def test_the_pdf_is_a4_numbered_with_the_figures_and_no_row_cut_in_two(
    client: FlaskClient,
    session: Session,
    school: School,
    term: Term,
    make_user: Callable[..., User],
    make_device: Callable[..., Device],
) -> None:
    """P-LOSS-2: the head's decisions, by name, in a PDF governors can keep; nothing on pupils."""
    head = make_user(Role.HEADTEACHER)
    head.name = "Dr Okafor"
    devices = [make_device() for _ in range(45)]
    start = datetime.combine(term.starts_on + timedelta(days=3), time(9, 0), tzinfo=UTC)
    _losses(session, devices, head, start)
    log_in_as(client, make_user(Role.GOVERNOR))
    response = client.get(f"/reports/governors.pdf?term={term.id}")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert "attachment" in response.headers["Content-Disposition"]
    pages = _pdf_pages(response.get_data())
    total = len(pages)
    assert total >= 2
    for number, (size, text) in enumerate(pages, start=1):
        assert size == A4
        assert f"Page {number} of {total}" in text
        assert school.name in text
    everything = "\n".join(text for _size, text in pages)
    assert f"Governors' report: {term.name}" in everything
    assert "Generated at" in everything
    assert "45 reported (22 lost, 23 stolen): 45 found" in everything
    assert "Alex" not in everything
    # Each case's row is whole on one page (its number beside the head's name, which is in
    # its last-but-two cell), and the table's header repeats on every page it runs onto.
    case_pages = [text for _size, text in pages if "Dr Okafor" in text]
    assert len(case_pages) >= 2
    for text in case_pages:
        assert "ICO decision" in text
        assert len(re.findall(r"#\d+", text)) == text.count("Dr Okafor")
    assert sum(text.count("Dr Okafor") for text in case_pages) == 45
