"""Passkeys in real Chromium with its virtual authenticator: the headteacher adds one, logs in
with it, and confirms with it before approving a factory reset."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from server.schools.demo import DEMO_PASSWORD
from tests.browser.conftest import demo_server, log_in, ready_to_confirm

pytestmark = pytest.mark.browser
HEAD = "head@oakfield.example"


@pytest.fixture(scope="module")
def passkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A demo school the browser reaches as localhost: passkeys belong to a domain name."""
    with demo_server(tmp_path_factory.mktemp("passkey-demo"), host_name="localhost") as base:
        yield base


def _virtual_authenticator(context: object, page: object) -> None:
    """A platform authenticator that verifies its user (fingerprint or PIN) without a prompt."""
    cdp = context.new_cdp_session(page)  # type: ignore[attr-defined]
    cdp.send("WebAuthn.enable", {"enableUI": False})
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )


def _ask_for_factory_reset(browser: object, base: str) -> None:
    """The technician asks for a factory reset of one iPad; it waits for a second person."""
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    log_in(page, base, "tech@oakfield.example")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    # The demo's simulated fleet enrols itself over HTTP just after start-up: wait for it.
    deadline = time.monotonic() + 60
    while True:
        asked = page.request.post(
            f"{base}/api/v1/devices/OAK-IPAD-001/commands",
            data={"type": "factory_reset", "reason": "Stolen from the car park"},
            headers={"X-CSRFToken": token},
        )
        if asked.status != 400 or "Not enrolled" not in asked.text():
            break
        assert time.monotonic() < deadline, asked.text()
        page.wait_for_timeout(500)
    assert asked.status == 202, asked.text()
    assert asked.json()["status"] == "pending_approval"
    context.close()


def test_the_head_adds_a_passkey_logs_in_with_it_and_confirms_an_approval(
    browser: object, passkey_server: str
) -> None:
    """P-SEC-1: a passkey as the second factor at log-in, and a fresh passkey check before a
    destructive command is approved."""
    from playwright.sync_api import expect

    live_server = passkey_server
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    # While the demo's simulated fleet enrols, a busy 2-core machine answers slowly.
    page.set_default_timeout(60_000)
    page.set_default_navigation_timeout(90_000)
    _virtual_authenticator(context, page)
    log_in(page, live_server, HEAD)

    page.goto(f"{live_server}/account")
    page.get_by_label("Name it (which device?)").fill("Office laptop")
    page.locator("[data-passkey][data-ready]").wait_for()
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("#passkeys tbody")).to_contain_text("Office laptop")
    expect(page.get_by_text("Passkey “Office laptop” added")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{live_server}/login")
    page.get_by_label("E-mail").fill(HEAD)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Use your passkey")
    page.locator("[data-passkey][data-ready]").wait_for()
    page.get_by_role("button", name="Use my passkey").click()
    page.wait_for_url(f"{live_server}/")

    _ask_for_factory_reset(browser, live_server)
    page.goto(f"{live_server}/commands")
    row = page.locator("section[aria-labelledby=approvals] tr", has_text="Stolen from the car park")
    row.get_by_role("button", name="Approve").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
    page.locator("[data-passkey][data-ready]").wait_for()
    page.get_by_role("button", name="Use my passkey").click()
    page.wait_for_url(f"{live_server}/commands")
    expect(page.get_by_text("Confirmed.")).to_be_visible()
    ready_to_confirm(page, row.get_by_role("button", name="Approve").first).click()
    asked = page.get_by_role("alertdialog", name=re.compile("^Approve the factory reset"))
    asked.get_by_role("button", name=re.compile("^Approve the factory reset")).click()
    expect(page.get_by_text("Approved 1 command(s)")).to_be_visible()
    context.close()
