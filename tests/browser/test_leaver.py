"""A leaver in a real browser: the SBM opens the case, the leaver completes their checklist, the
technician scans the iPad in and resets it (acknowledged by the demo's simulated iPad after the
headteacher approves), all three sign off, and the case closes with its printable record."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from server.schools.demo import DEMO_PASSWORD
from tests.browser.conftest import demo_server, ready_to_confirm, wait_until_online

pytestmark = pytest.mark.browser

# A Year 4 iPad that the other browser tests leave alone.
TAG = "OAK-IPAD-058"
PASSCODE = "240618"


@pytest.fixture(scope="module")
def leaver_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A demo school of its own: the shared one's technician may already have a 6-digit code."""
    with demo_server(tmp_path_factory.mktemp("leaver-demo")) as base:
        yield base


# The second factor each person set up here, so a step-up can answer with a fresh code.
SECRETS: dict[str, str] = {}


def _log_in(browser: object, base: str, email: str) -> object:
    """A fresh browser context logged in as `email` (setting up the second factor if asked)."""
    from playwright.sync_api import expect

    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{base}/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    with page.expect_navigation(timeout=90_000):  # read the next page's heading, not this one's
        page.get_by_role("button", name="Log in").click()
    if "Set up two-step" in page.locator("h1").inner_text():
        secret = page.locator("#totp-secret").inner_text().replace(" ", "")
        SECRETS[email] = secret
        page.get_by_label("6-digit code").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Turn on and continue").click()
    expect(page.locator(".lead")).to_be_visible()
    return page


def test_a_leaver_case_from_opening_to_its_printable_record(
    browser: object, leaver_server: str
) -> None:
    """P-LEAVE-1, P-LEAVE-2: checklist, a device-acknowledged reset, three sign-offs, record."""
    from playwright.sync_api import expect

    base = leaver_server
    # The teacher has an iPad out (the register and loans say they hold it).
    teacher = _log_in(browser, base, "teacher@oakfield.example")
    wait_until_online(teacher, base, TAG)
    teacher.get_by_role("button", name="Take out").click()  # type: ignore[attr-defined]
    expect(teacher.get_by_role("status")).to_contain_text(TAG)  # type: ignore[attr-defined]

    # The SBM opens the case.
    sbm = _log_in(browser, base, "sbm@oakfield.example")
    sbm.get_by_role("link", name="Open a leaver case").click()  # type: ignore[attr-defined]
    expect(sbm.get_by_role("heading", level=1)).to_have_text("Open a leaver case")  # type: ignore[attr-defined]
    sbm.get_by_label("Who is leaving?").select_option(label="Amira Khan (Teacher)")  # type: ignore[attr-defined]
    last_day = (datetime.now(UTC) + timedelta(days=3)).date()
    sbm.get_by_label("Last day").fill(last_day.isoformat())  # type: ignore[attr-defined]
    sbm.get_by_label("Line manager").select_option(label="Tom Price (Computing lead)")  # type: ignore[attr-defined]
    sbm.get_by_label("Technician").select_option(label="Raj Patel")  # type: ignore[attr-defined]
    sbm.get_by_role("button", name="Open the case").click()  # type: ignore[attr-defined]
    expect(sbm.get_by_role("heading", level=1)).to_contain_text("Leaver case: Amira Khan")  # type: ignore[attr-defined]
    expect(sbm.locator("table.leaver-items")).to_contain_text(TAG)  # type: ignore[attr-defined]
    case_url = sbm.url  # type: ignore[attr-defined]

    # The leaver completes their checklist: route (a), the passcode and Apple ID into escrow.
    teacher.goto(base + "/")  # type: ignore[attr-defined]
    teacher.get_by_role("link", name="Open my leaving checklist").click()  # type: ignore[attr-defined]
    expect(teacher.get_by_role("heading", level=1)).to_have_text("Your leaving checklist")  # type: ignore[attr-defined]
    teacher.get_by_label("Screen passcode or PIN").fill(PASSCODE)  # type: ignore[attr-defined]
    teacher.get_by_label("Apple ID or Google account e-mail").fill("amira@icloud.example")  # type: ignore[attr-defined]
    teacher.get_by_label("That account's password").fill("Bluebell-2024!")  # type: ignore[attr-defined]
    teacher.get_by_role("button", name="Hand these over safely").click()  # type: ignore[attr-defined]
    expect(teacher.get_by_role("status")).to_contain_text("Kept safely")  # type: ignore[attr-defined]
    expect(teacher.get_by_text("Done: you handed over the passcode")).to_be_visible()  # type: ignore[attr-defined]
    assert PASSCODE not in teacher.content()  # type: ignore[attr-defined]

    # The technician scans it back in and asks for the factory reset.
    tech = _log_in(browser, base, "tech@oakfield.example")
    tech.goto(case_url)  # type: ignore[attr-defined]
    tech.get_by_role("link", name="Scan devices back in").click()  # type: ignore[attr-defined]
    tech.get_by_label("Scan the label, or type the asset tag").fill(TAG)  # type: ignore[attr-defined]
    tech.get_by_role("button", name="Scan in").click()  # type: ignore[attr-defined]
    expect(tech.get_by_role("status")).to_contain_text(f"{TAG} is back")  # type: ignore[attr-defined]
    tech.goto(case_url)  # type: ignore[attr-defined]
    reset = tech.get_by_role("button", name="Send a factory reset")  # type: ignore[attr-defined]
    ready_to_confirm(tech, reset).click()  # type: ignore[attr-defined]
    tech.get_by_role("button", name=f"Factory reset {TAG}").click()  # type: ignore[attr-defined]
    expect(tech.get_by_role("status")).to_contain_text("Factory reset asked for")  # type: ignore[attr-defined]
    expect(tech.locator("table.leaver-items")).to_contain_text("waiting for a second person")  # type: ignore[attr-defined]

    # A second person approves it.
    head = _log_in(browser, base, "head@oakfield.example")
    head.goto(f"{base}/commands")  # type: ignore[attr-defined]
    # Not yet proved: Approve goes to the proof first and asks nothing yet.
    head.get_by_role("button", name="Approve").click()  # type: ignore[attr-defined]
    # Approving a destructive command needs a fresh proof that it is the head (P-SEC-1).
    expect(head.get_by_role("heading", level=1)).to_have_text("Confirm it is you")  # type: ignore[attr-defined]
    # The next time step's code: the one the head set up with is never accepted twice.
    code = pyotp.TOTP(SECRETS["head@oakfield.example"]).at(time.time() + 30)
    head.get_by_label("6-digit code").fill(code)  # type: ignore[attr-defined]
    head.get_by_role("button", name=re.compile("^Confirm")).click()  # type: ignore[attr-defined]
    head.wait_for_url(f"{base}/commands")  # type: ignore[attr-defined]
    approve = head.get_by_role("button", name="Approve")  # type: ignore[attr-defined]
    ready_to_confirm(head, approve).click()  # type: ignore[attr-defined]
    asked = head.get_by_role(
        "alertdialog", name=re.compile("^Approve the factory reset of 1 device")
    )  # type: ignore[attr-defined]
    expect(asked).to_contain_text("Everything on them is erased")
    asked.get_by_role("button", name="Approve the factory reset of 1 device").click()

    # The simulated iPad confirms the reset; the technician sees it acknowledged.
    items = tech.locator("table.leaver-items")  # type: ignore[attr-defined]
    deadline = time.monotonic() + 180  # the worker and the fleet share two busy cores
    while "Reset confirmed by the device" not in items.inner_text():
        assert time.monotonic() < deadline, items.inner_text()
        tech.wait_for_timeout(2000)  # type: ignore[attr-defined]
        tech.reload()  # type: ignore[attr-defined]

    # All three sign off: the leaver, the line manager, the technician.
    teacher.goto(f"{base}/leavers/mine")  # type: ignore[attr-defined]
    sign = teacher.get_by_role("button", name="Sign my checklist")  # type: ignore[attr-defined]
    ready_to_confirm(teacher, sign).click()  # type: ignore[attr-defined]
    teacher.get_by_role("alertdialog").get_by_role("button", name="Sign off").click()  # type: ignore[attr-defined]
    expect(teacher.get_by_text(re.compile("^You signed at"))).to_be_visible()  # type: ignore[attr-defined]
    lead = _log_in(browser, base, "computing@oakfield.example")
    lead.get_by_role("link", name="Amira Khan", exact=True).click()  # type: ignore[attr-defined]
    sign = lead.get_by_role("button", name="Sign off as line manager")  # type: ignore[attr-defined]
    ready_to_confirm(lead, sign).click()  # type: ignore[attr-defined]
    lead.get_by_role("alertdialog").get_by_role("button", name="Sign off").click()  # type: ignore[attr-defined]
    expect(lead.get_by_role("status")).to_contain_text("your sign-off is recorded")  # type: ignore[attr-defined]
    tech.goto(case_url)  # type: ignore[attr-defined]
    sign = tech.get_by_role("button", name="Sign off as technician")  # type: ignore[attr-defined]
    ready_to_confirm(tech, sign).click()  # type: ignore[attr-defined]
    tech.get_by_role("alertdialog").get_by_role("button", name="Sign off").click()  # type: ignore[attr-defined]
    expect(tech.get_by_role("heading", level=1)).to_contain_text("Closed")  # type: ignore[attr-defined]

    # The printable record.
    tech.get_by_role("link", name="Printable record").click()  # type: ignore[attr-defined]
    expect(tech.get_by_role("heading", level=1)).to_have_text("Leaver record: Amira Khan")  # type: ignore[attr-defined]
    expect(tech.locator("#record-status")).to_contain_text(
        "Closed when the last of the three signed off"
    )  # type: ignore[attr-defined]
    record = tech.locator("main").inner_text()  # type: ignore[attr-defined]
    for words in (
        TAG,
        "PIN and account details handed over",
        "Reset confirmed by the device",
        "Signed off as the leaver",
        "Signed off as line manager",
        "Signed off as technician",
    ):
        assert words in record, words
    assert PASSCODE not in tech.content()  # type: ignore[attr-defined]
    for page in (teacher, sbm, tech, head, lead):
        page.context.close()  # type: ignore[attr-defined]
