"""In-app notifications, the e-mail outbox and every delivery attempt."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base, utcnow
from server.schools.models import enum_column


class Notification(Base):
    """One message for one person, shown under the bell until they mark it read."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_id_id", "user_id", "id"),
        Index("ix_notifications_user_id_read_at", "user_id", "read_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    # A same-site path such as /losses/12; e-mails turn it into a full address when sent.
    link: Mapped[str | None] = mapped_column(String(500))
    read_at: Mapped[datetime | None]


class EmailStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return EMAIL_STATUS_LABELS[self]


EMAIL_STATUS_LABELS = {
    EmailStatus.QUEUED: "Waiting to send",
    EmailStatus.SENT: "Sent",
    EmailStatus.FAILED: "Could not send",
}


class EmailMessage(Base):
    """One e-mail in the outbox: queued in the sender's transaction, sent by the worker."""

    __tablename__ = "email_messages"
    __table_args__ = (
        Index("ix_email_messages_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_email_messages_school_id_status", "school_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body_text: Mapped[str] = mapped_column(Text)
    # Kept as a path so the full address uses the base URL in force when the e-mail goes out.
    link: Mapped[str | None] = mapped_column(String(500))
    # [{filename, content_type, content_b64}, ...]
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[EmailStatus] = mapped_column(
        enum_column(EmailStatus), default=EmailStatus.QUEUED
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None]
    notification_id: Mapped[int | None] = mapped_column(
        ForeignKey("notifications.id", ondelete="SET NULL"), index=True
    )

    attempt_log: Mapped[list[EmailAttempt]] = relationship(
        order_by="EmailAttempt.id", back_populates="email", passive_deletes=True
    )


class EmailAttempt(Base):
    """One try at handing an e-mail to the mail server, and how it went."""

    __tablename__ = "email_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_id: Mapped[int] = mapped_column(
        ForeignKey("email_messages.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(String(500))

    email: Mapped[EmailMessage] = relationship(back_populates="attempt_log")
