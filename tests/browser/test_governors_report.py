"""A governor reaches the termly report from the home page, reads it at phone width, and takes
the PDF."""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser


def test_the_governor_reaches_the_report_from_home(page: object, live_server: str) -> None:
    """The governor had home-page text only: now a link leads to the term's figures."""
    from playwright.sync_api import expect

    log_in(page, live_server, "governor@oakfield.example")
    page.get_by_role("link", name="Read the governors' report").click()  # type: ignore[attr-defined]
    expect(page.get_by_role("heading", level=1)).to_contain_text("Governors' report")  # type: ignore[attr-defined]
    for section in ("Devices in the register", "Losses and decisions", "Termly audit", "Photos"):
        expect(page.get_by_role("heading", level=2, name=section)).to_be_visible()  # type: ignore[attr-defined]
    # The demo school's register is not empty, and the figure says so.
    total = page.locator('[data-figure="register-total"]').inner_text()  # type: ignore[attr-defined]
    assert int(total) > 0
    # At phone width the page itself never scrolls sideways: wide tables scroll in their box.
    page.set_viewport_size({"width": 390, "height": 844})  # type: ignore[attr-defined]
    overflow = page.evaluate(  # type: ignore[attr-defined]
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    link = page.get_by_role("link", name="Download as PDF")  # type: ignore[attr-defined]
    pdf = page.request.get(live_server + link.get_attribute("href"))  # type: ignore[attr-defined]
    assert pdf.status == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF-")
