"""Profiles: creating, validating, saving versions and their diffs."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from device_profiles import builtin_profile_texts, kiosk_document_sha256, load_profile
from server.auth.models import User
from server.errors import Conflict, ValidationFailed
from server.profiles import services
from server.profiles.models import Profile, ProfileVersion


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_library_profile_is_copied_under_its_new_name(
    session: Session, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile("Year 5 iPads")
    version = services.latest_version(session, profile)
    assert (profile.slug, profile.name, version.number) == ("year-5-ipads", "Year 5 iPads", 1)
    loaded = load_profile(version.yaml_text)
    assert loaded.slug == "year-5-ipads" and loaded.name == "Year 5 iPads"
    # Everything but the identity is the library's KS2 iPad, comments included.
    assert "# the school standard: lock after 10 minutes idle" in version.yaml_text
    ks2 = load_profile(builtin_profile_texts()["ks2-ipad"])
    assert loaded.apps == ks2.apps and loaded.web_filter == ks2.web_filter


def test_the_built_in_auto_lock_default_reaches_the_kiosk_document(
    session: Session, make_profile: Callable[..., Profile]
) -> None:
    """P-PROFILE-2: devices lock after 10 minutes idle, in the document a device enforces."""
    profile = make_profile("KS2 iPads")
    result = services.preview(session, services.latest_version(session, profile), "kiosk")
    document = json.loads(result.content)
    assert document["auto_lock_minutes"] == 10
    assert document["version"] == 1 and document["sha256"] == kiosk_document_sha256(document)
    blank = make_profile("Blank start", start_from=None)
    blank_doc = json.loads(
        services.preview(session, services.latest_version(session, blank), "kiosk").content
    )
    assert blank_doc["auto_lock_minutes"] == 10


def test_saving_a_change_makes_a_version_with_its_diff(
    session: Session, lead: User, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile("KS2 iPads")
    text = services.latest_version(session, profile).yaml_text
    changed = text.replace("camera: allowed", "camera: blocked").replace(
        "auto_lock_minutes: 10 ", "auto_lock_minutes: 5 "
    )
    version = services.save_version(session, lead, profile, changed, "Exams week")
    assert version is not None and version.number == 2 and version.note == "Exams week"
    entries = services.history(session, lead, profile)
    assert [e.version.number for e in entries] == [2, 1]
    assert entries[0].summary == [
        "Camera: Allowed → Blocked",
        "Locks itself when idle: 10 minutes → 5 minutes",
    ]
    assert entries[1].summary == ["First version"]
    assert entries[0].version.sha256 != entries[1].version.sha256


def test_an_unchanged_text_is_not_a_new_version(
    session: Session, lead: User, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile("KS2 iPads")
    text = services.latest_version(session, profile).yaml_text
    assert services.save_version(session, lead, profile, text.replace("\n", "\r\n")) is None
    assert [v.number for v in services.versions(session, profile)] == [1]
    # A comment-only change is still a new text, recorded as such.
    version = services.save_version(session, lead, profile, text + "# checked by the lead\n")
    assert version is not None
    assert services.history(session, lead, profile)[0].summary == [
        "Only comments or layout changed"
    ]


def test_an_invalid_profile_is_refused_with_every_error_and_nothing_saved(
    session: Session, lead: User, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile("KS2 iPads")
    text = services.latest_version(session, profile).yaml_text
    bad = text.replace("auto_lock_minutes: 10", "auto_lock_minutes: 99").replace(
        "  camera: allowed", "  camera: sometimes\n  kamera: blocked"
    )
    versions_before, trail_before = (
        _count(session, ProfileVersion),
        session.scalar(select(func.count()).select_from(services.ActivityEntry)),
    )
    with pytest.raises(ValidationFailed) as raised:
        services.save_version(session, lead, profile, bad)
    details = raised.value.details
    by_key = {d["key_path"]: d for d in details}
    assert set(by_key) == {"device.camera", "device.kamera", "device.auto_lock_minutes"}
    lines = bad.splitlines()
    for key, fragment in [
        ("device.camera", "camera: sometimes"),
        ("device.kamera", "kamera: blocked"),
        ("device.auto_lock_minutes", "auto_lock_minutes: 99"),
    ]:
        assert fragment in lines[by_key[key]["line"] - 1]
        assert by_key[key]["file"] == "ks2-ipads.yaml"
    assert by_key["device.camera"]["allowed"] == ["allowed", "blocked"]
    assert by_key["device.kamera"]["suggestion"] == "camera"
    assert "3 problems" in raised.value.message and "nothing was saved" in raised.value.message
    assert _count(session, ProfileVersion) == versions_before
    assert session.scalar(select(func.count()).select_from(services.ActivityEntry)) == trail_before


def test_the_id_of_a_profile_cannot_change(
    session: Session, lead: User, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile("KS2 iPads")
    text = services.latest_version(session, profile).yaml_text
    with pytest.raises(ValidationFailed) as raised:
        services.save_version(session, lead, profile, text.replace("id: ks2-ipads", "id: other"))
    (error,) = raised.value.details
    assert error["key_path"] == "id" and error["line"] == 2 and error["allowed"] == ["ks2-ipads"]


def test_validate_text_reports_errors_and_warnings_per_target() -> None:
    ok = services.validate_text(builtin_profile_texts()["ks2-ipad"])
    assert ok.profile is not None and not ok.errors
    assert set(ok.warnings) == {"apple", "chrome", "chromeos", "kiosk"}
    assert any(w.setting == "device.airdrop" for w in ok.warnings["kiosk"])
    bad = services.validate_text(
        "format: trolley-profile/1\nname: X\nweb_filter:\n  mode: allow_list_only\n"
    )
    assert bad.profile is None and bad.warnings == {}
    assert [e.key_path for e in bad.errors] == ["web_filter.allowed_urls"]


def test_two_profiles_cannot_share_an_id(make_profile: Callable[..., Profile]) -> None:
    make_profile("KS2 iPads")
    with pytest.raises(Conflict):
        make_profile("KS2  iPads!")


def test_export_names_the_version_and_refuses_signing_without_an_identity(
    session: Session, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile("KS2 iPads")
    version = services.latest_version(session, profile)
    now = services.utcnow()
    plain = services.export(session, version, "apple", sign=False, identity=None, now=now)
    assert plain.filename == "ks2-ipads-v1.mobileconfig"
    assert b"org.trolley.oakfield.ks2-ipads" in plain.content
    with pytest.raises(ValidationFailed, match="not set up"):
        services.export(session, version, "apple", sign=True, identity=None, now=now)
    with pytest.raises(ValidationFailed, match="organisational unit"):
        services.export(session, version, "chromeos", sign=False, identity=None, now=now)
    chromeos = services.export(
        session, version, "chromeos", sign=False, identity=None, now=now, org_unit_id="03ph8a2z"
    )
    assert b"orgunits/03ph8a2z" in chromeos.content
