"""A loss in a real browser: a teacher reports it, the head sees the clock run, assesses and
decides, and the printable incident record shows every step with its time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pyotp
import pytest

from server.schools.demo import DEMO_PASSWORD
from tests.browser.conftest import demo_server
from tests.browser.layout import check_page

pytestmark = pytest.mark.browser

# A Year 4 iPad that the other browser tests leave alone.
TAG = "OAK-IPAD-052"
TIME = re.compile(r"\d{2}:\d{2} on \w{3} \d{1,2} \w{3} \d{4}")


@pytest.fixture(scope="module")
def loss_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A demo school of its own: the shared one's head may already have set up a 6-digit code."""
    with demo_server(tmp_path_factory.mktemp("loss-demo")) as base:
        yield base


def _log_in(page: object, base: str, email: str) -> None:
    page.goto(f"{base}/login")  # type: ignore[attr-defined]
    page.get_by_label("E-mail").fill(email)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(DEMO_PASSWORD)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Log in").click()  # type: ignore[attr-defined]


def test_a_teacher_reports_and_the_head_assesses_decides_and_prints(
    browser: object, loss_server: str
) -> None:
    """P-LOSS-1, P-LOSS-2: report → head told → live countdown → assessment → decision →
    an incident record listing every step with its time."""
    from playwright.sync_api import expect

    teacher = browser.new_context()  # type: ignore[attr-defined]
    page = teacher.new_page()
    _log_in(page, loss_server, "teacher@oakfield.example")
    page.get_by_role("link", name="Report a lost or stolen device").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Report a lost or stolen device")
    last_seen = datetime.now(UTC) - timedelta(hours=1)
    page.get_by_label("Asset tag").fill(TAG)
    page.get_by_label("Lost: we do not know where it is").check()
    page.get_by_label("When was it last seen?").fill(
        last_seen.astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m-%dT%H:%M")
    )
    page.get_by_label("Where was it last seen?").fill("Year 4 classroom, reading corner")
    page.get_by_label("What happened?").fill("Not in its slot when the trolley was checked.")
    page.get_by_role("button", name="Report it and tell the headteacher").click()
    expect(page.get_by_role("status")).to_contain_text("the headteacher has been told")
    expect(page.get_by_role("heading", level=1)).to_contain_text(TAG)
    # Lost mode: pending → active if the demo's simulated iPad is enrolled, else it says why not.
    lost_mode = page.locator(".lost-mode")
    expect(lost_mode).to_have_text(re.compile("Pending|Active|not possible: device not enrolled"))
    enrolled = "not possible" not in lost_mode.inner_text()
    if enrolled:
        expect(lost_mode).to_have_text(re.compile("^Active"), timeout=30_000)
    expect(page.get_by_text("Dr Helen Ward, in Trolley")).to_be_visible()
    teacher.close()

    head = browser.new_context()  # type: ignore[attr-defined]
    page = head.new_page()
    _log_in(page, loss_server, "head@oakfield.example")
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up two-step verification")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("6-digit code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on and continue").click()
    expect(page.locator(".lead")).to_contain_text("Headteacher")

    # The home page's countdown is live: it ticks every second without reloading.
    card = page.locator("section", has=page.get_by_role("heading", name="Lost or stolen devices"))
    countdown = card.locator(".countdown[data-deadline]")
    expect(countdown).to_have_text(re.compile(r"^71 h \d+ min \d+ s left$"))
    before = countdown.inner_text()
    expect(countdown).not_to_have_text(before, timeout=3000)
    # The headteacher's own pages, at every width (the shared school's head is kept fresh).
    check_page(page)

    card.get_by_role("link", name=TAG).click()
    expect(page.locator(".clock-big .countdown")).to_have_text(re.compile(r"71 h \d+ min"))
    check_page(page)
    expect(page.get_by_label("What personal data could be on the device?")).to_have_value(
        re.compile("Photos from lessons")
    )
    page.get_by_label("Unlikely to result in a risk to people").check()
    page.get_by_label("Your reasons").fill("Passcode set; no photos reported on it.")
    page.get_by_role("button", name="Save the assessment").click()
    expect(page.get_by_role("status")).to_have_text("Breach assessment saved.")

    page.get_by_label("Not reportable to the ICO").check()
    page.get_by_label("Justification").fill("Locked with a passcode, no personal data found.")
    page.get_by_role("button", name="Record the decision").click()
    expect(page.get_by_role("status")).to_have_text("Decision recorded in the breach log.")
    expect(page.locator(".clock-big .countdown")).to_have_text(re.compile(r"^Decided with 71 h"))

    page.get_by_role("link", name="The incident record (printable)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Incident record"))
    rows = page.locator("table.record tbody tr")
    for step in (
        "Reported lost by Amira Khan",
        "Lost mode on acknowledged as done by the device"
        if enrolled
        else "Lost mode not possible: device not enrolled",
        "Told Dr Helen Ward in Trolley",
        "E-mail to head@oakfield.example queued",
        "Breach assessment: unlikely to result in a risk to people",
        "Decision: not reportable to the ICO",
    ):
        row = rows.filter(has_text=step)
        expect(row.first).to_be_visible()
        expect(row.first.locator("td").first).to_have_text(TIME)
    expect(page.get_by_role("button", name="Print this record")).to_be_visible()
    check_page(page)
    page.goto(f"{loss_server}/losses")
    check_page(page)
    head.close()
