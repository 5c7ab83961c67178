"""The register in a real browser: a teacher asks to move an iPad to the office safe; the SBM
approves it under Moves, and the device page shows its new home and the history line."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser

# Year 3's iPads live in the Year 3 trolley; this one is not used by the other browser tests.
TAG = "OAK-IPAD-017"
SAFE_PATH = "Oakfield Road site › Main building › School office › Office safe"


def test_a_teachers_move_to_the_safe_is_approved_by_the_sbm(
    browser: object, live_server: str
) -> None:
    """P-REG-2 / P-TROLLEY-3: the SBM is told first and approves; register and history agree."""
    from playwright.sync_api import expect

    teacher = browser.new_context()  # type: ignore[attr-defined]
    page = teacher.new_page()
    log_in(page, live_server, "teacher@oakfield.example")
    page.get_by_role("searchbox", name="Find a device").fill(TAG)
    page.get_by_role("button", name="Find").click()
    page.get_by_role("link", name=TAG).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(TAG)
    page.get_by_role("link", name="Move", exact=True).click()
    page.get_by_label("New home").select_option(label=SAFE_PATH)
    page.get_by_label("Why").fill("Class teacher's iPad: keep it locked in the office safe")
    page.get_by_role("button", name="Ask the SBM").click()
    expect(page.get_by_text("Sent to the school business manager for approval.")).to_be_visible()
    expect(page.get_by_text("Move to Office safe waiting for the school business")).to_be_visible()
    teacher.close()

    sbm = browser.new_context()  # type: ignore[attr-defined]
    page = sbm.new_page()
    log_in(page, live_server, "sbm@oakfield.example")
    expect(page.locator(".lead")).to_contain_text("School business manager")
    bell = page.locator("a.bell")
    if bell.count():  # the bell comes with notifications; the Moves page is the SBM's list
        expect(bell).to_have_attribute("aria-label", re.compile(r"\d+ unread"))
        bell.click()
        expect(page.get_by_role("link", name=f"Move of {TAG} needs your approval")).to_be_visible()
    page.get_by_role("link", name="Devices", exact=True).click()
    page.get_by_role("link", name="Moves", exact=True).click()
    row = page.get_by_role("row").filter(has_text=TAG)
    expect(row).to_contain_text("Year 3 trolley → Office safe")
    expect(row).to_contain_text("keep it locked in the office safe")
    row.get_by_role("button", name="Approve").click()
    expect(page.get_by_text(f"Move of {TAG} approved.")).to_be_visible()
    history = page.get_by_role("row").filter(has_text=TAG)
    expect(history).to_contain_text("Approved")

    page.get_by_role("link", name=TAG).first.click()
    facts = page.locator("dl.facts").first
    expect(facts).to_contain_text("Lives in")
    expect(facts.get_by_role("link", name="Office safe")).to_be_visible()
    expect(page.locator(".timeline")).to_contain_text(
        "Now lives in Office safe (was Year 3 trolley)"
    )
    expect(page.locator(".timeline")).to_contain_text("Move to Office safe asked for")

    # The safe's own page lists it among the devices that live there.
    facts.get_by_role("link", name="Office safe").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Office safe")
    expect(page.get_by_role("region", name="Devices that live here")).to_contain_text(TAG)
    sbm.close()
