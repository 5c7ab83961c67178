"""Log-in in a real browser: wrong password, a teacher, and the headteacher's second factor."""

from __future__ import annotations

import re
import time

import pyotp
import pytest

from server.schools.demo import DEMO_PASSWORD
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser


def _log_in(page: object, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login")  # type: ignore[attr-defined]
    page.get_by_label("E-mail").fill(email)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(password)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Log in").click()  # type: ignore[attr-defined]


def test_wrong_password_then_teacher_home(page: object, live_server: str) -> None:
    """P-SEC-1: individual log-ins; a wrong password gets a plain message."""
    from playwright.sync_api import expect

    _log_in(page, live_server, "teacher@oakfield.example", "not-my-password")
    expect(page.get_by_role("alert")).to_contain_text("do not match")  # type: ignore[arg-type]
    _log_in(page, live_server, "teacher@oakfield.example", DEMO_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Amira")  # type: ignore[arg-type]
    expect(page.locator(".lead")).to_contain_text("Teacher")  # type: ignore[arg-type]
    expect(page.get_by_text("Year 4 trolley")).to_be_visible()  # type: ignore[arg-type]
    page.get_by_role("button", name="Sign out").click()  # type: ignore[attr-defined]
    expect(page.get_by_text("You have signed out.")).to_be_visible()  # type: ignore[arg-type]


def test_headteacher_sets_up_and_uses_a_second_factor(browser: object, live_server: str) -> None:
    """P-SEC-1: the headteacher scans a QR code, proves the code works, and needs it next time."""
    from playwright.sync_api import expect

    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    _log_in(page, live_server, "head@oakfield.example", DEMO_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up two-step verification")
    expect(page.get_by_alt_text(re.compile("QR code"))).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("6-digit code").fill("000000")
    page.get_by_role("button", name="Turn on and continue").click()
    expect(page.get_by_role("alert")).to_contain_text("did not match")
    page.get_by_label("6-digit code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on and continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Dr Ward")
    context.close()

    again = browser.new_context()  # type: ignore[attr-defined]
    page = again.new_page()
    _log_in(page, live_server, "head@oakfield.example", DEMO_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your 6-digit code")
    # The code just used is never accepted twice; the next 30-second step's code is new.
    page.get_by_label("6-digit code").fill(pyotp.TOTP(secret).at(time.time() + 30))
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".lead")).to_contain_text("Headteacher")
    again.close()


def test_every_demo_role_sees_its_home_page(browser: object, live_server: str) -> None:
    """`make demo`: every role logs in and sees its home page (privileged roles with a code)."""
    from playwright.sync_api import expect

    for email, role_label in [
        ("computing@oakfield.example", "Computing lead"),
        ("sbm@oakfield.example", "School business manager"),
        ("governor@oakfield.example", "Governor"),
        ("tech@oakfield.example", "Technician"),
        ("admin@oakfield.example", "Administrator"),
    ]:
        context = browser.new_context()  # type: ignore[attr-defined]
        page = context.new_page()
        log_in(page, live_server, email)
        expect(page.locator(".lead")).to_contain_text(role_label)
        context.close()
