"""The language described for the settings editor, and the editor's fields turned back into text."""

from __future__ import annotations

import re

import pytest

from device_profiles import (
    PROFILE_KEYS,
    builtin_profile_texts,
    builtin_profiles,
    compile_profile,
    load_profile,
)
from device_profiles.capabilities import TARGET_PLATFORMS
from device_profiles.descriptions import (
    GROUPS,
    LABELS,
    SETTINGS,
    Control,
    describe_change,
    in_words,
    setting_for,
)
from device_profiles.diff import diff_profiles
from device_profiles.form import OTHER_APPS, app_choices, form_values, text_from_form

REQUIREMENT_ID = re.compile(r"\bP-[A-Z]+-\d+\b")
# Keys the editor shows on its own (the profile's name) or never changes (format, id).
OWN_KEYS = {"format", "id", "name", "description"}


def _leaf_keys() -> set[str]:
    """Every key path of the language that holds a value, not a section."""
    sections = {s for s in PROFILE_KEYS if s}
    leaves = set()
    for section, keys in PROFILE_KEYS.items():
        if "[" in section:
            continue  # the parts of one allowed site are edited as one line of its list
        for key in keys:
            path = f"{section}.{key}" if section else key
            if path not in sections and path not in OWN_KEYS:
                leaves.add(path)
    return leaves


def test_every_setting_of_the_language_is_described_once() -> None:
    """A new key in the language fails here until it has words, a group and a control."""
    paths = [s.path for s in SETTINGS]
    assert len(paths) == len(set(paths))
    assert set(paths) == _leaf_keys()
    assert {s.group for s in SETTINGS} == {key for key, _title in GROUPS}
    for setting in SETTINGS:
        assert setting.label and setting.help.endswith("."), setting.path
        if setting.control in (Control.SWITCH, Control.CHOICE):
            assert setting.options, setting.path
        if setting.control in (Control.NUMBER, Control.MINUTES):
            assert setting.low is not None and setting.high is not None, setting.path


def test_every_setting_a_device_reports_on_has_a_label() -> None:
    for profile in builtin_profiles().values():
        for path in profile.specified_settings():
            assert path in LABELS


def test_no_requirement_id_reaches_the_words_staff_read() -> None:
    """Labels, help, choices, platform notes and the library's texts as shown carry no ids."""
    from server.profiles.services import staff_text

    for setting in SETTINGS:
        words = [setting.label, setting.help, *(w for _v, w in setting.options)]
        words += [note.text for note in setting.notes()]
        for text in words:
            assert not REQUIREMENT_ID.search(text), (setting.path, text)
    for text in builtin_profile_texts().values():
        assert not REQUIREMENT_ID.search(text)
    shown = staff_text("device:\n  auto_lock_minutes: 10  # P-PROFILE-2\n  x: 1 # P-PHOTO-1: why\n")
    assert shown == "device:\n  auto_lock_minutes: 10\n  x: 1  # why\n"


def test_platform_notes_come_from_the_capability_table_in_words() -> None:
    safe_search = setting_for("web_filter.safe_search")
    assert safe_search is not None
    notes = {note.platform: note for note in safe_search.notes()}
    assert notes["apple"].support == "no" and "DNS" in notes["apple"].text
    assert notes["chrome"].support == "yes"
    extensions = setting_for("browser.extensions.mode")
    assert extensions is not None and extensions.reported_as == "browser.extensions"
    assert {n.platform for n in extensions.notes() if n.support == "yes"} == {"chrome", "linux"}
    assert (
        in_words("set passcode.required: true to enforce it") == "turn “Passcode” on to enforce it"
    )
    assert in_words(
        "add 'required: true' for the passcode rules (min_length, history) to apply"
    ) == ("turn “Passcode” on for the passcode rules (“Passcode length”, history) to apply")
    assert setting_for("web_filter.allowed_urls[3].url") is setting_for("web_filter.allowed_urls")
    assert setting_for("kiosk") is setting_for("kiosk.app")  # "one app or one address"
    assert setting_for("name") is None
    assert setting_for("kiosk") is setting_for("kiosk.app")  # "one app or one address"
    assert setting_for("name") is None


@pytest.mark.parametrize("slug", sorted(builtin_profile_texts()))
def test_a_library_profile_survives_the_form(slug: str) -> None:
    """Filled into the fields and posted back, every library profile loads equal and every
    platform's output is byte for byte the same."""
    profile = builtin_profiles()[slug]
    again = load_profile(text_from_form(form_values(profile), slug=slug))
    assert again == profile
    for target in TARGET_PLATFORMS:
        options = {"org_unit_id": "ou"} if target == "chromeos" else {}
        before = compile_profile(profile, target, **options)
        after = compile_profile(again, target, **options)
        assert (after.content, after.warnings) == (before.content, before.warnings)


def test_apps_are_ticked_in_their_order_and_others_typed() -> None:
    choices = app_choices(["com.apple.Pages", "org.example.reader"])
    assert choices[:2] == [
        ("com.apple.Pages", "Pages", True),
        ("org.example.reader", "org.example.reader", True),
    ]
    assert ("com.apple.Keynote", "Keynote", False) in choices
    fields = {
        "name": ["Reading"],
        "apps.allow_list": ["com.apple.Pages"],
        OTHER_APPS: ["org.example.reader\r\n\r\n"],
        "web_filter.mode": ["allow_list_only"],
        "web_filter.allowed_urls": ["https://www.bbc.co.uk/bitesize Bitesize\r\nhttps://x.org"],
    }
    profile = load_profile(text_from_form(fields, slug="reading"))
    assert profile.apps.allow_list == ("com.apple.Pages", "org.example.reader")
    assert [(s.url, s.title) for s in profile.web_filter.allowed] == [
        ("https://www.bbc.co.uk/bitesize", "Bitesize"),
        ("https://x.org", "x.org"),
    ]


def test_changes_are_described_in_words() -> None:
    ks1, ks2 = builtin_profiles()["ks1-ipad"], builtin_profiles()["ks2-ipad"]
    lines = [describe_change(c) for c in diff_profiles(ks1, ks2)]
    assert "Screenshots: Blocked → Allowed" in lines
    assert any(line.startswith("Only approved apps: added Settings, Safari") for line in lines)
    assert not any("." in line.split(":")[0] for line in lines)  # no key paths
