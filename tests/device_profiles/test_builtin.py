"""The built-in profile library."""

from __future__ import annotations

from device_profiles import (
    Access,
    ExtensionsMode,
    FilterMode,
    SafeSearch,
    YouTubeMode,
    builtin_profile_texts,
    builtin_profiles,
    load_profile,
)


def test_library_contents() -> None:
    assert sorted(builtin_profiles()) == [
        "exam-kiosk",
        "home-loan",
        "ks1-ipad",
        "ks2-chromebook",
        "ks2-ipad",
        "staff-ipad",
    ]
    for slug, profile in builtin_profiles().items():
        assert profile.slug == slug
        assert profile.description
        assert load_profile(builtin_profile_texts()[slug]) == profile


def test_every_pupil_profile_locks_within_ten_minutes() -> None:
    # P-PROFILE-2; the exam kiosk is the one deliberate exception (a timed test must not lock).
    for slug, profile in builtin_profiles().items():
        if slug != "exam-kiosk":
            assert profile.device.auto_lock_minutes <= 10, slug


def test_ks1_ipad() -> None:
    p = builtin_profiles()["ks1-ipad"]
    assert p.device.camera is Access.ALLOWED
    assert p.device.screenshots is Access.BLOCKED
    assert p.device.wipe_photos_on_return is True
    assert p.web_filter.mode is FilterMode.ALLOW_LIST_ONLY
    assert 1 <= len(p.web_filter.allowed) <= 10
    assert all(site.url.startswith("https://") for site in p.web_filter.allowed)
    assert p.device.auto_lock_minutes == 10
    assert p.passcode.required


def test_exam_kiosk_is_a_single_web_address() -> None:
    p = builtin_profiles()["exam-kiosk"]
    assert p.kiosk is not None and p.kiosk.url is not None and p.kiosk.app is None
    assert p.web_filter.allowed_urls == (p.kiosk.url,)
    assert p.browser.extensions is not None
    assert p.browser.extensions.mode is ExtensionsMode.BLOCK_ALL


def test_home_loan_is_filtered_at_home() -> None:
    p = builtin_profiles()["home-loan"]
    assert p.web_filter.mode is FilterMode.ADULT_CONTENT_FILTER
    assert p.web_filter.safe_search is SafeSearch.ENFORCED
    assert p.web_filter.youtube_restricted_mode is YouTubeMode.STRICT
    assert p.browser.incognito is Access.BLOCKED


def test_ks2_chromebook_closes_the_usual_gaps() -> None:
    p = builtin_profiles()["ks2-chromebook"]
    assert p.browser.incognito is Access.BLOCKED
    assert p.browser.developer_tools is Access.BLOCKED
    assert p.web_filter.safe_search is SafeSearch.ENFORCED


def test_results_are_fresh_dicts() -> None:
    first = builtin_profiles()
    first.clear()
    assert builtin_profiles()
