"""An iPad enrols in the demo school through Apple's MDM protocol, as Safari on an iPad would:
the technician makes the link on the enrolment page, a simulated iPad installs the profile over
HTTP, checks in, answers the inventory, and the device page shows what it reported."""

from __future__ import annotations

import pytest

from server.ipads.simulator import OverHttp, SimulatedIpad
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser

# A Year 4 iPad no other browser test uses.
TAG = "OAK-IPAD-045"
# One of the Year 3 iPads the demo itself runs as simulated MDM iPads.
DEMO_MDM_TAG = "OAK-IPAD-025"


def test_a_technician_enrols_an_ipad_through_safari_and_sees_what_it_reported(
    browser: object, live_server: str
) -> None:
    """P-REG-7: the iPad's own report (iPadOS, supervision, passcode) is on its page, with time."""
    from playwright.sync_api import expect

    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    log_in(page, live_server, "tech@oakfield.example")
    page.goto(f"{live_server}/enrolment/{TAG}")
    expect(page.get_by_text("Profile Downloaded")).to_be_visible()
    page.get_by_role("button", name="Make an enrolment link").click()
    expect(page.get_by_role("img", name=f"Enrolment QR code for {TAG}")).to_be_visible()
    link = page.locator("#ipad-enrol-link").get_attribute("href")
    assert link is not None and link.startswith(live_server + "/mdm/enrol/")

    transport = OverHttp(live_server)
    ipad = SimulatedIpad(transport, supervised=True)
    profile = transport.get(link.removeprefix(live_server))
    assert profile.status_code == 200
    ipad.enrol(profile.data)
    assert ipad.run() == 3

    page.goto(f"{live_server}/devices/{TAG}")
    panel = page.get_by_role("region", name="What the iPad reported")
    expect(panel).to_contain_text("managed by Trolley")
    expect(panel).to_contain_text("Supervised: lost mode and every restriction are available")
    expect(panel).to_contain_text("18.1")
    expect(panel).to_contain_text("Reported by the iPad")
    context.close()


def test_the_demo_ipads_enrol_over_mdm_and_their_pages_show_what_they_reported(
    browser: object, live_server: str
) -> None:
    """P-REG-7: the demo's own simulated iPads enrol through Apple's protocol as it starts; a
    Year 3 iPad's page shows its report with the time it was made."""
    import time

    from playwright.sync_api import expect

    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    log_in(page, live_server, "tech@oakfield.example")
    panel = page.get_by_role("region", name="What the iPad reported")
    deadline = time.monotonic() + 90  # the demo enrols them in the background as it starts
    while True:
        page.goto(f"{live_server}/devices/{DEMO_MDM_TAG}")
        if panel.count() and "Reported by the iPad" in panel.inner_text():
            break
        assert time.monotonic() < deadline, "the demo's MDM iPad never reported"
        page.wait_for_timeout(1000)
    expect(panel).to_contain_text("managed by Trolley")
    expect(panel).to_contain_text("Supervised")
    expect(panel).to_contain_text("18.1")
    context.close()
