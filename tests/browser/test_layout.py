"""Every page the role tests visit, per role, at phone, tablet and desktop widths: no sideways
page scroll, nothing cut off, 44 px touch targets, and no serious or critical axe-core finding.
One walk per role on the shared demo school: each page is loaded once and measured at each width."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import log_in
from tests.browser.layout import accessibility_problems, axe_source, layout_problems

pytestmark = pytest.mark.browser

# Pages with a list, and the detail page each list's first matching link opens.
DETAILS = {
    "/loans": r"^/loans/\d+$",
    "/audits": r"^/audits/\d+$",
    "/leavers": r"^/leavers/\d+$",
    "/commands": r"^/commands/\d+$",
    "/disposals": r"^/disposals/\d+$",
    "/locations": r"^/locations/\d+$",
    "/profiles": r"^/profiles/\d+$",
    "/licences": r"^/licences/\d+$",
}
# What each role's own browser tests (and its menu) take it to. The headteacher's own pages are
# checked in the loss test, on a school where the head has already set up a second factor.
ROLE_PAGES = {
    "teacher": [
        "/",
        "/scan",
        "/loans",
        "/d/OAK-IPAD-034",
        "/leavers/mine",
        "/filter-exceptions/new",
        "/losses/new",
        "/notifications",
    ],
    "governor": [
        "/",
        "/audits",
        "/licences",
        "/losses/log",
        "/photo-checks",
        "/spot-checks",
        "/account",
        "/reports/governors",
    ],
    "admin": ["/", "/devices", "/people", "/activity", "/locations", "/commands"],
    "sbm": [
        "/",
        "/devices/moves",
        "/imports",
        "/labels",
        "/leavers",
        "/leavers/new",
        "/disposals",
        "/chromebooks",
        "/personal-devices",
        "/loans/out",
        "/people",
        "/activity",
        "/locations/networks",
    ],
    "computing": [
        "/",
        "/audits",
        "/photo-checks",
        "/spot-checks",
        "/profiles",
        "/profiles/compliance",
        "/licences",
        "/commands",
    ],
    "tech": ["/", "/enrolment", "/commands", "/chromebooks", "/devices/OAK-CB-001"],
}


def _walk(browser: object, base: str, role: str) -> list[str]:
    """Every problem on every page the role visits, axe-core run at phone width."""
    axe_source()
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    page = context.new_page()
    try:
        log_in(page, base, f"{role}@oakfield.example")
        queue = list(ROLE_PAGES[role])
        while queue:
            path = queue.pop(0)
            response = page.goto(base + path)
            assert response is not None and response.ok, f"{role}: {path} answered {response}"
            if path in DETAILS:
                queue[:0] = _first_link(page, DETAILS[path])
            layout = layout_problems(page)
            found = [f"at {w} px: {p}" for w, ps in layout.items() for p in ps]
            found += accessibility_problems(page)
            problems += [f"{path}: {p}" for p in found]
    finally:
        context.close()
    return problems


def _first_link(page: object, pattern: str) -> list[str]:
    """The first link on the page whose path matches, if there is one."""
    hrefs = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "main a[href^='/']", "links => links.map(a => a.getAttribute('href'))"
    )
    return [href for href in hrefs if re.match(pattern, href)][:1]


@pytest.mark.parametrize("role", ROLE_PAGES)
def test_every_page_fits_phone_tablet_and_desktop_and_passes_axe(
    browser: object, live_server: str, role: str
) -> None:
    """At 390, 820 and 1280 px no page scrolls sideways or cuts anything off, touch targets are
    at least 44 px, and axe-core finds nothing serious or critical."""
    problems = _walk(browser, live_server, role)
    assert not problems, "\n".join(problems)


def _page_width(page: object) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))  # type: ignore[attr-defined]


def test_the_menu_folds_on_a_phone_and_works_from_the_keyboard_or_without_scripts(
    browser: object, live_server: str
) -> None:
    """At 390 px the menu is one button beside the school's name: Enter opens it, Escape closes
    it and gives the focus back; the device list scrolls inside its own named box. Without
    scripts the menu stays open and the list still never widens the page."""
    from playwright.sync_api import expect

    phone = {"width": 390, "height": 844}
    context = browser.new_context(viewport=phone)  # type: ignore[attr-defined]
    page = context.new_page()
    try:
        log_in(page, live_server, "teacher@oakfield.example")
        header = page.get_by_role("banner").bounding_box()
        assert header is not None and header["height"] < phone["height"] / 5, header
        menu = page.get_by_role("button", name="Menu")
        nav = page.get_by_role("navigation", name="Main")
        expect(menu).to_have_attribute("aria-expanded", "false")
        expect(nav).to_be_hidden()
        menu.focus()
        page.keyboard.press("Enter")
        expect(menu).to_have_attribute("aria-expanded", "true")
        expect(nav.get_by_role("link", name="Scan")).to_be_visible()
        page.keyboard.press("Tab")
        expect(nav.get_by_role("link", name="Home")).to_be_focused()
        page.keyboard.press("Escape")
        expect(menu).to_have_attribute("aria-expanded", "false")
        expect(menu).to_be_focused()

        page.goto(f"{live_server}/devices")
        box = page.get_by_role("region", name="Devices (scrolls sideways)")
        expect(box.get_by_role("columnheader", name="Asset tag")).to_be_attached()
        assert page.evaluate("document.querySelector('.table-scroll').scrollWidth") > 390
        assert _page_width(page) <= 390
    finally:
        context.close()

    context = browser.new_context(viewport=phone, java_script_enabled=False)  # type: ignore[attr-defined]
    page = context.new_page()
    try:
        log_in(page, live_server, "teacher@oakfield.example")
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Scan")).to_be_visible()
        page.goto(f"{live_server}/devices")
        assert _page_width(page) <= 390
    finally:
        context.close()
