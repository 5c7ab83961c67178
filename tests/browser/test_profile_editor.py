"""The computing lead builds the KS2 iPad profile with switches and lists in a real browser."""

from __future__ import annotations

import dataclasses

import pytest

from device_profiles import builtin_profiles, load_profile
from device_profiles.descriptions import app_name
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser

LEAD = "computing@oakfield.example"
NAME = "Year 5 iPads"


def test_the_ks2_ipad_profile_built_with_switches_alone(browser: object, live_server: str) -> None:
    """P-PROFILE-1, P-PROFILE-2: school apps only, Bluetooth changes blocked and a 10-minute
    auto-lock, chosen with switches; the preview and the changes show before saving, and the
    saved profile is the library's KS2 iPad."""
    from playwright.sync_api import expect

    ks2 = builtin_profiles()["ks2-ipad"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    try:
        log_in(page, live_server, LEAD)
        page.goto(f"{live_server}/profiles")
        page.get_by_label("Name", exact=True).fill(NAME)
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(NAME)

        def choose(setting: str, words: str) -> None:
            page.get_by_role("group", name=setting, exact=True).get_by_label(
                words, exact=True
            ).check()

        page.get_by_label("Description").fill(ks2.description)
        for setting, words in (
            ("Camera", "Allowed"),
            ("Screenshots", "Allowed"),
            ("AirDrop", "Blocked"),
            ("Bluetooth", "Blocked"),
            ("Photos wiped on return", "On"),
            ("Installing apps", "Blocked"),
            ("Removing apps", "Blocked"),
            ("Explicit music and video", "Blocked"),
            ("Safari", "Allowed"),
            ("Web filter", "Block adult content"),
            ("Simple passcodes", "Allowed"),
        ):
            choose(setting, words)
        apps = page.get_by_role("group", name="Only approved apps", exact=True)
        for bundle in ks2.apps.allow_list or ():
            apps.get_by_label(app_name(bundle), exact=True).check()
        page.get_by_label("Websites always allowed").fill("https://www.bbc.co.uk")
        page.get_by_label("Websites blocked").fill("\n".join(ks2.web_filter.blocked_urls))
        page.get_by_role("switch", name="Passcode").check()
        page.get_by_label("Passcode length").fill("4")
        expect(page.get_by_label("Locks itself when idle")).to_have_value("10")

        page.get_by_role("button", name="Preview changes").click()
        changes = page.get_by_role("region", name="Changes from version 1")
        expect(changes).to_contain_text("Camera: Not managed → Allowed")
        expect(changes).to_contain_text("Only approved apps: added Settings, Safari")
        ipad = changes.locator('details[data-target="apple"]')
        ipad.locator("summary").first.click()
        expect(ipad).to_contain_text("It cannot do:")
        expect(ipad).to_contain_text("Photos wiped on return")

        page.get_by_label("What changed and why").fill("KS2 settings")
        page.get_by_role("button", name="Save as a new version").click()
        expect(page.locator("body")).to_contain_text("Saved version 2")
        expect(page.locator("body")).not_to_contain_text("P-PROFILE")

        page.get_by_role("link", name="Advanced: YAML").click()
        saved = load_profile(page.get_by_label("Profile settings (YAML)").input_value())
        assert dataclasses.replace(saved, slug=ks2.slug, name=ks2.name) == ks2
    finally:
        context.close()
