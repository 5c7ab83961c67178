"""Temporary filter exceptions (P-PROFILE-3)."""

from __future__ import annotations

import pytest

from device_profiles import (
    ProfileValidationError,
    builtin_profiles,
    compile_profile,
    with_filter_exceptions,
)
from tests.device_profiles.support import profile_from


def test_exception_is_added_to_an_allow_list() -> None:
    base = builtin_profiles()["ks1-ipad"]
    opened = with_filter_exceptions(base, ["https://www.oxfordowl.co.uk"])
    assert opened.web_filter.allowed_urls[-1] == "https://www.oxfordowl.co.uk"
    assert opened.web_filter.allowed[-1].title == "oxfordowl.co.uk"
    assert base.web_filter.allowed_urls[-1] != "https://www.oxfordowl.co.uk"  # unchanged
    assert b"oxfordowl" in compile_profile(opened, "apple").content


def test_exception_unblocks_a_blocked_address() -> None:
    base = builtin_profiles()["ks2-ipad"]
    opened = with_filter_exceptions(base, ["https://discord.com"])
    assert "https://discord.com" not in opened.web_filter.blocked_urls
    assert "https://discord.com" in opened.web_filter.allowed_urls


def test_repeats_and_existing_entries_are_not_duplicated() -> None:
    base = builtin_profiles()["ks1-ipad"]
    existing = base.web_filter.allowed_urls[0]
    opened = with_filter_exceptions(
        base, [existing, "https://a.example.org", "https://a.example.org"]
    )
    assert len(opened.web_filter.allowed) == len(base.web_filter.allowed) + 1


def test_no_filter_means_nothing_to_unblock() -> None:
    profile = profile_from("")
    assert with_filter_exceptions(profile, ["https://a.example.org"]) is profile


def test_bad_exception_addresses_are_reported() -> None:
    with pytest.raises(ProfileValidationError) as info:
        with_filter_exceptions(builtin_profiles()["ks1-ipad"], ["https://ok.example.org", "nope"])
    (error,) = info.value.errors
    assert error.key_path == "filter_exceptions[1]"
