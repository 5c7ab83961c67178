"""The iPad enrolment profile: pure, deterministic, and every key as Apple's schema defines it."""

from __future__ import annotations

import plistlib

from device_profiles import lint_mobileconfig
from device_profiles.compilers.apple_lint import MDM, PKCS12
from device_profiles.compilers.apple_mdm import MdmEnrolment, build_enrolment_profile

ENROLMENT = MdmEnrolment(
    school_slug="oakfield",
    school_name="Oakfield Primary",
    server_url="https://trolley.example/mdm/connect",
    checkin_url="https://trolley.example/mdm/checkin",
    topic="com.apple.mgmt.External.0f1e2d3c-0000-4000-8000-000000000000",
    identity_p12=b"\x30\x82not-really-pkcs12",
    identity_password="secret",
)


def test_the_enrolment_profile_is_deterministic_and_follows_apples_schema() -> None:
    first = build_enrolment_profile(ENROLMENT)
    assert build_enrolment_profile(ENROLMENT) == first
    assert [i for i in lint_mobileconfig(first) if i.severity == "error"] == []
    top = plistlib.loads(first)
    mdm, identity = (
        next(p for p in top["PayloadContent"] if p["PayloadType"] == kind)
        for kind in ("com.apple.mdm", "com.apple.security.pkcs12")
    )
    assert set(mdm) - {
        "PayloadType",
        "PayloadVersion",
        "PayloadIdentifier",
        "PayloadUUID",
        "PayloadDisplayName",
    } <= set(MDM)
    assert set(identity) - {
        "PayloadType",
        "PayloadVersion",
        "PayloadIdentifier",
        "PayloadUUID",
        "PayloadDisplayName",
    } <= set(PKCS12)
    assert mdm["IdentityCertificateUUID"] == identity["PayloadUUID"]
    assert mdm["SignMessage"] is True and mdm["CheckInURL"].endswith("/mdm/checkin")
    assert 1 <= mdm["AccessRights"] <= 8191


def test_the_lint_refuses_an_mdm_payload_apple_would_refuse() -> None:
    top = plistlib.loads(build_enrolment_profile(ENROLMENT))
    mdm = next(p for p in top["PayloadContent"] if p["PayloadType"] == "com.apple.mdm")
    mdm["AccessRights"] = 9000  # past the last of Apple's bits
    del mdm["Topic"]
    mdm["SignMessages"] = True  # a typo iPadOS would ignore silently
    errors = {i.path.rsplit(".", 1)[-1] for i in lint_mobileconfig(top) if i.severity == "error"}
    assert {"AccessRights", "Topic", "SignMessages"} <= errors
