"""Profile diffs for the version history."""

from __future__ import annotations

from device_profiles import Change, builtin_profiles, diff_profiles
from tests.device_profiles.support import profile_from


def test_identical_profiles_have_no_changes() -> None:
    profile = builtin_profiles()["ks2-ipad"]
    assert diff_profiles(profile, profile) == []


def test_scalar_changes_in_key_order() -> None:
    old = profile_from("device:\n  camera: allowed\n  auto_lock_minutes: 10\n")
    new = profile_from("device:\n  camera: blocked\n  auto_lock_minutes: 5\n  airdrop: blocked\n")
    assert diff_profiles(old, new) == [
        Change("device.camera", "allowed", "blocked"),
        Change("device.airdrop", None, "blocked"),
        Change("device.auto_lock_minutes", 10, 5),
    ]
    assert Change("device.airdrop", None, "blocked").describe() == (
        "device.airdrop: not set → blocked"
    )


def test_list_changes_report_additions_and_removals() -> None:
    old = profile_from(
        "web_filter:\n  mode: block_list\n"
        "  blocked_urls: [https://www.tiktok.com, https://www.instagram.com]\n"
    )
    new = profile_from(
        "web_filter:\n  mode: block_list\n"
        "  blocked_urls: [https://www.tiktok.com, https://discord.com]\n"
    )
    (change,) = diff_profiles(old, new)
    assert change.path == "web_filter.blocked_urls"
    assert change.added == ("https://discord.com",)
    assert change.removed == ("https://www.instagram.com",)
    assert change.describe() == (
        "web_filter.blocked_urls: added https://discord.com; removed https://www.instagram.com"
    )


def test_sections_appearing_and_nested_values() -> None:
    old = profile_from("")
    new = profile_from(
        "kiosk:\n  url: https://exam.example.org\nbrowser:\n  extensions:\n    mode: block_all\n"
    )
    assert diff_profiles(old, new) == [
        Change("kiosk.url", None, "https://exam.example.org"),
        Change("browser.extensions.mode", None, "block_all"),
    ]


def test_name_and_description_are_tracked() -> None:
    old = profile_from("description: first\n")
    new = profile_from("description: second\n")
    assert diff_profiles(old, new) == [Change("description", "first", "second")]
