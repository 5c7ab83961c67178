"""P-REG-7: passcode and encryption come from each device's own report; the register lists
devices where either is off or not known."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from mqtt.messages import Report
from server.auth.models import Role, User
from server.commands import services as commands
from server.devices import services
from server.devices.models import Device, DeviceEvent, DeviceStatus
from server.disposals import services as disposals
from server.disposals.models import ErasureMethod
from server.enrolment.services import active_identity
from tests.server.conftest import confirm_reset, log_in_as

NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def _report(device_id: str, at: datetime, **fields: object) -> Report:
    stamp = int(at.timestamp())
    return Report(kid="k", device_id=device_id, iat=stamp, exp=stamp + 60, **fields)  # type: ignore[arg-type]


def test_the_register_lists_devices_whose_passcode_or_encryption_is_off_or_not_known(
    session: Session,
    client: FlaskClient,
    make_device: Callable[..., Device],
    make_user: Callable[..., User],
    enrolled: Callable[[Device], Device],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-REG-7: from each device's own report; silence is "not known", and listed."""
    protected, no_passcode, unsure, silent = (make_device() for _ in range(4))
    make_device(status=DeviceStatus.DISPOSED)
    said = {
        protected: {"passcode": True, "storage_encrypted": True},
        no_passcode: {"passcode": False, "storage_encrypted": True},
        unsure: {"passcode": True},  # it cannot tell whether its storage is encrypted
    }
    for device, fields in said.items():
        enrolled(device)
        identity = active_identity(session, device)
        assert identity is not None
        commands.record_report(session, identity, _report(identity.mqtt_id, NOW, **fields), now=NOW)
    session.commit()

    page = services.search_devices(session, protected.school_id, protection="gaps")
    assert [d.asset_tag for d in page.items] == [
        no_passcode.asset_tag,
        unsure.asset_tag,
        silent.asset_tag,
    ]
    assert services.protection_summary(session, protected.school_id) == {
        "protected": 1,
        "off": 1,
        "not_known": 2,
    }
    events = session.scalars(
        select(DeviceEvent.summary).where(DeviceEvent.device_id == no_passcode.id)
    ).all()
    assert "Reports passcode off, storage encrypted yes" in events

    sbm = make_user(Role.SBM)
    log_in_as(client, sbm)
    html = client.get("/devices?protection=gaps").get_data(as_text=True)
    assert protected.asset_tag not in html and silent.asset_tag in html
    silent_row = html[html.index(f">{silent.asset_tag}<") :].split("</tr>")[0]
    assert silent_row.count("not known") == 2
    no_row = html[html.index(f">{no_passcode.asset_tag}<") :].split("</tr>")[0]
    assert "<strong>no</strong> · yes" in no_row
    detail = client.get(f"/devices/{unsure.asset_tag}").get_data(as_text=True)
    assert "Yes: unlocking needs a passcode" in detail
    assert "Not known: the device&#39;s latest report does not say" in detail

    listed = client.get("/api/v1/devices?protection=gaps", headers=token_for(sbm)).get_json()
    assert [d["asset_tag"] for d in listed["items"]] == [
        no_passcode.asset_tag,
        unsure.asset_tag,
        silent.asset_tag,
    ]
    assert [(d["passcode"], d["storage_encrypted"]) for d in listed["items"]] == [
        (False, True),
        (True, None),
        (None, None),
    ]


def test_a_later_report_that_does_not_say_makes_it_not_known_again(
    session: Session, make_device: Callable[..., Device]
) -> None:
    """Only the latest report counts: an old "yes" is never carried forward as a claim."""
    device = make_device()
    services.record_protection(
        session, device, passcode=True, storage_encrypted=True, details={}, at=NOW
    )
    later = NOW + timedelta(hours=1)
    services.record_protection(
        session, device, passcode=None, storage_encrypted=None, details={}, at=later
    )
    # A report from before both, delivered late, changes nothing.
    services.record_protection(
        session, device, passcode=True, storage_encrypted=True, details={}, at=NOW
    )
    session.commit()
    protection = services.protection_of(session, device)
    assert protection.gap and protection.reported_at == later
    assert protection.passcode.startswith("Not known")


def test_an_erased_device_is_not_known_to_be_protected_until_it_reports_again(
    session: Session,
    client: FlaskClient,
    make_device: Callable[..., Device],
    make_user: Callable[..., User],
    token_for: Callable[[User], dict[str, str]],
) -> None:
    """P-REG-7: a passcode and encryption reported before an erase describe storage that no
    longer exists; a confirmed reset or a technician's evidence makes them "not known"."""
    reset, destroyed, kept = (make_device() for _ in range(3))
    for device in (reset, destroyed, kept):
        services.record_protection(
            session, device, passcode=True, storage_encrypted=True, details={}, at=NOW
        )
    session.commit()
    confirm_reset(session, reset, NOW + timedelta(hours=1))
    technician = make_user(Role.TECHNICIAN)
    disposals.record_erasure(
        session, technician, destroyed, ErasureMethod.DESTROYED, "screen and storage drilled"
    )

    school = reset.school_id
    assert services.protection_summary(session, school) == {
        "protected": 1,
        "off": 0,
        "not_known": 2,
    }
    gaps = services.search_devices(session, school, protection="gaps")
    assert [d.asset_tag for d in gaps.items] == [reset.asset_tag, destroyed.asset_tag]
    words = services.protection_of(session, reset)
    assert words.gap and words.passcode.startswith("Not known: the device was erased")
    assert words.erased_at == NOW + timedelta(hours=1)

    sbm = make_user(Role.SBM)
    listed = client.get("/api/v1/devices?protection=gaps", headers=token_for(sbm)).get_json()
    erased = listed["items"][0]
    assert (erased["passcode"], erased["storage_encrypted"], erased["erased_at"]) == (
        None,
        None,
        "2026-03-03T10:00:00Z",
    )
    log_in_as(client, sbm)
    html = client.get("/devices?protection=gaps").get_data(as_text=True)
    row = html[html.index(f">{reset.asset_tag}<") :].split("</tr>")[0]
    assert row.count("not known") == 2
    detail = client.get(f"/devices/{reset.asset_tag}").get_data(as_text=True)
    assert "Not since its storage was erased" in detail and "Yes: unlocking" not in detail

    # The device enrolled again reports: that report, after the erase, counts.
    services.record_protection(
        session,
        reset,
        passcode=True,
        storage_encrypted=True,
        details={},
        at=NOW + timedelta(hours=2),
    )
    session.commit()
    assert services.protection_summary(session, school)["protected"] == 2
    assert not services.protection_of(session, reset).gap
