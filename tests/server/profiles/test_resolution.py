"""Most specific wins, the desired-state outbox, and compliance from the devices' reports."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from device_profiles import kiosk_document_sha256
from server.auth.models import User
from server.devices.models import Device, DeviceEvent
from server.profiles import services
from server.profiles.models import CLEARED_SHA256, DeviceDesiredState, Profile, TargetType
from server.schools.models import School
from tests.server.profiles.conftest import NOW, Places


def _outbox(session: Session, device: Device) -> DeviceDesiredState:
    row = session.scalar(
        select(DeviceDesiredState).where(DeviceDesiredState.device_id == device.id)
    )
    assert row is not None
    return row


def test_most_specific_wins_with_the_reason_in_plain_words(
    session: Session,
    school: School,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    """P-PROFILE-1: device beats group beats trolley beats room beats building beats school."""
    device = make_device(home=places.trolley)
    names = ["School", "Building", "Room", "Trolley", "Group", "Device"]
    profiles = {name: make_profile(f"{name} profile") for name in names}
    group = services.create_group(session, lead, "Year 4 readers")
    services.add_to_group(session, lead, group, [device.asset_tag])

    assert services.resolve(session, device).reason.startswith("No profile is assigned")
    steps = [
        ("School", TargetType.SCHOOL, school.id, "The school's default profile"),
        (
            "Building",
            TargetType.LOCATION,
            places.building.id,
            "Assigned to Juniors, the building that this device's home (Year 4 trolley) is in",
        ),
        (
            "Room",
            TargetType.LOCATION,
            places.room.id,
            "Assigned to Year 4, the room that this device's home (Year 4 trolley) is in",
        ),
        (
            "Trolley",
            TargetType.LOCATION,
            places.trolley.id,
            "Assigned to Year 4 trolley (this device's home)",
        ),
        (
            "Group",
            TargetType.GROUP,
            group.id,
            "Assigned to the group Year 4 readers, which this device is in",
        ),
        ("Device", TargetType.DEVICE, device.id, "Assigned to this device itself"),
    ]
    for name, kind, target_id, reason in steps:
        services.assign(session, lead, profiles[name], kind, target_id)
        resolution = services.resolve(session, device)
        assert resolution.profile_name == f"{name} profile", name
        assert resolution.reason == reason
        assert resolution.source == (kind, target_id)
    chain = services.resolve(session, device).chain
    assert chain[0] == "This device: Device profile (applies)"
    assert "Group Year 4 readers: Group profile (a more specific profile wins)" in chain
    assert chain[-1] == "Whole school: School profile (a more specific profile wins)"
    # Taking the device's own profile away falls back to the next level.
    (row,) = [
        r
        for r in services.list_assignments(session, lead)
        if r.assignment.target_type is TargetType.DEVICE
    ]
    services.unassign(session, lead, row.assignment.id)
    assert services.resolve(session, device).profile_name == "Group profile"


def test_assigning_writes_the_kiosk_document_to_the_outbox(
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    in_trolley = [make_device(home=places.trolley) for _ in range(3)]
    elsewhere = make_device(home=places.site)
    profile = make_profile("KS2 iPads")
    services.assign(session, lead, profile, "location", places.trolley.id)
    version = services.latest_version(session, profile)
    expected = json.loads(services.preview(session, version, "kiosk").content)
    for device in in_trolley:
        row = _outbox(session, device)
        assert row.document == expected
        assert row.sha256 == expected["sha256"] == kiosk_document_sha256(row.document)
        assert row.profile_version_id == version.id and row.published_sha256 is None
    assert services.desired_state(session, elsewhere) is None

    # A new version changes every assigned device's desired state; an unchanged one does not.
    first_sha = expected["sha256"]
    text = version.yaml_text.replace("camera: allowed", "camera: blocked")
    services.save_version(session, lead, profile, text)
    row = _outbox(session, in_trolley[0])
    assert row.sha256 != first_sha and row.document is not None
    assert row.document["device"]["camera"] == "blocked" and row.document["version"] == 2
    assert services.recompute_desired(session, lead.school_id) == 0


def test_unassigning_clears_the_desired_state(
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    device = make_device(home=places.trolley)
    assignment = services.assign(session, lead, make_profile("KS2 iPads"), "device", device.id)
    services.unassign(session, lead, assignment.id)
    row = _outbox(session, device)
    assert row.document is None and row.sha256 == CLEARED_SHA256


def test_compliance_states_from_publishing_and_reports(
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    compliant, pending, drifting, silent = (make_device(home=places.trolley) for _ in range(4))
    unassigned = make_device()
    services.assign(session, lead, make_profile("KS2 iPads"), "location", places.trolley.id)
    sha = _outbox(session, compliant).sha256
    for device in (compliant, pending, drifting):
        services.record_applied(session, device, "a" * 64, NOW - timedelta(hours=1))
    for device in (compliant, pending, drifting, silent):
        assert services.mark_published(session, device.id, sha, NOW)
    assert not services.mark_published(session, compliant.id, "b" * 64, NOW)
    # Compliant means every setting reported enforced, not only the hash echoed back.
    document = _outbox(session, compliant).document or {}
    every = [{"setting": s, "state": "enforced"} for s in document["settings"]]
    services.record_applied(
        session, compliant, sha, NOW + timedelta(seconds=5), settings=every, settings_sha256=sha
    )
    services.record_applied(session, drifting, "c" * 64, NOW + timedelta(seconds=5))
    # A report older than the one already recorded changes nothing.
    services.record_applied(session, compliant, "d" * 64, NOW - timedelta(days=1))
    session.commit()

    states = {r.asset_tag: r.state for r in services.compliance(session, lead.school_id)}
    assert states == {
        compliant.asset_tag: "compliant",
        pending.asset_tag: "pending",
        drifting.asset_tag: "drifting",
        silent.asset_tag: "never_reported",
        unassigned.asset_tag: "unassigned",
    }
    assert services.compliance_summary(session, lead.school_id) == {
        "compliant": 1,
        "partial": 0,
        "unconfirmed": 0,
        "pending": 1,
        "drifting": 1,
        "never_reported": 1,
        "erased": 0,
        "unassigned": 1,
    }
    drift = services.compliance(session, lead.school_id, states=["drifting"])
    assert [r.asset_tag for r in drift] == [drifting.asset_tag]
    events = session.scalars(
        select(DeviceEvent.summary).where(DeviceEvent.device_id == compliant.id)
    ).all()
    assert events == [
        "Applied KS2 iPads version 1",
        "Enforces every setting of KS2 iPads version 1",
    ]


def test_a_desired_state_not_yet_published_is_pending(
    session: Session,
    lead: User,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
) -> None:
    device = make_device()
    services.assign(session, lead, make_profile("KS2 iPads"), "school", None)
    services.record_applied(session, device, "e" * 64, NOW)
    row = services.device_compliance(session, device)
    assert row is not None and row.state == "pending" and row.profile_name == "KS2 iPads"


def test_the_jobs_are_registered_and_reconcile_catches_a_new_device(
    session: Session,
    lead: User,
    places: Places,
    make_device: Callable[..., Device],
    make_profile: Callable[..., Profile],
    run_job: Callable[..., object],
) -> None:
    from server.jobs import discover_jobs

    jobs = discover_jobs()
    assert jobs["profiles.expire_filter_exceptions"].every == timedelta(minutes=1)
    assert "profiles.reconcile_desired_state" in jobs
    services.assign(session, lead, make_profile("KS2 iPads"), "location", places.trolley.id)
    late = make_device(home=places.trolley)  # added without anyone recomputing
    assert services.desired_state(session, late) is None
    assert run_job("profiles.reconcile_desired_state", NOW) == 1
    assert _outbox(session, late).profile_version_id is not None
