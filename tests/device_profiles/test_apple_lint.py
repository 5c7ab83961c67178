"""The §1.7 lint rules for .mobileconfig files."""

from __future__ import annotations

import copy
import plistlib
from typing import Any

import pytest

from device_profiles import builtin_profiles, compile_profile, lint_mobileconfig, payload_uuid


def payload(ptype: str, ident: str, **keys: Any) -> dict[str, Any]:
    return {
        "PayloadType": ptype,
        "PayloadVersion": 1,
        "PayloadIdentifier": ident,
        "PayloadUUID": payload_uuid(ident),
        **keys,
    }


def profile(*payloads: dict[str, Any], **top: Any) -> dict[str, Any]:
    base = payload("Configuration", "uk.sch.test", PayloadContent=list(payloads))
    base.update(top)
    return base


def messages(doc: dict[str, Any] | bytes, severity: str, **kw: Any) -> list[str]:
    return [
        f"{i.path}: {i.message}" for i in lint_mobileconfig(doc, **kw) if i.severity == severity
    ]


def web(**keys: Any) -> dict[str, Any]:
    return payload("com.apple.webcontent-filter", "uk.sch.test.web", FilterType="BuiltIn", **keys)


@pytest.mark.parametrize("slug", sorted(builtin_profiles()))
def test_compiled_profiles_are_lint_clean(slug: str) -> None:
    content = compile_profile(builtin_profiles()[slug], "apple").content
    assert messages(content, "error") == []
    assert messages(content, "warning", supervised=True) == []


def test_permitted_urls_require_auto_filter() -> None:
    doc = profile(web(PermittedURLs=["https://www.bbc.co.uk"]))
    assert messages(doc, "error", supervised=True) == [
        "PayloadContent[0].PermittedURLs: PermittedURLs requires AutoFilterEnabled = true"
    ]
    ok = profile(web(PermittedURLs=["https://www.bbc.co.uk"], AutoFilterEnabled=True))
    assert messages(ok, "error") == []


def test_deny_list_over_500_warns() -> None:
    doc = profile(web(DenyListURLs=[f"https://s{i}.example.org" for i in range(501)]))
    assert messages(doc, "warning", supervised=True) == [
        "PayloadContent[0].DenyListURLs: 501 entries; Apple asks to keep this list to about 500"
    ]
    assert messages(profile(web(DenyListURLs=["x"] * 500)), "warning", supervised=True) == []


def test_top_level_type_and_version() -> None:
    assert messages(profile(PayloadType="Profile"), "error") == [
        "PayloadType: 'Profile' is not one of Configuration"
    ]
    assert messages(profile(PayloadVersion="1"), "error") == [
        "PayloadVersion: must be of type int, not str"
    ]
    # A plist <true/> is not <integer>1</integer>, even though Python says True == 1.
    assert messages(profile(PayloadVersion=True), "error") == [
        "PayloadVersion: must be of type int, not bool"
    ]
    assert messages(profile(PayloadVersion=2), "error") == [
        "PayloadVersion: 2 is outside the allowed range 1-1"
    ]


def test_every_payload_needs_the_four_keys() -> None:
    broken = payload("com.apple.applicationaccess", "uk.sch.test.r", allowCamera=False)
    del broken["PayloadUUID"]
    del broken["PayloadVersion"]
    assert messages(profile(broken), "error") == [
        "PayloadContent[0].PayloadVersion: required payload key is missing",
        "PayloadContent[0].PayloadUUID: required payload key is missing",
    ]
    top = profile()
    del top["PayloadIdentifier"]
    assert "PayloadIdentifier: required top-level key is missing" in messages(top, "error")


def test_identifiers_and_uuids_must_be_unique() -> None:
    a = payload("com.apple.applicationaccess", "uk.sch.test.same")
    b = payload("com.apple.mobiledevice.passwordpolicy", "uk.sch.test.same")
    assert messages(profile(a, b), "error") == [
        "PayloadIdentifier: 'uk.sch.test.same' is used 2 times in one profile",
        f"PayloadUUID: '{payload_uuid('uk.sch.test.same')}' is used 2 times in one profile",
    ]
    c = payload("com.apple.applicationaccess", "uk.sch.test.c", PayloadUUID="not-a-uuid")
    assert messages(profile(c), "error") == [
        "PayloadContent[0].PayloadUUID: 'not-a-uuid' is not a UUID"
    ]


def test_unknown_keys_are_errors() -> None:
    doc = profile(payload("com.apple.applicationaccess", "uk.sch.test.r", allowFaceTime=False))
    assert messages(doc, "error") == [
        "PayloadContent[0].allowFaceTime: unknown key (the device would ignore it silently)"
    ]
    assert messages(profile(Colour="blue"), "error") == [
        "Colour: unknown key (the device would ignore it silently)"
    ]


def test_types_and_ranges() -> None:
    doc = profile(
        payload(
            "com.apple.mobiledevice.passwordpolicy",
            "uk.sch.test.p",
            maxInactivity=16,
            minLength=17,
            maxFailedAttempts=1,
            allowSimple="no",
        ),
        payload("com.apple.applicationaccess", "uk.sch.test.r", allowListedAppBundleIDs=[1]),
    )
    assert messages(doc, "error") == [
        "PayloadContent[0].maxInactivity: 16 is outside the allowed range 0-15",
        "PayloadContent[0].minLength: 17 is outside the allowed range 0-16",
        "PayloadContent[0].maxFailedAttempts: 1 is outside the allowed range 2-11",
        "PayloadContent[0].allowSimple: must be of type bool, not str",
        "PayloadContent[1].allowListedAppBundleIDs[0]: must be of type str, not int",
    ]


def test_deprecated_keys_warn() -> None:
    doc = profile(
        web(
            BlacklistedURLs=["https://x.example"], WhitelistedBookmarks=[{"URL": "u", "Title": "t"}]
        ),
        payload("com.apple.applicationaccess", "uk.sch.test.r", whitelistedAppBundleIDs=["a.b"]),
    )
    assert messages(doc, "warning", supervised=True) == [
        "PayloadContent[0].BlacklistedURLs: deprecated; use DenyListURLs",
        "PayloadContent[0].WhitelistedBookmarks: deprecated; use AllowListBookmarks",
        "PayloadContent[1].whitelistedAppBundleIDs: deprecated; use allowListedAppBundleIDs",
    ]


def test_bookmarks_need_url_and_title() -> None:
    doc = profile(web(AllowListBookmarks=[{"URL": "https://x.example"}, "https://y.example"]))
    assert messages(doc, "error") == [
        "PayloadContent[0].AllowListBookmarks[0].Title: required text is missing",
        "PayloadContent[0].AllowListBookmarks[1]: must be a dict with URL and Title",
    ]


def test_supervised_only_keys_warn_for_unsupervised_devices() -> None:
    doc = profile(
        payload(
            "com.apple.applicationaccess",
            "uk.sch.test.r",
            allowAirDrop=False,
            allowScreenShot=False,
            allowSafari=True,  # the default: nothing to enforce, nothing to warn about
        )
    )
    assert messages(doc, "warning") == [
        "PayloadContent[0].allowAirDrop: only takes effect on a supervised device"
    ]
    assert messages(doc, "warning", supervised=True) == []


def test_app_lock_rules() -> None:
    lock = payload("com.apple.app.lock", "uk.sch.test.lock", App={"Identifier": "com.x.y"})
    second = payload("com.apple.app.lock", "uk.sch.test.lock2", App={"Options": {"Zoom": True}})
    assert messages(profile(lock, second), "error", supervised=True) == [
        "PayloadContent[1].App.Identifier: the app's bundle id is required",
        "PayloadContent[1].App.Options.Zoom: unknown key (the device would ignore it silently)",
        "PayloadContent: only one com.apple.app.lock payload is allowed per device",
    ]
    missing = payload("com.apple.app.lock", "uk.sch.test.lock")
    assert messages(profile(missing), "error") == ["PayloadContent[0].App: required key is missing"]


def test_unknown_payload_types_are_reported_as_unchecked() -> None:
    doc = profile(payload("com.apple.wifi.managed", "uk.sch.test.wifi", SSID_STR="School"))
    assert messages(doc, "error") == []
    assert messages(doc, "warning") == [
        "PayloadContent[0]: payload type 'com.apple.wifi.managed' is not covered by this lint; "
        "keys unchecked"
    ]


def test_bytes_input() -> None:
    doc = profile(web(PermittedURLs=["https://x.example"]))
    assert messages(plistlib.dumps(doc), "error", supervised=True) == messages(
        copy.deepcopy(doc), "error", supervised=True
    )
    assert messages(b"not a plist", "error")[0].startswith(": not a property list")
