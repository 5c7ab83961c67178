"""The loss e-mail reaches the head through a real SMTP server on 127.0.0.1; failures show."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from server.auth.models import User
from server.config import Settings
from server.db import utcnow
from server.devices.models import Device
from server.losses import services
from server.losses.models import LossReport
from server.notifications.models import EmailStatus
from server.notifications.services import send_due_email
from tests.server.notifications.conftest import BASE_URL, MailServer


def test_the_head_receives_the_loss_email_through_a_real_mail_server(
    session: Session,
    report: Callable[..., LossReport],
    device: Device,
    head: User,
    mail_server: MailServer,
    mail_settings: Settings,
) -> None:
    """P-LOSS-1: the report's e-mail goes out on the sender's first run and the report shows it."""
    services.update_settings(session, head, dpo_email="dpo@trust.example")
    loss = report(device, now=utcnow())
    assert send_due_email(session, mail_settings, utcnow()).sent == 2
    by_address = {r.rcpt_tos[0]: r.message for r in mail_server.messages}
    assert set(by_address) == {"head@oakfield.example", "dpo@trust.example"}
    message = by_address["head@oakfield.example"]
    assert message["Subject"] == f"Device reported lost or stolen: {device.asset_tag}"
    text = _plain(message)
    assert f"Loss report: {loss.id}" in text and "72 hours" in text
    assert "Year 4 classroom" not in text  # where it was last seen stays in the app (P-SEC-5)
    assert f"{BASE_URL}/losses/{loss.id}" in text
    found = services.case(session, loss)
    assert {e.status for e in found.deliveries} == {EmailStatus.SENT}
    assert all([a.ok for a in e.attempt_log] == [True] for e in found.deliveries)
    steps = [s.what for s in services.incident_record(session, found)]
    assert "E-mail to head@oakfield.example delivered to the mail server" in steps


def test_a_failed_delivery_is_visible_on_the_report_and_retried(
    session: Session,
    report: Callable[..., LossReport],
    device: Device,
    head: User,
    start_mail_server: Callable[[], MailServer],
    mail_settings: Settings,
) -> None:
    """P-LOSS-1: a mail outage is recorded on the report, and the retry delivers the e-mail."""
    loss = report(device, now=utcnow())
    t0 = utcnow()
    assert send_due_email(session, mail_settings, t0).retrying == 1  # nothing listens yet
    (email,) = services.deliveries(session, loss)
    assert email.status is EmailStatus.QUEUED and email.last_error
    assert "Could not connect to the mail server" in email.attempt_log[0].error  # type: ignore[operator]
    server = start_mail_server()
    assert send_due_email(session, mail_settings, t0 + timedelta(seconds=31)).sent == 1
    assert [r.rcpt_tos for r in server.messages] == [["head@oakfield.example"]]
    (email,) = services.deliveries(session, loss)
    session.refresh(email)
    assert [a.ok for a in email.attempt_log] == [False, True]
    steps = [s.what for s in services.incident_record(session, services.case(session, loss))]
    assert any(s.startswith("E-mail to head@oakfield.example could not be sent") for s in steps)


def test_the_loss_email_carries_none_of_the_reporters_words_nor_any_name(
    session: Session,
    report: Callable[..., LossReport],
    device: Device,
    head: User,
    teacher: User,
    mail_server: MailServer,
    mail_settings: Settings,
) -> None:
    """P-SEC-5: what the reporter typed (a pupil's name, SEN status, a parent's phone number)
    and the reporter's name stay in Trolley; the head and the DPO get the same minimal notice."""
    services.update_settings(session, head, dpo_email="dpo@trust.example")
    loss = report(
        device,
        now=utcnow(),
        last_seen_where="Daisy Hughes's table in Year 4",
        circumstances="Daisy Hughes (SEN support, EHCP) had it last; her mum is on 07700 900123.",
        police_reference="Met-4471 (PC Amir Shah)",
    )
    assert send_due_email(session, mail_settings, utcnow()).sent == 2
    by_address = {r.rcpt_tos[0]: r.message for r in mail_server.messages}
    assert set(by_address) == {"head@oakfield.example", "dpo@trust.example"}
    for message in by_address.values():
        said = _everything(message)
        for private in ("Daisy", "Hughes", "SEN", "EHCP", "07700 900123", "Amir", "Met-4471"):
            assert private not in said
        assert teacher.name not in said and head.name not in said
        text = _plain(message)
        assert device.asset_tag in message["Subject"] and device.asset_tag in text
        assert "reported lost or stolen" in text
        assert f"{BASE_URL}/losses/{loss.id}" in text
    assert _plain(by_address["dpo@trust.example"]) == _plain(by_address["head@oakfield.example"])


def _plain(message: Any) -> str:
    return str(message.get_body(preferencelist=("plain",)).get_content())


def _everything(message: Any) -> str:
    """Every header and every part as its reader sees it (decoded, attachments included)."""
    parts = [f"{key}: {value}" for key, value in message.items()]
    for part in message.walk():
        if not part.is_multipart():
            content = part.get_content()
            is_bytes = isinstance(content, bytes)
            parts.append(content.decode(errors="replace") if is_bytes else content)
    return "\n".join(parts)
