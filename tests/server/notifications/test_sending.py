"""E-mail leaves through a real SMTP server; outages, give-ups and set-up gaps lose nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.activity.models import ActivityEntry
from server.auth.models import Role, User
from server.config import Settings, replace
from server.db import utcnow
from server.errors import Conflict
from server.jobs import JobContext, discover_jobs
from server.notifications.models import EmailAttempt, EmailMessage, EmailStatus, Notification
from server.notifications.services import (
    MAX_ATTEMPTS,
    NO_SMTP,
    Attachment,
    SendReport,
    backoff_after,
    notify,
    notify_roles,
    retry_email,
    send_due_email,
)
from tests.server.notifications.conftest import BASE_URL, MailServer

ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Trolley//Leavers//EN\r\nMETHOD:REQUEST\r\n"
    b"BEGIN:VEVENT\r\nUID:leaver-7@trolley\r\nDTSTART:20250718T150000Z\r\n"
    b"SUMMARY:Device reset meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def _emails(session: Session) -> list[EmailMessage]:
    return list(session.scalars(select(EmailMessage).order_by(EmailMessage.id)))


def _attempts(session: Session, message: EmailMessage) -> list[EmailAttempt]:
    return list(
        session.scalars(
            select(EmailAttempt)
            .where(EmailAttempt.email_id == message.id)
            .order_by(EmailAttempt.id)
        )
    )


def _loss_notice(session: Session, school_id: int) -> list[Notification]:
    notices = notify_roles(
        session,
        school_id=school_id,
        roles=[Role.HEADTEACHER],
        kind="loss.reported",
        title="iPad TAG-0001 reported lost",
        body="Ms Teacher reported iPad TAG-0001 lost from the Year 4 trolley.",
        link="/devices/TAG-0001",
    )
    session.commit()
    return notices


def test_a_loss_notice_reaches_the_headteacher_by_email_at_once(
    session: Session,
    make_user: Callable[..., User],
    mail_server: MailServer,
    mail_settings: Settings,
) -> None:
    """P-LOSS-1: the headteacher is told in the app and by e-mail on the sender's first run."""
    head = make_user(Role.HEADTEACHER, email="head@oakfield.example")
    make_user(Role.TEACHER)
    notices = _loss_notice(session, head.school_id)
    assert [n.user_id for n in notices] == [head.id]

    report = send_due_email(session, mail_settings, utcnow())

    assert report == SendReport(sent=1)
    [received] = mail_server.messages
    assert received.rcpt_tos == ["head@oakfield.example"]
    assert received.message["To"] == "head@oakfield.example"
    assert received.message["From"] == "Trolley <trolley@oakfield.example>"
    assert received.message["Subject"] == "Device reported lost or stolen"
    text = received.message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Device reported lost or stolen." in text and "72 hours" in text
    assert "Ms Teacher" not in text and "Year 4 trolley" not in text  # P-SEC-5
    assert f"{BASE_URL}/devices/TAG-0001" in text
    [message] = _emails(session)
    assert message.status == EmailStatus.SENT and message.attempts == 1
    assert message.sent_at is not None and message.notification_id == notices[0].id
    assert [a.ok for a in _attempts(session, message)] == [True]


def test_an_ics_invitation_arrives_as_an_attachment(
    session: Session,
    make_user: Callable[..., User],
    mail_server: MailServer,
    mail_settings: Settings,
) -> None:
    """P-LEAVE-1: the reset meeting's calendar invitation arrives intact with the e-mail."""
    leaver = make_user(Role.TEACHER)
    notify(
        session,
        school_id=leaver.school_id,
        users=[leaver],
        kind="leaver_meeting",
        title="Your device reset meeting",
        body="Please bring your iPad to the office.",
        attachments=[Attachment("reset-meeting.ics", "text/calendar; method=REQUEST", ICS)],
    )
    session.commit()

    assert send_due_email(session, mail_settings, utcnow()).sent == 1

    [received] = mail_server.messages
    [part] = list(received.message.iter_attachments())
    assert part.get_filename() == "reset-meeting.ics"
    assert part.get_content_type() == "text/calendar"
    assert part.get_param("method") == "REQUEST"
    assert part.get_payload(decode=True) == ICS
    text = received.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Device reset meeting." in text and "Please bring your iPad" not in text


def test_a_mail_outage_loses_nothing_and_delivers_when_the_server_returns(
    session: Session,
    make_user: Callable[..., User],
    start_mail_server: Callable[[], MailServer],
    mail_settings: Settings,
) -> None:
    """P-LOSS-1: failures are recorded and retried with backoff until the e-mail goes out."""
    head = make_user(Role.HEADTEACHER)
    _loss_notice(session, head.school_id)
    t0 = utcnow()

    first = send_due_email(session, mail_settings, t0)  # nothing listens on the port yet

    assert first == SendReport(retrying=1)
    [message] = _emails(session)
    assert message.status == EmailStatus.QUEUED and message.attempts == 1
    assert message.next_attempt_at == t0 + timedelta(seconds=30)
    assert message.last_error and "nothing is answering" in message.last_error
    [attempt] = _attempts(session, message)
    assert not attempt.ok and attempt.error == message.last_error

    assert send_due_email(session, mail_settings, t0 + timedelta(seconds=10)) == SendReport()
    t1 = t0 + timedelta(seconds=30)
    assert send_due_email(session, mail_settings, t1) == SendReport(retrying=1)
    session.refresh(message)
    assert message.attempts == 2 and message.next_attempt_at == t1 + timedelta(minutes=2)

    server = start_mail_server()
    assert send_due_email(session, mail_settings, t1 + timedelta(minutes=1)) == SendReport()
    assert server.messages == []
    assert send_due_email(session, mail_settings, t1 + timedelta(minutes=2)) == SendReport(sent=1)

    assert len(server.messages) == 1
    session.refresh(message)
    assert message.status == EmailStatus.SENT and message.attempts == 3
    assert message.last_error is None
    assert [a.ok for a in _attempts(session, message)] == [False, False, True]


def test_after_ten_failures_it_waits_for_a_person_to_try_again(
    session: Session,
    make_user: Callable[..., User],
    start_mail_server: Callable[[], MailServer],
    mail_settings: Settings,
) -> None:
    """P-LOSS-1: a message that keeps failing is marked failed, listed, and retryable by hand."""
    head = make_user(Role.HEADTEACHER)
    _loss_notice(session, head.school_id)
    [message] = _emails(session)
    now = utcnow()
    waits = []
    for _ in range(MAX_ATTEMPTS):
        report = send_due_email(session, mail_settings, now)
        session.refresh(message)
        if message.status == EmailStatus.QUEUED:
            assert report == SendReport(retrying=1)
            waits.append(message.next_attempt_at - now)
            now = message.next_attempt_at
    assert report == SendReport(failed=1)
    assert message.status == EmailStatus.FAILED and message.attempts == MAX_ATTEMPTS
    assert waits == [backoff_after(n) for n in range(1, MAX_ATTEMPTS)]
    assert waits[:5] == [
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=10),
        timedelta(minutes=30),
        timedelta(hours=1),
    ]
    assert len(_attempts(session, message)) == MAX_ATTEMPTS
    # Failed e-mails are never picked up again on their own.
    assert send_due_email(session, mail_settings, now + timedelta(days=1)) == SendReport()

    retried = retry_email(session, head, message.id)
    assert retried.status == EmailStatus.QUEUED and retried.attempts == 0
    entry = session.scalars(
        select(ActivityEntry).where(ActivityEntry.action == "email.retry")
    ).one()
    assert entry.actor_id == head.id and entry.target_id == str(message.id)

    server = start_mail_server()
    assert send_due_email(session, mail_settings, utcnow()) == SendReport(sent=1)
    assert len(server.messages) == 1
    assert [a.ok for a in _attempts(session, message)] == [False] * MAX_ATTEMPTS + [True]


def test_only_a_failed_email_can_be_tried_again(
    session: Session, make_user: Callable[..., User]
) -> None:
    head = make_user(Role.HEADTEACHER)
    _loss_notice(session, head.school_id)
    [message] = _emails(session)
    with pytest.raises(Conflict, match="waiting to send"):
        retry_email(session, head, message.id)


def test_without_a_mail_server_email_waits_with_a_reason(
    session: Session,
    make_user: Callable[..., User],
    mail_server: MailServer,
    mail_settings: Settings,
) -> None:
    """No SMTP host configured: the e-mail stays queued, says why, and goes once it is set."""
    head = make_user(Role.HEADTEACHER)
    _loss_notice(session, head.school_id)
    unset = replace(mail_settings, smtp_host=None)

    assert send_due_email(session, unset, utcnow()) == SendReport(waiting_for_setup=1)
    assert send_due_email(session, unset, utcnow()) == SendReport(waiting_for_setup=1)

    [message] = _emails(session)
    assert message.status == EmailStatus.QUEUED and message.attempts == 0
    assert message.last_error == NO_SMTP and "TROLLEY_SMTP_HOST" in NO_SMTP
    assert _attempts(session, message) == []
    assert send_due_email(session, mail_settings, utcnow()) == SendReport(sent=1)
    assert len(mail_server.messages) == 1


def test_a_refused_address_fails_at_once_without_holding_up_the_others(
    session: Session,
    make_user: Callable[..., User],
    mail_server: MailServer,
    mail_settings: Settings,
) -> None:
    """A permanent refusal (5xx) is not retried for hours; the rest of the batch still goes."""
    gone = make_user(Role.HEADTEACHER, email="gone@oakfield.example")
    head = make_user(Role.HEADTEACHER, email="head@oakfield.example")
    mail_server.mailbox.refuse.add(gone.email)
    _loss_notice(session, head.school_id)

    report = send_due_email(session, mail_settings, utcnow())

    assert report == SendReport(sent=1, failed=1)
    by_address = {m.to_address: m for m in _emails(session)}
    assert by_address[gone.email].status == EmailStatus.FAILED
    assert "550" in (by_address[gone.email].last_error or "")
    assert by_address[head.email].status == EmailStatus.SENT
    assert [r.rcpt_tos for r in mail_server.messages] == [[head.email]]


def test_the_worker_job_sends_email(
    session: Session,
    make_user: Callable[..., User],
    mail_server: MailServer,
    mail_settings: Settings,
) -> None:
    """P-LOSS-1: the worker runs the sender every few seconds."""
    job = discover_jobs()["notifications.send_email"]
    assert job.every <= timedelta(seconds=10)
    head = make_user(Role.HEADTEACHER)
    _loss_notice(session, head.school_id)

    assert job.run(JobContext(session, utcnow(), mail_settings)) == SendReport(sent=1)
    assert len(mail_server.messages) == 1


def test_trolley_logs_in_to_the_mail_server_when_told_to(
    session: Session,
    make_user: Callable[..., User],
    start_mail_server: Callable[..., MailServer],
    mail_settings: Settings,
) -> None:
    """A wrong password is reported in plain words and retried; the right one delivers."""

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = data.login == b"office" and data.password == b"right-password"
        return AuthResult(success=ok, handled=False)

    server = start_mail_server(authenticator=check, auth_require_tls=False)
    head = make_user(Role.HEADTEACHER)
    _loss_notice(session, head.school_id)
    wrong = replace(mail_settings, smtp_user="office", smtp_password="wrong")
    right = replace(wrong, smtp_password="right-password")

    now = utcnow()
    assert send_due_email(session, wrong, now) == SendReport(retrying=1)
    [message] = _emails(session)
    assert "user name or password" in (message.last_error or "")
    assert server.messages == []
    assert send_due_email(session, right, message.next_attempt_at) == SendReport(sent=1)
    assert len(server.messages) == 1
