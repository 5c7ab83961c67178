"""End to end: a real broker, the worker's channel, a device, and a real mail server."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from mqtt.topics import QOS, status_topic
from server.auth.models import Role, User
from server.auth.services import create_user
from server.commands.models import Command, CommandStatus
from server.db import utcnow
from server.enrolment.models import DeviceIdentity
from server.losses import services
from server.losses.models import LossKind
from server.notifications.models import Notification
from server.notifications.services import send_due_email
from tests.server.commands.conftest import Live, wait_until
from tests.server.notifications.conftest import MailServer, settings_for


def _online(live: Live, device_id: int) -> bool:
    with live.database.begin() as session:
        identity = session.scalar(
            select(DeviceIdentity).where(DeviceIdentity.device_id == device_id)
        )
        return bool(identity and identity.online)


def _alerts(live: Live) -> list[int]:
    with live.database.begin() as session:
        return list(
            session.scalars(
                select(Notification.user_id).where(
                    Notification.kind == "loss.seen_online",
                    Notification.school_id == live.head.school_id,
                )
            )
        )


def test_report_email_lost_mode_reconnect_and_alert(
    live: Live, mail_server: MailServer, smtp_port: int
) -> None:
    """P-LOSS-1, P-LOSS-3: the head is e-mailed, the device locks, and its return is noticed."""
    device, fake = live.devices[0], live.fakes[0]
    with live.database.begin() as session:
        teacher = create_user(
            session,
            actor=None,
            school=session.merge(live.head).school,
            email=f"teacher{uuid.uuid4().hex[:6]}@x.example",
            name="Amira Khan",
            role=Role.TEACHER,
            password="long-password-1",
        )
        teacher_id = teacher.id
    fake.connect()
    wait_until(lambda: _online(live, device.id), what="the device to be online")

    # A teacher reports it lost: lost mode is queued and the head's e-mail is in the outbox.
    with live.database.begin() as session:
        loss = services.report_loss(
            session,
            session.get_one(User, teacher_id),
            asset_tag=device.asset_tag,
            kind=LossKind.LOST,
            last_seen_at=utcnow() - timedelta(hours=1),
            last_seen_where="Year 4 classroom",
            circumstances="Missing after the lesson.",
        )
        loss_id = loss.id
    with live.database.begin() as session:
        assert send_due_email(session, settings_for(live.settings, smtp_port), utcnow()).sent == 1
    (received,) = mail_server.messages
    assert received.rcpt_tos == [live.head.email]
    assert received.message["Subject"] == f"Device reported lost or stolen: {device.asset_tag}"

    # The device collects lost mode, verifies it with the server's key and acknowledges it.
    command = fake.answer()
    assert command.type.value == "lost_mode" and command.args["enabled"] is True

    def lost_mode_state() -> str:
        with live.database.begin() as session:
            return services.lost_mode(
                session, services.get_loss(session, session.merge(live.head), loss_id)
            ).state

    wait_until(lambda: lost_mode_state() == "active", what="lost mode to be acknowledged")
    with live.database.begin() as session:
        statuses = session.scalars(select(Command.status).where(Command.device_id == device.id))
        assert list(statuses) == [CommandStatus.DONE]

    # It drops off the network (its last will says offline), then comes back.
    fake.client.publish(
        status_topic(fake.mqtt_id), b"offline", qos=QOS, retain=True
    ).wait_for_publish(5)
    fake.disconnect()
    wait_until(lambda: not _online(live, device.id), what="the device to be offline")
    assert _alerts(live) == []
    fake.connect()
    wait_until(lambda: len(_alerts(live)) == 2, what="the online alert")
    assert sorted(_alerts(live)) == sorted([teacher_id, live.head.id])

    with live.database.begin() as session:
        found = services.case(
            session, services.get_loss(session, session.merge(live.head), loss_id)
        )
        steps = [s.what for s in services.incident_record(session, found)]
    assert "Lost mode on acknowledged as done by the device" in steps
    assert any(s.startswith(f"{device.asset_tag} came online at ") for s in steps)
    assert f"E-mail to {live.head.email} delivered to the mail server" in steps
