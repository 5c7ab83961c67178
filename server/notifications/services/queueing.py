"""Queueing notices: in the app with their full text, by e-mail only as a minimal notice.

Other domains call `notify` / `notify_roles` inside their own transaction, so a notice and its
e-mail exist exactly when the change they describe does.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.auth.models import Role, User
from server.db import utcnow
from server.devices.models import Device
from server.errors import ValidationFailed
from server.notifications.models import EmailMessage, Notification
from server.notifications.services.notices import (
    DEFAULT_LINK,
    EmailNotice,
    asset_tags,
    email_text,
)
from server.schools.models import School

log = logging.getLogger(__name__)

MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
_CONTENT_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$")
_FILENAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,119}$")


@dataclass(frozen=True)
class Attachment:
    """A file to send with each e-mail of a notification (e.g. an .ics meeting invitation)."""

    filename: str
    content_type: str
    content: bytes


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _check_link(link: str | None) -> str | None:
    """Only same-site paths: a notice must never send people to another site."""
    if link is None:
        return None
    parts = urlsplit(link)
    if (
        not link.startswith("/")
        or link.startswith("//")
        or "\\" in link
        or parts.scheme
        or parts.netloc
        or len(link) > 500
        or any(ch.isspace() for ch in link)
    ):
        raise ValidationFailed("A notification link must be a path in Trolley, such as /devices.")
    return link


def _stored_attachments(attachments: Sequence[Attachment]) -> list[dict[str, str]]:
    stored, total = [], 0
    for item in attachments:
        content_type = item.content_type.split(";", 1)[0].strip().lower()
        if (
            not _FILENAME_RE.match(item.filename)
            or not _CONTENT_TYPE_RE.match(content_type)
            or not item.content_type.isprintable()  # no line breaks smuggled into headers
        ):
            raise ValidationFailed(
                f"The attachment {item.filename!r} needs a plain file name and a type "
                "such as text/calendar."
            )
        total += len(item.content)
        stored.append(
            {
                "filename": item.filename,
                "content_type": item.content_type.strip(),
                "content_b64": base64.b64encode(item.content).decode("ascii"),
            }
        )
    if total > MAX_ATTACHMENT_BYTES:
        raise ValidationFailed("Attachments to a notification must total 5 MB or less.")
    return stored


def _notice(
    school_id: int,
    *,
    kind: str,
    link: str | None,
    devices: Iterable[Device],
    case_id: int | None,
    at: datetime | None,
) -> EmailNotice:
    """The e-mail's whole content: a device named only by its own asset tag, in this school."""
    named = list(devices)
    if any(device.school_id != school_id for device in named):
        raise ValidationFailed("A notification can only name devices of the same school.")
    return EmailNotice(
        kind=kind,
        at=at or utcnow(),
        link=link or DEFAULT_LINK,
        asset_tags=asset_tags(named),
        case_id=case_id,
    )


def _email(
    session: Session,
    school_id: int,
    notice: EmailNotice,
    addresses: Iterable[tuple[str, int | None]],
    attachments: list[dict[str, str]],
) -> list[EmailMessage]:
    """Queue one e-mail per (address, notification id), its text built from `notice` alone."""
    school = session.get(School, school_id)
    if school is None:
        raise ValidationFailed("That school does not exist.")
    subject, body = email_text(notice, school)
    messages = [
        EmailMessage(
            school_id=school_id,
            to_address=address,
            subject=subject,
            body_text=body,
            link=notice.link,
            attachments=list(attachments),
            notification_id=notification_id,
        )
        for address, notification_id in addresses
    ]
    session.add_all(messages)
    session.flush()
    return messages


def notify(
    session: Session,
    *,
    school_id: int,
    users: Iterable[User],
    kind: str,
    title: str,
    body: str,
    link: str | None = None,
    email: bool = True,
    devices: Iterable[Device] = (),
    case_id: int | None = None,
    at: datetime | None = None,
    attachments: Sequence[Attachment] = (),
) -> list[Notification]:
    """Tell active users in the app with `title` and `body` and, if `email`, by an e-mail that
    says only the kind, the devices' asset tags, the case number, `at` and the link (P-SEC-5);
    joins the caller's transaction."""
    title = _one_line(title)
    kind = kind.strip()
    if not title or len(title) > 200:
        raise ValidationFailed("A notification needs a title of 1 to 200 characters.")
    if not kind or len(kind) > 64:
        raise ValidationFailed("A notification needs a kind of 1 to 64 characters.")
    link = _check_link(link)
    notice = None
    if email:
        notice = _notice(school_id, kind=kind, link=link, devices=devices, case_id=case_id, at=at)
    stored = _stored_attachments(attachments) if email else []
    people: dict[int, User] = {}
    for user in users:
        if user.school_id != school_id:
            # A caller mixing schools is a bug that would leak one school's news to another.
            raise ValidationFailed("A notification can only go to people in the same school.")
        if user.active:
            people[user.id] = user
    notices = [
        Notification(
            school_id=school_id, user_id=user.id, kind=kind, title=title, body=body, link=link
        )
        for user in people.values()
    ]
    session.add_all(notices)
    session.flush()
    if notice is not None:
        addresses = [(people[n.user_id].email, n.id) for n in notices if people[n.user_id].email]
        _email(session, school_id, notice, addresses, stored)
    log.info(
        "notified %d people in school %s (%s)%s",
        len(notices),
        school_id,
        kind,
        " with e-mail" if email else "",
    )
    return notices


def notify_address(
    session: Session,
    *,
    school_id: int,
    address: str,
    kind: str,
    link: str,
    devices: Iterable[Device] = (),
    case_id: int | None = None,
    at: datetime | None = None,
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    """E-mail someone without a Trolley account (e.g. the data protection officer) the same
    minimal notice staff get; joins the caller's transaction, and the worker sends it."""
    address = address.strip()
    if "@" not in address or len(address) > 254 or any(c in address for c in "\r\n,;"):
        raise ValidationFailed("That is not an e-mail address.")
    notice = _notice(
        school_id,
        kind=kind.strip(),
        link=_check_link(link),
        devices=devices,
        case_id=case_id,
        at=at,
    )
    stored = _stored_attachments(attachments)
    (message,) = _email(session, school_id, notice, [(address, None)], stored)
    return message


def notify_roles(
    session: Session,
    *,
    school_id: int,
    roles: Iterable[Role],
    kind: str,
    title: str,
    body: str,
    link: str | None = None,
    email: bool = True,
    devices: Iterable[Device] = (),
    case_id: int | None = None,
    at: datetime | None = None,
    attachments: Sequence[Attachment] = (),
) -> list[Notification]:
    """Notify everyone active in the school with one of `roles` (joins the caller's transaction)."""
    wanted = set(roles)
    users = (
        session.scalars(
            select(User)
            .where(User.school_id == school_id, User.active.is_(True), User.role.in_(wanted))
            .order_by(User.id)
        ).all()
        if wanted
        else []
    )
    return notify(
        session,
        school_id=school_id,
        users=users,
        kind=kind,
        title=title,
        body=body,
        link=link,
        email=email,
        devices=devices,
        case_id=case_id,
        at=at,
        attachments=attachments,
    )
