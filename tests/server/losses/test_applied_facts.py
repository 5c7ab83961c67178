"""Breach facts are what the device reported, never what its profile asked (P-LOSS-2, P-REG-7)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.devices.models import Device
from server.devices.services import record_protection
from server.losses import services
from server.losses.models import LossReport, RiskLevel
from server.profiles import services as profiles
from server.schools.models import School
from tests.server.conftest import confirm_reset
from tests.server.losses.conftest import NOW


def test_an_unreported_device_is_described_by_what_is_not_known(
    session: Session,
    report: Callable[..., LossReport],
    device: Device,
    make_user: Callable[..., User],
    school: School,
) -> None:
    """P-LOSS-2: a device that never reported gets no passcode, auto-lock or wipe claims."""
    lead = make_user(Role.COMPUTING_LEAD)
    profile = profiles.create_profile(session, lead, name="KS2 iPads", start_from="ks2-ipad")
    profiles.assign(session, lead, profile, "school", school.id)
    loss = report(device)
    facts = services.known_facts(session, loss)
    assert facts.passcode.startswith("Not known")
    assert facts.encryption.startswith("Not known")
    assert not any("idle" in rule or "wiped" in rule for rule in facts.restrictions)
    assert facts.settings.startswith("Not known") and facts.profile_name is None
    text = services.suggested_personal_data(facts)
    assert "Required" not in text and "Locks itself" not in text and "wiped" not in text
    assert "Storage encryption: Not known" in text


def _reports_its_profile(
    session: Session, device: Device, lead: User, school: School, *, days: int
) -> None:
    """The school's profile, reported `days` before NOW: every setting enforced but the camera;
    a passcode, nothing said about encryption, and 12 photos on it."""
    profile = profiles.create_profile(session, lead, name="KS2 iPads", start_from="ks2-ipad")
    profiles.assign(session, lead, profile, "school", school.id)
    desired = profiles.desired_state(session, device)
    assert desired is not None and desired.document is not None
    said = NOW - timedelta(days=days)
    entries = [
        {"setting": s, "state": "enforced", "detail": "", "evidence": {}}
        for s in desired.document["settings"]
    ]
    entries[0] = {**entries[0], "state": "failed", "detail": "camera files still open"}
    profiles.record_applied(
        session, device, desired.sha256, said, settings=entries, settings_sha256=desired.sha256
    )
    record_protection(
        session,
        device,
        passcode=True,
        storage_encrypted=None,
        details={"passcode": "set on the device"},
        at=said,
    )
    device.photo_count, device.photo_count_at = 12, said
    session.commit()


def test_breach_facts_are_what_the_device_reported_and_when(
    session: Session,
    report: Callable[..., LossReport],
    device: Device,
    make_user: Callable[..., User],
    school: School,
    head: User,
) -> None:
    """P-LOSS-2, P-REG-7: enforced settings, the ones it could not, passcode and encryption,
    each as the device itself said two days before the loss; erasing the lost device remotely
    (a factory reset it confirms) leaves them as it said them."""
    _reports_its_profile(session, device, make_user(Role.COMPUTING_LEAD), school, days=2)
    loss = report(device)
    confirm_reset(session, device, NOW + timedelta(minutes=30))
    facts = services.known_facts(session, loss)
    assert facts.profile_name == "KS2 iPads"
    assert facts.passcode.startswith("Yes") and "2 days" in facts.passcode
    assert facts.encryption.startswith("Not known")
    assert "Locks itself when idle: after 10 minutes idle" in facts.restrictions
    assert facts.not_enforced == ["Camera: failed (camera files still open)"]
    assert "2 days" in facts.settings
    assert (
        facts.photos.startswith("12 photos, reported 2 days") and "before the loss" in facts.photos
    )
    assert facts.photo_count == 12
    services.assess(
        session,
        head,
        loss,
        personal_data="Photos.",
        risk=RiskLevel.UNLIKELY,
        risk_notes="Passcode set.",
        now=NOW + timedelta(hours=1),
    )
    assert loss.facts["encryption"].startswith("Not known")
    assert loss.facts["not_enforced"] == ["Camera: failed (camera files still open)"]


def test_what_a_device_said_before_an_earlier_erase_is_not_a_breach_fact(
    session: Session,
    report: Callable[..., LossReport],
    device: Device,
    make_user: Callable[..., User],
    school: School,
) -> None:
    """P-LOSS-2: reset a day before it went missing (and not reported since), the device's
    earlier passcode, settings and photo count describe storage that no longer exists: not
    known, and still not known once it is erased again remotely after the loss."""
    _reports_its_profile(session, device, make_user(Role.COMPUTING_LEAD), school, days=3)
    confirm_reset(session, device, NOW - timedelta(days=1))
    loss = report(device)
    confirm_reset(session, device, NOW + timedelta(minutes=30))
    facts = services.known_facts(session, loss)
    assert facts.passcode.startswith("Not known: the device was erased")
    assert facts.encryption.startswith("Not known")
    assert facts.restrictions == [] and facts.not_enforced == []
    assert facts.settings.startswith("Not known") and "erased" in facts.settings
    assert facts.photos.startswith("Not known") and "erased" in facts.photos
    assert facts.photo_count is None and facts.photo_count_at is None
