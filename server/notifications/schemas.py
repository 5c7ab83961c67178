"""API shapes for notifications and e-mail delivery."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from server.notifications.models import EmailStatus


class NotificationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200)
    before_id: int | None = Field(default=None, ge=1, description="Older than this id")


class NotificationOut(BaseModel):
    id: int
    kind: str
    title: str
    body: str
    link: str | None
    created_at: datetime
    read_at: datetime | None


class NotificationList(BaseModel):
    unread_count: int
    items: list[NotificationOut]


class MarkedRead(BaseModel):
    marked: int
    unread_count: int


class EmailQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: EmailStatus | None = Field(
        default=None, description="Only this status; by default waiting and failed e-mails"
    )
    limit: int = Field(default=100, ge=1, le=500)


class EmailAttemptOut(BaseModel):
    at: datetime
    ok: bool
    error: str | None


class EmailOut(BaseModel):
    id: int
    to_address: str
    subject: str
    status: EmailStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None
    attempt_log: list[EmailAttemptOut]


class EmailCounts(BaseModel):
    queued: int
    sent: int
    failed: int


class EmailList(BaseModel):
    mail_server_configured: bool
    counts: EmailCounts
    items: list[EmailOut]
