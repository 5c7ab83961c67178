"""The writers: registry, options, determinism, stable UUIDs, warnings for what they cannot say."""

from __future__ import annotations

import json
import plistlib
import uuid
from typing import Any

import pytest

from device_profiles import (
    TARGETS,
    CompileOptionError,
    CompileResult,
    LintError,
    UnknownTargetError,
    builtin_profile_texts,
    builtin_profiles,
    compile_file,
    compile_profile,
    kiosk_document_sha256,
    lint_mobileconfig,
    load_profile,
    payload_uuid,
)
from device_profiles.compilers import apple as apple_writer
from device_profiles.compilers.apple import build_mobileconfig
from device_profiles.model import Profile
from tests.device_profiles.support import KITCHEN_SINK, profile_from

ORG_UNIT = {"org_unit_id": "03ph8a2z1example"}


def compile_any(profile: Profile, target: str, **options: Any) -> CompileResult:
    extra = ORG_UNIT if target == "chromeos" and "org_unit_id" not in options else {}
    return compile_profile(profile, target, **extra, **options)


def warned(result: CompileResult) -> set[str]:
    return {w.setting for w in result.warnings if w.kind == "unsupported"}


def apple_dict(profile: Profile, **options: Any) -> dict[str, Any]:
    loaded = plistlib.loads(compile_profile(profile, "apple", **options).content)
    assert isinstance(loaded, dict)
    return loaded


def test_registry_has_the_four_targets() -> None:
    assert sorted(TARGETS) == ["apple", "chrome", "chromeos", "kiosk"]
    assert TARGETS["apple"].media_type == "application/x-apple-aspen-config"


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("slug", sorted(builtin_profiles()))
def test_compiling_twice_gives_identical_bytes(slug: str, target: str) -> None:
    profile = builtin_profiles()[slug]
    first = compile_any(profile, target)
    # A freshly loaded copy too: nothing may depend on object identity or load order.
    second = compile_any(load_profile(builtin_profile_texts()[slug]), target)
    assert first.content == second.content
    assert first.warnings == second.warnings


def test_uuids_are_stable_across_runs() -> None:
    # A literal, not a recomputation: if this changes, every school's re-exported profile
    # would install next to the old one instead of replacing it.
    assert payload_uuid("org.trolley.ks1-ipad") == "F1376DC1-54E6-5DF5-929C-C0F06C888AD1"
    top = apple_dict(builtin_profiles()["ks1-ipad"])
    assert top["PayloadIdentifier"] == "org.trolley.ks1-ipad"
    assert top["PayloadUUID"] == "F1376DC1-54E6-5DF5-929C-C0F06C888AD1"


def test_uuid_namespace_is_the_documented_one() -> None:
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, "urn:trolley:device-profiles")
    expected = str(uuid.uuid5(namespace, "uk.sch.oakfield.ks1-ipad")).upper()
    assert payload_uuid("uk.sch.oakfield.ks1-ipad") == expected


def test_uuids_are_unique_within_a_profile() -> None:
    top = apple_dict(load_profile(KITCHEN_SINK))
    payloads = top["PayloadContent"]
    assert len(payloads) == 4
    uuids = [top["PayloadUUID"], *(p["PayloadUUID"] for p in payloads)]
    identifiers = [top["PayloadIdentifier"], *(p["PayloadIdentifier"] for p in payloads)]
    assert len(set(uuids)) == len(uuids) == 5
    assert len(set(identifiers)) == 5
    assert all(u == u.upper() for u in uuids)
    assert all(i.startswith("org.trolley.kitchen-sink") for i in identifiers)


def test_re_export_after_an_edit_keeps_identifiers_and_uuids() -> None:
    before = apple_dict(profile_from("device:\n  camera: allowed\n"))
    after = apple_dict(profile_from("device:\n  camera: blocked\n"))
    assert before["PayloadUUID"] == after["PayloadUUID"]
    assert [p["PayloadUUID"] for p in before["PayloadContent"]] == [
        p["PayloadUUID"] for p in after["PayloadContent"]
    ]
    assert before != after


def test_identifier_prefix_and_organisation() -> None:
    top = apple_dict(
        profile_from(""), identifier_prefix="uk.sch.oakfield", organisation="Oakfield Primary"
    )
    assert top["PayloadIdentifier"] == "uk.sch.oakfield.test-profile"
    assert top["PayloadOrganization"] == "Oakfield Primary"
    assert top["PayloadUUID"] == payload_uuid("uk.sch.oakfield.test-profile")


# -- options and registry errors ---------------------------------------------------------------


def test_unknown_target() -> None:
    with pytest.raises(UnknownTargetError) as info:
        compile_profile(profile_from(""), "android")
    assert info.value.allowed == ("apple", "chrome", "chromeos", "kiosk")


def test_unknown_option_lists_the_allowed_ones() -> None:
    with pytest.raises(CompileOptionError) as info:
        compile_profile(profile_from(""), "apple", prefix="uk.sch.x")
    assert info.value.key_path == "prefix"
    assert "identifier_prefix" in info.value.allowed


def test_option_types_are_checked() -> None:
    with pytest.raises(CompileOptionError, match="must be bool"):
        compile_profile(profile_from(""), "apple", supervised="yes")
    with pytest.raises(CompileOptionError, match="must be int"):
        compile_profile(profile_from(""), "kiosk", version=True)


def test_chromeos_needs_an_org_unit() -> None:
    with pytest.raises(CompileOptionError) as info:
        compile_profile(profile_from(""), "chromeos")
    assert info.value.key_path == "org_unit_id"
    with pytest.raises(CompileOptionError, match="not a path"):
        compile_profile(profile_from(""), "chromeos", org_unit_id="/Students")


@pytest.mark.parametrize("given", ["03ph8a2z1abc", "id:03ph8a2z1abc", "orgunits/03ph8a2z1abc"])
def test_chromeos_org_unit_forms(given: str) -> None:
    body = json.loads(
        compile_profile(
            profile_from("browser:\n  incognito: blocked\n"), "chromeos", org_unit_id=given
        ).content
    )
    assert body["requests"][0]["policyTargetKey"] == {"targetResource": "orgunits/03ph8a2z1abc"}


def test_bad_identifier_prefix() -> None:
    with pytest.raises(CompileOptionError, match="reverse DNS"):
        compile_profile(profile_from(""), "apple", identifier_prefix="Oakfield School")


def test_kiosk_version_must_be_positive() -> None:
    with pytest.raises(CompileOptionError):
        compile_profile(profile_from(""), "kiosk", version=0)


def test_compile_file_reads_then_compiles(tmp_path: Any) -> None:
    path = tmp_path / "ks1.yaml"
    path.write_text(builtin_profile_texts()["ks1-ipad"], "utf-8")
    assert (
        compile_file(path, "chrome").content
        == compile_any(builtin_profiles()["ks1-ipad"], "chrome").content
    )


# -- nothing is dropped silently ----------------------------------------------------------------

EXPECTED_WARNINGS = {
    "apple": {
        "device.wipe_photos_on_return",
        "web_filter.safe_search",
        "web_filter.youtube_restricted_mode",
        "browser.incognito",
        "browser.developer_tools",
        "browser.camera",
        "browser.microphone",
        "browser.extensions",
    },
    "chrome": {
        "device.camera",
        "device.screenshots",
        "device.airdrop",
        "device.bluetooth_changes",
        "device.auto_lock_minutes",
        "device.wipe_photos_on_return",
        "apps.installation",
        "apps.removal",
        "apps.allow_list",
        "apps.explicit_content",
        "apps.safari",
        "passcode.required",
        "passcode.min_length",
        "passcode.simple_allowed",
        "passcode.alphanumeric_required",
        "passcode.min_complex_chars",
        "passcode.max_failed_attempts",
        "passcode.max_age_days",
        "passcode.history",
        "kiosk.app",
    },
    "chromeos": {
        "device.airdrop",
        "device.bluetooth_changes",
        "device.auto_lock_minutes",
        "device.wipe_photos_on_return",
        "apps.installation",
        "apps.removal",
        "apps.allow_list",
        "apps.explicit_content",
        "apps.safari",
        "web_filter.youtube_restricted_mode",
        "passcode.required",
        "passcode.min_length",
        "passcode.simple_allowed",
        "passcode.alphanumeric_required",
        "passcode.min_complex_chars",
        "passcode.max_failed_attempts",
        "passcode.max_age_days",
        "passcode.history",
        "kiosk.app",
        "browser.camera",  # allowed, but ChromeOS's one camera switch is off for device.camera
        "browser.developer_tools",
        "browser.extensions",
    },
    "kiosk": {
        "device.airdrop",
        "apps.installation",
        "apps.removal",
        "apps.allow_list",
        "apps.explicit_content",
        "apps.safari",
        "passcode.required",
        "passcode.min_length",
        "passcode.simple_allowed",
        "passcode.alphanumeric_required",
        "passcode.min_complex_chars",
        "passcode.max_failed_attempts",
        "passcode.max_age_days",
        "passcode.history",
        "kiosk.app",
    },
}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_each_writer_warns_about_exactly_what_it_cannot_express(target: str) -> None:
    result = compile_any(
        load_profile(KITCHEN_SINK), target, **({"supervised": True} if target == "apple" else {})
    )
    assert warned(result) == EXPECTED_WARNINGS[target]
    assert all(w.message for w in result.warnings)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_warning_names_a_setting_the_profile_manages(target: str) -> None:
    profile = load_profile(KITCHEN_SINK)
    specified = set(profile.specified_settings())
    result = compile_any(profile, target)
    assert warned(result) <= specified


def test_apple_warns_about_auto_lock_without_a_passcode() -> None:
    result = compile_profile(profile_from(""), "apple")
    assert [str(w) for w in result.warnings if w.setting == "device.auto_lock_minutes"] == [
        "device.auto_lock_minutes: iPadOS only enforces auto-lock through the passcode policy "
        "(maxInactivity), which makes the iPad ask for a passcode; set passcode.required: true "
        "to enforce it"
    ]
    assert any("nothing in this profile applies to iPads" in str(w) for w in result.warnings)


def test_apple_kiosk_url_is_reported() -> None:
    result = compile_profile(profile_from("kiosk:\n  url: https://exam.example.org\n"), "apple")
    assert "kiosk.url" in warned(result)


def test_apple_block_list_exceptions_are_reported() -> None:
    profile = profile_from(
        "web_filter:\n  mode: block_list\n  blocked_urls: [https://www.youtube.com]\n"
        "  allowed_urls: [https://www.youtube.com/education]\n"
    )
    result = compile_profile(profile, "apple", supervised=True)
    assert warned(result) == {"web_filter.allowed_urls", "device.auto_lock_minutes"}
    (payload,) = [
        p
        for p in plistlib.loads(result.content)["PayloadContent"]
        if p["PayloadType"] == "com.apple.webcontent-filter"
    ]
    assert "PermittedURLs" not in payload
    assert payload["DenyListURLs"] == ["https://www.youtube.com"]


def test_apple_supervision_warning_lists_the_settings() -> None:
    result = compile_profile(builtin_profiles()["ks2-ipad"], "apple")
    (warning,) = [w for w in result.warnings if w.kind == "supervision"]
    for fragment in ("device.airdrop (allowAirDrop)", "apps.allow_list", "web_filter"):
        assert fragment in warning.message
    # Screenshots do not need supervision, and "allowed" never needs it.
    assert "allowScreenShot" not in warning.message and "allowCamera" not in warning.message
    supervised = compile_profile(builtin_profiles()["ks2-ipad"], "apple", supervised=True)
    assert not [w for w in supervised.warnings if w.kind == "supervision"]


def test_apple_restrictions_and_payloads() -> None:
    top = apple_dict(load_profile(KITCHEN_SINK), removal_disallowed=True)
    assert top["PayloadType"] == "Configuration" and top["PayloadVersion"] == 1
    assert top["PayloadRemovalDisallowed"] is True
    by_type = {p["PayloadType"]: p for p in top["PayloadContent"]}
    restrictions = by_type["com.apple.applicationaccess"]
    assert restrictions["allowCamera"] is False
    assert restrictions["allowScreenShot"] is False
    assert restrictions["allowSafari"] is True
    assert restrictions["allowListedAppBundleIDs"] == [
        "com.apple.mobilesafari",
        "com.example.reader",
    ]
    web = by_type["com.apple.webcontent-filter"]
    assert web["FilterType"] == "BuiltIn"
    assert web["AllowListBookmarks"][1] == {
        "URL": "https://Example.org:8443/maths/",
        "Title": "Maths",
    }
    assert web["DenyListURLs"] == ["https://www.bbc.co.uk/bitesize/games"]
    assert "AutoFilterEnabled" not in web and "PermittedURLs" not in web
    passcode = by_type["com.apple.mobiledevice.passwordpolicy"]
    assert passcode == passcode | {
        "forcePIN": True,
        "maxInactivity": 5,
        "minLength": 6,
        "allowSimple": False,
        "requireAlphanumeric": True,
        "minComplexChars": 1,
        "maxFailedAttempts": 10,
        "maxPINAgeInDays": 365,
        "pinHistory": 5,
    }
    assert by_type["com.apple.app.lock"]["App"] == {"Identifier": "com.example.reader"}


def test_apple_adult_filter_uses_permitted_urls_with_auto_filter() -> None:
    web = apple_dict(builtin_profiles()["ks2-ipad"])["PayloadContent"][1]
    assert web["AutoFilterEnabled"] is True
    assert web["PermittedURLs"] == ["https://www.bbc.co.uk"]


def test_apple_lint_errors_stop_the_export(monkeypatch: pytest.MonkeyPatch) -> None:
    top, _, _ = build_mobileconfig(profile_from("device:\n  camera: blocked\n"))
    top["PayloadContent"][0]["allowCamra"] = False
    assert any(i.severity == "error" for i in lint_mobileconfig(top))
    # Simulate a writer bug (a misspelt key): the lint refuses to hand the file out.
    monkeypatch.setitem(apple_writer.RESTRICTION_KEYS, "device.camera", "allowCamra")
    with pytest.raises(LintError) as info:
        compile_profile(profile_from("device:\n  camera: blocked\n"), "apple")
    assert "unknown key" in info.value.message


def test_apple_deny_list_over_500_is_a_lint_warning() -> None:
    urls = "".join(f"    - https://site{i}.example.org\n" for i in range(501))
    profile = profile_from("web_filter:\n  mode: block_list\n  blocked_urls:\n" + urls)
    result = compile_profile(profile, "apple", supervised=True)
    lint = [w for w in result.warnings if w.kind == "lint"]
    assert [w.setting for w in lint] == ["web_filter.blocked_urls"]
    assert "501 entries" in lint[0].message and "about 500" in lint[0].message
    exactly_500 = profile_from(
        "web_filter:\n  mode: block_list\n  blocked_urls:\n" + urls[: urls.rindex("    - ")]
    )
    assert not [w for w in compile_profile(exactly_500, "apple").warnings if w.kind == "lint"]


# -- chrome ---------------------------------------------------------------------------------------


def chrome_policy(profile: Profile) -> dict[str, Any]:
    loaded = json.loads(compile_profile(profile, "chrome").content)
    assert isinstance(loaded, dict)
    return loaded


def test_chrome_policies_for_every_setting() -> None:
    assert chrome_policy(load_profile(KITCHEN_SINK)) == {
        "URLBlocklist": ["*", "bbc.co.uk/bitesize/games", "view-source:*"],
        "URLAllowlist": ["bbc.co.uk/bitesize", "example.org:8443/maths/"],
        "ForceGoogleSafeSearch": True,
        "ForceYouTubeRestrict": 2,
        "IncognitoModeAvailability": 1,
        "DeveloperToolsAvailability": 2,
        "VideoCaptureAllowed": True,
        "AudioCaptureAllowed": False,
        "ExtensionInstallBlocklist": ["*"],
        "ExtensionInstallAllowlist": ["aapbdbdomjkkjkaonfhkkikfgjllcleb"],
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("web_filter:\n  youtube_restricted_mode: moderate\n", {"ForceYouTubeRestrict": 1}),
        ("web_filter:\n  youtube_restricted_mode: off\n", {"ForceYouTubeRestrict": 0}),
        ("web_filter:\n  safe_search: off\n", {"ForceGoogleSafeSearch": False}),
        ("browser:\n  incognito: allowed\n", {"IncognitoModeAvailability": 0}),
        ("browser:\n  developer_tools: allowed\n", {"DeveloperToolsAvailability": 1}),
        ("browser:\n  extensions:\n    mode: block_all\n", {"ExtensionInstallBlocklist": ["*"]}),
        ("web_filter:\n  mode: adult_content_filter\n", {"SafeSitesFilterBehavior": 1}),
        (
            "web_filter:\n  mode: block_list\n  blocked_urls: [http://WWW.TikTok.com/]\n",
            {"URLBlocklist": ["tiktok.com"]},
        ),
    ],
)
def test_chrome_values(body: str, expected: dict[str, Any]) -> None:
    assert chrome_policy(profile_from(body)) == expected


def test_chrome_json_has_sorted_keys() -> None:
    text = compile_profile(load_profile(KITCHEN_SINK), "chrome").content.decode()
    keys = [line.split('"')[1] for line in text.splitlines() if line.startswith('  "')]
    assert keys == sorted(keys)


# -- chromeos -------------------------------------------------------------------------------------


def test_chromeos_body_shape() -> None:
    body = json.loads(compile_any(load_profile(KITCHEN_SINK), "chromeos").content)
    schemas = [r["policyValue"]["policySchema"] for r in body["requests"]]
    assert schemas == sorted(schemas)
    assert all(s.startswith("chrome.users.") and s.count(".") == 2 for s in schemas)
    for request in body["requests"]:
        value = request["policyValue"]["value"]
        assert request["updateMask"] == ",".join(sorted(value))
    values = {r["policyValue"]["policySchema"]: r["policyValue"]["value"] for r in body["requests"]}
    assert values["chrome.users.UrlBlocking"] == {
        "urlBlocklist": ["*", "bbc.co.uk/bitesize/games", "view-source:*"],
        "urlAllowlist": ["bbc.co.uk/bitesize", "example.org:8443/maths/"],
    }
    assert values["chrome.users.SafeSearchRestrictedMode"] == {"forceGoogleSafeSearch": True}
    assert values["chrome.users.IncognitoMode"] == {
        "incognitoModeAvailability": "INCOGNITO_MODE_AVAILABILITY_ENUM_UNAVAILABLE"
    }
    assert values["chrome.users.Screenshot"] == {"disableScreenshots": True}
    assert values["chrome.users.AudioInput"] == {"audioCaptureAllowed": False}


def test_chromeos_one_camera_switch_is_reported() -> None:
    result = compile_any(load_profile(KITCHEN_SINK), "chromeos")
    body = json.loads(result.content)
    values = {r["policyValue"]["policySchema"]: r["policyValue"]["value"] for r in body["requests"]}
    assert values["chrome.users.VideoInput"] == {"videoCaptureAllowed": False}
    (camera,) = [w for w in result.warnings if w.setting == "browser.camera"]
    assert "one camera switch" in camera.message


def test_chromeos_adult_filter_is_reported_but_lists_exported() -> None:
    profile = profile_from(
        "web_filter:\n  mode: adult_content_filter\n  blocked_urls: [https://www.tiktok.com]\n"
    )
    result = compile_any(profile, "chromeos")
    assert warned(result) == {"web_filter.mode", "device.auto_lock_minutes"}
    assert b'"tiktok.com"' in result.content


# -- kiosk ----------------------------------------------------------------------------------------


def test_kiosk_document() -> None:
    profile = load_profile(KITCHEN_SINK)
    result = compile_profile(profile, "kiosk", version=7)
    document = json.loads(result.content)
    assert document["format"] == "trolley-kiosk/1"
    assert (document["profile_id"], document["profile_name"], document["version"]) == (
        "kitchen-sink",
        "Every setting",
        7,
    )
    assert document["auto_lock_minutes"] == 5
    assert document["device"] == {
        "camera": "blocked",
        "screenshots": "blocked",
        "bluetooth_changes": "blocked",
        "wipe_photos_on_return": True,
    }
    assert document["kiosk"] is None  # an iPad app is not a kiosk for Linux; warned instead
    assert document["linux"]["chrome_policy"] == chrome_policy(profile)
    assert document["sha256"] == kiosk_document_sha256(document)
    assert result.filename == "kitchen-sink.kiosk.json"


def test_kiosk_hash_detects_any_change() -> None:
    document = json.loads(compile_profile(builtin_profiles()["exam-kiosk"], "kiosk").content)
    tampered = dict(document, auto_lock_minutes=0)
    assert kiosk_document_sha256(tampered) != document["sha256"]
    other_version = json.loads(
        compile_profile(builtin_profiles()["exam-kiosk"], "kiosk", version=2).content
    )
    assert other_version["sha256"] != document["sha256"]


def test_kiosk_url_is_carried() -> None:
    document = json.loads(compile_profile(builtin_profiles()["exam-kiosk"], "kiosk").content)
    assert document["kiosk"] == {"url": "https://assessment.example.org/"}


def test_the_chrome_warning_does_not_claim_the_kiosk_enforces_auto_lock_unconditionally() -> None:
    """P-PROFILE-2: a kiosk locks only where it can read the idle time, and reports whether."""
    result = compile_profile(builtin_profiles()["ks2-ipad"], "chrome")
    (warning,) = [w for w in result.warnings if w.setting == "device.auto_lock_minutes"]
    assert "enforces it" not in warning.message
    assert "reports whether" in warning.message


def test_apple_web_filter_has_a_stable_content_filter_uuid() -> None:
    """P-PROFILE-1: iOS 16+ installs the web filter on an unsupervised iPad only with a
    ContentFilterUUID; it is stable per profile, so a re-sent profile updates in place."""

    def filter_uuid(slug: str) -> str:
        result = compile_profile(builtin_profiles()[slug], "apple")
        (payload,) = [
            p
            for p in plistlib.loads(result.content)["PayloadContent"]
            if p["PayloadType"] == "com.apple.webcontent-filter"
        ]
        assert not [i for i in lint_mobileconfig(result.content) if i.severity == "error"]
        return str(payload["ContentFilterUUID"])

    first = filter_uuid("ks2-ipad")
    assert str(uuid.UUID(first)).upper() == first
    assert filter_uuid("ks2-ipad") == first
    assert filter_uuid("ks1-ipad") != first
