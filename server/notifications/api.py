"""JSON API for notifications and e-mail delivery."""

from __future__ import annotations

from flask import current_app

from server.auth.permissions import Permission
from server.extensions import db_session
from server.notifications import services
from server.notifications.models import EmailMessage, EmailStatus, Notification
from server.notifications.schemas import (
    EmailAttemptOut,
    EmailCounts,
    EmailList,
    EmailOut,
    EmailQuery,
    MarkedRead,
    NotificationList,
    NotificationOut,
    NotificationQuery,
)
from server.openapi import current_api_user, endpoint


def notification_out(notice: Notification) -> NotificationOut:
    return NotificationOut(
        id=notice.id,
        kind=notice.kind,
        title=notice.title,
        body=notice.body,
        link=notice.link,
        created_at=notice.created_at,
        read_at=notice.read_at,
    )


def email_out(message: EmailMessage) -> EmailOut:
    return EmailOut(
        id=message.id,
        to_address=message.to_address,
        subject=message.subject,
        status=message.status,
        attempts=message.attempts,
        created_at=message.created_at,
        next_attempt_at=message.next_attempt_at if message.status == EmailStatus.QUEUED else None,
        last_error=message.last_error,
        sent_at=message.sent_at,
        attempt_log=[EmailAttemptOut(at=a.at, ok=a.ok, error=a.error) for a in message.attempt_log],
    )


@endpoint(
    "/notifications",
    "GET",
    permission=Permission.ACCOUNT_USE,
    summary="My notifications, newest first, with the unread count",
    tag="notifications",
    query=NotificationQuery,
    response=NotificationList,
)
def list_notifications(query: NotificationQuery) -> NotificationList:
    session, user = db_session(), current_api_user()
    items = services.list_for_user(session, user, limit=query.limit, before_id=query.before_id)
    return NotificationList(
        unread_count=services.unread_count(session, user),
        items=[notification_out(n) for n in items],
    )


@endpoint(
    "/notifications/<int:notification_id>/read",
    "POST",
    permission=Permission.ACCOUNT_USE,
    summary="Mark one of my notifications read",
    tag="notifications",
    response=NotificationOut,
)
def read_notification(notification_id: int) -> NotificationOut:
    return notification_out(services.mark_read(db_session(), current_api_user(), notification_id))


@endpoint(
    "/notifications/read-all",
    "POST",
    permission=Permission.ACCOUNT_USE,
    summary="Mark all my notifications read",
    tag="notifications",
    response=MarkedRead,
)
def read_all_notifications() -> MarkedRead:
    session, user = db_session(), current_api_user()
    marked = services.mark_all_read(session, user)
    return MarkedRead(marked=marked, unread_count=services.unread_count(session, user))


@endpoint(
    "/email",
    "GET",
    permission=Permission.ACTIVITY_READ,
    summary="E-mail delivery: what is waiting, what could not be sent, and every attempt",
    tag="notifications",
    query=EmailQuery,
    response=EmailList,
)
def list_email(query: EmailQuery) -> EmailList:
    session, school_id = db_session(), current_api_user().school_id
    statuses = [query.status] if query.status else [EmailStatus.QUEUED, EmailStatus.FAILED]
    counts = services.email_counts(session, school_id)
    messages = services.email_outbox(session, school_id, statuses=statuses, limit=query.limit)
    return EmailList(
        mail_server_configured=bool(current_app.extensions["trolley.settings"].smtp_host),
        counts=EmailCounts(**{status.value: n for status, n in counts.items()}),
        items=[email_out(m) for m in messages],
    )


@endpoint(
    "/email/<int:email_id>/retry",
    "POST",
    permission=Permission.ACTIVITY_READ,
    summary="Put an e-mail that could not be sent back in the queue",
    tag="notifications",
    response=EmailOut,
)
def retry_email(email_id: int) -> EmailOut:
    return email_out(services.retry_email(db_session(), current_api_user(), email_id))
