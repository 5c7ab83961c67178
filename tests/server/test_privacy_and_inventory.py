"""What devices report is kept per device; what is printed or sent carries no personal data."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from mqtt.messages import Report
from mqtt.topics import ack_topic, cmd_topic, desired_topic, reported_topic, status_topic
from provisioning.payload import EnrolmentPayload, label_url
from server.auth.models import Role, User
from server.commands.services import record_report
from server.db import utcnow
from server.devices.models import Device
from server.enrolment.models import DeviceIdentity
from server.enrolment.services import issue_enrolment_token
from server.licences.models import InstalledApp


def _identity(session: Session, device: Device) -> DeviceIdentity:
    identity = DeviceIdentity(
        school_id=device.school_id,
        device_id=device.id,
        mqtt_id=f"dev-{uuid.uuid4().hex[:12]}",
        public_key="x" * 43,
        kid="0" * 16,
        broker_secret_hash="h",
        platform="simulated",
    )
    session.add(identity)
    session.flush()
    return identity


def test_installed_apps_reported_by_a_device_are_recorded_per_device(
    session: Session, make_device: Callable[..., Device]
) -> None:
    """P-REG-4: the software inventory of each device, as its client reports it."""
    device = make_device()
    identity = _identity(session, device)
    now = utcnow()
    report = Report(
        kid="0" * 16,
        device_id=identity.mqtt_id,
        iat=int(now.timestamp()),
        exp=int(now.timestamp()) + 60,
        os_version="18.1",
        photo_count=2,
        apps=("com.apple.Pages", "uk.co.bbc.bitesize"),
    )
    record_report(session, identity, report, now=now)
    session.commit()
    apps = set(
        session.scalars(select(InstalledApp.app_id).where(InstalledApp.device_id == device.id))
    )
    assert apps == {"com.apple.Pages", "uk.co.bbc.bitesize"}
    assert device.os_version == "18.1" and device.photo_count == 2


def test_codes_and_topics_carry_no_personal_data(
    app: Flask, session: Session, make_user: Callable[..., User], make_device: Callable[..., Device]
) -> None:
    """P-SEC-3: QR codes hold an opaque URL or code, device topics an opaque id: no names."""
    teacher = make_user(Role.TEACHER)
    device = make_device()
    device.holder_id = teacher.id
    session.commit()
    settings = app.extensions["trolley.settings"]
    label = label_url(settings.base_url, device.asset_tag)
    _token, payload = issue_enrolment_token(session, None, device, settings)
    decoded = EnrolmentPayload.decode(payload.encode())
    identity = _identity(session, device)
    topics = [
        f(identity.mqtt_id)
        for f in (cmd_topic, desired_topic, ack_topic, reported_topic, status_topic)
    ]
    printed = [label, payload.encode(), *topics, str(decoded)]
    for personal in (teacher.name, teacher.email, teacher.email.split("@")[0]):
        assert all(personal.lower() not in text.lower() for text in printed)
    assert label == f"{settings.base_url}/d/{device.asset_tag}"
