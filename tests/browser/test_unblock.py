"""Asking to unblock a website in a real browser: a pasted link shows what it will unblock."""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser

TEACHER = "teacher@oakfield.example"


def test_a_pasted_video_link_shows_what_it_unblocks(browser: object, live_server: str) -> None:
    """P-PROFILE-3: the teacher sees the site or pages a request opens before sending it."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    page = context.new_page()
    try:
        log_in(page, live_server, TEACHER)
        page.goto(f"{live_server}/filter-exceptions/new")
        preview = page.get_by_role("region", name="What will be unblocked")
        expect(preview).to_contain_text("Paste the web address")
        page.get_by_label("Web addresses to unblock").fill(
            "https://www.youtube.com/watch?v=abc123\nwww.bbc.co.uk/bitesize\nnot a site"
        )
        expect(preview).to_contain_text("youtube.com/watch and every page under it")
        expect(preview).to_contain_text("not only ?v=abc123")
        expect(preview).to_contain_text("bbc.co.uk/bitesize and every page under it")
        expect(preview.locator(".field-error")).to_contain_text("not a site")
    finally:
        context.close()
