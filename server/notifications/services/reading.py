"""Reading notifications, marking them read, and the e-mail outbox as the office sees it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from server.activity.services import record
from server.auth.models import User
from server.db import utcnow
from server.errors import Conflict, NotFound
from server.notifications.models import EmailMessage, EmailStatus, Notification


def _mine(user: User) -> Any:
    return (Notification.user_id == user.id) & (Notification.school_id == user.school_id)


def unread_count(session: Session, user: User) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(_mine(user), Notification.read_at.is_(None))
        )
        or 0
    )


def list_for_user(
    session: Session, user: User, *, limit: int, before_id: int | None = None
) -> Sequence[Notification]:
    """The user's notifications, newest first; page back with `before_id`."""
    query = select(Notification).where(_mine(user))
    if before_id is not None:
        query = query.where(Notification.id < before_id)
    return session.scalars(query.order_by(Notification.id.desc()).limit(limit)).all()


def latest_unread(session: Session, user: User, *, limit: int = 3) -> Sequence[Notification]:
    """The user's newest unread notifications (for the home page)."""
    return session.scalars(
        select(Notification)
        .where(_mine(user), Notification.read_at.is_(None))
        .order_by(Notification.id.desc())
        .limit(limit)
    ).all()


def mark_read(session: Session, user: User, notification_id: int) -> Notification:
    notice = session.scalar(
        select(Notification).where(_mine(user), Notification.id == notification_id)
    )
    if notice is None:
        raise NotFound("We could not find that notification.")
    if notice.read_at is None:
        notice.read_at = utcnow()
    session.commit()
    return notice


def mark_all_read(session: Session, user: User) -> int:
    """Mark every unread notification of the user read; returns how many changed."""
    result = session.execute(
        update(Notification)
        .where(_mine(user), Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def email_counts(session: Session, school_id: int) -> dict[EmailStatus, int]:
    rows = session.execute(
        select(EmailMessage.status, func.count())
        .where(EmailMessage.school_id == school_id)
        .group_by(EmailMessage.status)
    ).all()
    counts = dict.fromkeys(EmailStatus, 0)
    counts.update({status: n for status, n in rows})
    return counts


def email_outbox(
    session: Session,
    school_id: int,
    *,
    statuses: Iterable[EmailStatus] = (EmailStatus.QUEUED, EmailStatus.FAILED),
    limit: int = 200,
) -> Sequence[EmailMessage]:
    """The school's e-mails in those states with their attempts, newest first."""
    return session.scalars(
        select(EmailMessage)
        .where(EmailMessage.school_id == school_id, EmailMessage.status.in_(list(statuses)))
        .options(selectinload(EmailMessage.attempt_log))
        .order_by(EmailMessage.id.desc())
        .limit(limit)
    ).all()


def retry_email(session: Session, actor: User, email_id: int) -> EmailMessage:
    """Put an e-mail that could not be sent back in the queue for a fresh set of tries."""
    message = session.scalar(
        select(EmailMessage).where(
            EmailMessage.id == email_id, EmailMessage.school_id == actor.school_id
        )
    )
    if message is None:
        raise NotFound("We could not find that e-mail.")
    if message.status != EmailStatus.FAILED:
        # Only failed e-mails: one waiting in the queue may be on its way to the mail server.
        raise Conflict(
            "Only an e-mail that could not be sent can be tried again; "
            f"this one is {message.status.label.lower()}."
        )
    # Earlier attempts stay in the attempt log; the counter restarts the backoff.
    message.status = EmailStatus.QUEUED
    message.attempts = 0
    message.next_attempt_at = utcnow()
    message.last_error = None
    record(
        session,
        actor=actor,
        action="email.retry",
        school_id=actor.school_id,
        target_type="email",
        target_id=message.id,
        details={"to": message.to_address, "subject": message.subject},
    )
    session.commit()
    return message
