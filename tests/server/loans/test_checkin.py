"""A kiosk's HTTPS check-in: the server takes the address it came from as the device's public
address and judges it against the school's ranges (P-TROLLEY-2, P-REG-3)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from mqtt.envelope import encode_public_key, key_id, sign
from mqtt.messages import Report
from server.auth.models import User
from server.commands import services as commands
from server.crypto import SecretBox
from server.devices import services as devices
from server.devices.models import Device, DeviceEvent
from server.enrolment.models import DeviceIdentity
from server.enrolment.services import enrol, issue_enrolment_token, server_key
from server.notifications.models import Notification
from server.schools import services as schools
from server.schools.models import School
from tests.server.conftest import log_in_as
from tests.server.loans.conftest import report_network

PATH = "/api/v1/device-channel/whereabouts"
SCHOOL_ADDRESS = "81.2.69.160"
CAFE_ADDRESS = "203.0.113.9"

Kiosk = tuple[DeviceIdentity, Ed25519PrivateKey]


@pytest.fixture
def kiosk(app: Flask, session: Session) -> Callable[[Device], Kiosk]:
    """Enrol a device with a real key, as a kiosk does."""
    settings = app.extensions["trolley.settings"]
    box = SecretBox(settings.data_keys)

    def make(device: Device) -> Kiosk:
        server_key(session, box)
        session.commit()
        _token, payload = issue_enrolment_token(session, None, device, settings)
        key = Ed25519PrivateKey.generate()
        done = enrol(
            session,
            box,
            settings,
            token=payload.token,
            public_key=encode_public_key(key.public_key()),
            platform="linux",
        )
        return done.identity, key

    return make


@pytest.fixture
def school_range(session: Session, sbm: User) -> None:
    schools.add_network(session, sbm, site_id=None, public_range="81.2.69.0/24")


def _check_in(identity: DeviceIdentity, key: Ed25519PrivateKey, iat: int, **network: str) -> Any:
    body = {
        "v": 1,
        "kid": key_id(key.public_key()),
        "device_id": identity.mqtt_id,
        "iat": iat,
        "exp": iat + 120,
        **network,
    }
    return sign(body, key)


def _post(client: FlaskClient, envelope: bytes, address: str, **headers: str) -> Any:
    return client.post(
        PATH,
        data=envelope,
        content_type="application/json",
        headers=headers,
        environ_base={"REMOTE_ADDR": address},
    )


def _off_site_told(session: Session) -> int:
    session.expire_all()
    return len(
        session.scalars(select(Notification).where(Notification.kind == "loans.off_site")).all()
    )


def test_a_signed_check_in_records_the_address_it_came_from_and_judges_it(
    client: FlaskClient,
    session: Session,
    fleet: list[Device],
    kiosk: Callable[[Device], Kiosk],
    school_range: None,
    head: User,
) -> None:
    """P-TROLLEY-2: a kiosk outside the school's public range is flagged, by the server's sight."""
    identity, key = kiosk(fleet[0])
    now = int(time.time())
    answer = _post(client, _check_in(identity, key, now, ssid="OAKFIELD"), SCHOOL_ADDRESS)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"public_address": SCHOOL_ADDRESS}
    network = devices.network_of(session, fleet[0])
    assert network is not None
    assert (network.public_address, network.ssid, network.off_site) == (
        SCHOOL_ADDRESS,
        "OAKFIELD",
        False,
    )

    # A forwarded-for header is not believed unless the server is configured behind a proxy.
    spoofed = _post(
        client,
        _check_in(identity, key, now + 1, ssid="Costa-Guest"),
        CAFE_ADDRESS,
        **{"X-Forwarded-For": SCHOOL_ADDRESS},
    )
    assert spoofed.get_json() == {"public_address": CAFE_ADDRESS}
    session.expire_all()
    network = devices.network_of(session, fleet[0])
    assert network is not None and network.off_site is True
    assert network.public_address == CAFE_ADDRESS
    assert _off_site_told(session) == 2  # the SBM and the head


def test_a_broker_report_on_the_same_network_keeps_the_address(
    client: FlaskClient,
    session: Session,
    fleet: list[Device],
    kiosk: Callable[[Device], Kiosk],
    school_range: None,
    head: User,
) -> None:
    """P-TROLLEY-2: the next broker report (no address) neither clears the verdict nor re-tells."""
    identity, key = kiosk(fleet[0])
    now = int(time.time())
    network = {"ssid": "Costa-Guest", "gateway": "192.168.4.1"}
    assert _post(client, _check_in(identity, key, now, **network), CAFE_ADDRESS).status_code == 200
    told = _off_site_told(session)
    assert told == 2
    for step in (1, 2):
        stamp = now + step
        report = Report(
            kid=identity.kid, device_id=identity.mqtt_id, iat=stamp, exp=stamp + 60, network=network
        )
        commands.record_report(
            session, identity, report, now=datetime.now(UTC) + timedelta(seconds=step)
        )
        session.commit()
    row = devices.network_of(session, fleet[0])
    assert row is not None and (row.public_address, row.off_site) == (CAFE_ADDRESS, True)
    assert _off_site_told(session) == told


def test_replayed_forged_and_foreign_check_ins_are_refused(
    client: FlaskClient,
    session: Session,
    fleet: list[Device],
    kiosk: Callable[[Device], Kiosk],
    make_device: Callable[..., Device],
    other_school: School,
    school_range: None,
) -> None:
    """A check-in counts only when signed by the device's own key, once, and fresh."""
    identity, key = kiosk(fleet[0])
    now = int(time.time())
    first = _check_in(identity, key, now, ssid="OAKFIELD")
    assert _post(client, first, SCHOOL_ADDRESS).status_code == 200

    replayed = _post(client, first, CAFE_ADDRESS)
    assert replayed.status_code == 401 and "replayed" in replayed.get_json()["error"]["message"]
    older = _post(client, _check_in(identity, key, now - 5), CAFE_ADDRESS)
    assert older.status_code == 401

    stranger = Ed25519PrivateKey.generate()
    forged = _post(client, _check_in(identity, stranger, now + 1), CAFE_ADDRESS)
    assert forged.status_code == 401

    # A device of another school cannot speak for this one, even with its own real key.
    elsewhere = make_device(in_school=other_school, asset_tag="ELM-0001", serial="ELM1")
    other_identity, other_key = kiosk(elsewhere)
    borrowed = _check_in(other_identity, other_key, now + 2)
    body = borrowed.replace(other_identity.mqtt_id.encode(), identity.mqtt_id.encode())
    assert _post(client, body, CAFE_ADDRESS).status_code == 401

    unsigned = b'{"body":{"v":1},"sig":""}'
    assert _post(client, unsigned, CAFE_ADDRESS).status_code in (400, 401)

    session.expire_all()
    network = devices.network_of(session, fleet[0])
    assert network is not None and network.public_address == SCHOOL_ADDRESS
    assert network.off_site is False


def test_the_public_address_keeps_the_time_the_check_in_saw_it(
    client: FlaskClient,
    session: Session,
    sbm: User,
    fleet: list[Device],
    kiosk: Callable[[Device], Kiosk],
    head: User,
) -> None:
    """P-TROLLEY-2: a broker report judged by the check-in's address says which address, and
    when it was seen; the report does not pass the address off as its own, newer, sighting."""
    identity, key = kiosk(fleet[0])
    wired = {"gateway": "192.168.4.1"}  # no Wi-Fi name: only the address can be judged
    before = datetime.now(UTC)
    assert _post(client, _check_in(identity, key, int(time.time()), **wired), CAFE_ADDRESS)
    seen = devices.network_of(session, fleet[0])
    assert seen is not None and seen.off_site is None  # no networks listed yet
    checked_in_at = seen.public_address_at
    assert checked_in_at is not None and checked_in_at >= before

    # The SBM lists the school's range; the next broker report is judged by the café address.
    schools.add_network(session, sbm, site_id=None, public_range="81.2.69.0/24")
    later = datetime.now(UTC) + timedelta(hours=1)
    report_network(identity, later, **wired)
    session.commit()
    row = devices.network_of(session, fleet[0])
    assert row is not None and row.off_site is True and row.reported_at == later
    assert (row.public_address, row.public_address_at) == (CAFE_ADDRESS, checked_in_at)
    event = session.scalars(
        select(DeviceEvent).where(
            DeviceEvent.device_id == fleet[0].id, DeviceEvent.kind == "off_site"
        )
    ).one()
    assert CAFE_ADDRESS in event.summary
    assert event.details["public_address"] == CAFE_ADDRESS
    assert event.details["public_address_at"] == checked_in_at.isoformat()
    assert _off_site_told(session) == 2
    log_in_as(client, sbm)
    page = client.get(f"/devices/{fleet[0].asset_tag}").text
    assert f"its public address {CAFE_ADDRESS} was seen at" in page


def test_a_report_from_another_wi_fi_does_not_judge_by_the_old_address(
    client: FlaskClient,
    session: Session,
    fleet: list[Device],
    kiosk: Callable[[Device], Kiosk],
    school_range: None,
    head: User,
) -> None:
    """P-TROLLEY-2: the check-in's address belongs to the Wi-Fi it came from; once the device
    reports another Wi-Fi, the address is kept as what it was, not as where the device is."""
    identity, key = kiosk(fleet[0])
    school_wifi = {"ssid": "OAKFIELD", "gateway": "10.0.0.1"}
    assert _post(client, _check_in(identity, key, int(time.time()), **school_wifi), SCHOOL_ADDRESS)
    start = datetime.now(UTC)
    report_network(identity, start + timedelta(minutes=1), ssid="Home-Wifi", gateway="192.168.1.1")
    session.commit()
    row = devices.network_of(session, fleet[0])
    assert row is not None and row.ssid == "Home-Wifi"
    assert row.off_site is None  # no Wi-Fi names listed, and the school's address is stale
    assert row.public_address == SCHOOL_ADDRESS  # what the server last saw, with its own time
    assert row.public_address_at is not None and row.public_address_at < start

    # Back on the school's Wi-Fi: still no fresh address, so still not judged by the old one.
    report_network(identity, start + timedelta(minutes=2), **school_wifi)
    session.commit()
    row = devices.network_of(session, fleet[0])
    assert row is not None and row.off_site is None and row.public_address == SCHOOL_ADDRESS
    assert _off_site_told(session) == 0
