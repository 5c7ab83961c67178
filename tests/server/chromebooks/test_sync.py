"""Devices from Google: every page read, matched to the register by serial, names never kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.chromebooks import services
from server.chromebooks.models import GoogleDevice, GoogleLink
from server.chromebooks.services.google import GoogleApi
from server.crypto import SecretBox
from server.devices.models import Device, DeviceEvent, Platform
from server.notifications.models import Notification
from tests.server.chromebooks.fake_google import FakeGoogle

Chromebook = Callable[..., tuple[Device, dict[str, Any]]]


def _events(session: Session, device: Device, kind: str) -> list[str]:
    return list(
        session.scalars(
            select(DeviceEvent.summary).where(
                DeviceEvent.device_id == device.id, DeviceEvent.kind == kind
            )
        )
    )


def test_every_page_is_read_and_register_chromebooks_are_matched_by_serial(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    link: GoogleLink,
    make_device: Callable[..., Device],
) -> None:
    """P-REG-4, P-REG-8: OS version, model, org unit and auto-update expiry from Google."""
    device = make_device(platform=Platform.CHROMEOS, serial="5CD1234XYZ", make="HP", model="x")
    google.add_device(" 5cd1234xyz ", osVersion="126.0.1", autoUpdateExpiration="1938729600000")
    for n in range(210):  # more than one page of 200
        google.add_device(f"ZZ{n:06d}")
    google.calls.clear()
    result = services.sync_devices(session, box, api, link.school_id)
    lists = [
        params for name, params, _body in google.calls if name.endswith("chromeosdevices.list")
    ]
    assert [p.get("pageToken") for p in lists] == [None, "200"]
    assert {p["projection"] for p in lists} == {"FULL"}
    assert (result.seen, result.matched, result.unknown) == (211, 1, 210)
    row = session.scalar(select(GoogleDevice).where(GoogleDevice.device_id == device.id))
    assert row is not None
    assert (row.os_version, row.org_unit_path, row.status) == ("126.0.1", "/Pupils", "ACTIVE")
    assert row.auto_update_expires == date(2031, 6, 9)
    assert device.os_version == "126.0.1"
    assert device.last_seen_at == row.last_sync  # P-REG-3: when Google last heard from it
    assert link.synced_at is not None and link.sync_problem is None
    assert _events(session, device, "google")[0].startswith("Linked to its record")


def test_pupils_names_are_counted_never_kept(
    session: Session, box: SecretBox, api: GoogleApi, link: GoogleLink, chromebook: Chromebook
) -> None:
    """Recent users are a number; their e-mail addresses are stored nowhere."""
    device, _resource = chromebook()
    services.sync_devices(session, box, api, link.school_id)
    row = session.scalar(select(GoogleDevice).where(GoogleDevice.device_id == device.id))
    assert row is not None and row.recent_users == 2
    dumped = json.dumps(
        [list(r) for r in session.execute(text("SELECT * FROM google_devices")).all()], default=str
    )
    assert "pupil.one" not in dumped and "@school.example" not in dumped


def test_unknown_chromebooks_are_offered_and_missing_ones_flagged(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    link: GoogleLink,
    make_device: Callable[..., Device],
) -> None:
    absent = make_device(platform=Platform.CHROMEOS, make="Acer", model="Spin")
    make_device()  # an iPad is never "missing from Google"
    google.add_device("NEWONE0001")
    result = services.sync_devices(session, box, api, link.school_id)
    assert result.missing == [absent.asset_tag]
    assert [d.asset_tag for d in services.missing_from_google(session, link.school_id)] == [
        absent.asset_tag
    ]
    unknown = session.scalars(select(GoogleDevice).where(GoogleDevice.device_id.is_(None))).all()
    assert [u.serial for u in unknown] == ["NEWONE0001"]


def test_a_chromebook_gone_from_google_is_no_longer_reachable(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    link: GoogleLink,
    chromebook: Chromebook,
) -> None:
    from server.commands.services import can_reach

    device, resource = chromebook()
    services.sync_devices(session, box, api, link.school_id)
    assert can_reach(session, device)
    del google.devices[resource["deviceId"]]
    result = services.sync_devices(session, box, api, link.school_id)
    assert result.missing == [device.asset_tag]
    assert not can_reach(session, device)


def test_off_site_comes_from_the_last_known_network(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    link: GoogleLink,
    chromebook: Chromebook,
    make_user: Callable[..., User],
) -> None:
    """P-TROLLEY-2: a Chromebook last seen on a network outside school is flagged, and the SBM
    and the head are told at once, as for a kiosk's own report."""
    head, sbm = make_user(Role.HEADTEACHER), make_user(Role.SBM)
    at_school, _ = chromebook()
    away, _ = chromebook(
        lastKnownNetwork=[{"ipAddress": "192.168.1.5", "wanIpAddress": "86.1.2.3"}]
    )
    services.sync_devices(session, box, api, link.school_id)
    rows = {row.device_id: row.off_site for row in session.scalars(select(GoogleDevice))}
    assert rows == {at_school.id: False, away.id: True}
    assert _events(session, away, "off_site") == [
        "Google saw it on a network outside school (86.1.2.3), "
        "and it is not on an approved home loan"
    ]
    assert _events(session, at_school, "off_site") == []
    services.sync_devices(session, box, api, link.school_id)
    assert len(_events(session, away, "off_site")) == 1  # flagged once, not at every sync
    told = session.scalars(select(Notification).where(Notification.kind == "loans.off_site"))
    assert sorted(n.user_id for n in told) == sorted([head.id, sbm.id])


def test_a_failed_sync_says_why_and_keeps_what_was_known(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    link: GoogleLink,
    chromebook: Chromebook,
) -> None:
    device, _ = chromebook()
    services.sync_devices(session, box, api, link.school_id)
    google.fail(503, match="chromeos")
    with pytest.raises(services.GoogleError):
        services.sync_devices(session, box, api, link.school_id)
    assert link.sync_problem is not None and "Google had a problem" in link.sync_problem
    assert session.scalar(select(GoogleDevice.device_id)) == device.id


def test_a_chromebook_enrolled_again_under_a_new_google_id_is_matched_again(
    session: Session,
    box: SecretBox,
    api: GoogleApi,
    google: FakeGoogle,
    link: GoogleLink,
    chromebook: Chromebook,
) -> None:
    """After a powerwash and re-enrolment Google gives the same serial a new device id."""
    from server.commands.services import can_reach

    device, resource = chromebook()
    services.sync_devices(session, box, api, link.school_id)
    del google.devices[resource["deviceId"]]
    google.add_device(device.serial)
    result = services.sync_devices(session, box, api, link.school_id)
    assert (result.matched, result.unknown, result.missing) == (1, 0, [])
    assert can_reach(session, device)
