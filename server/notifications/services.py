"""Notifications in the app and by e-mail: queue them with the change, send them from the worker.

Other domains call `notify` / `notify_roles` inside their own transaction, so a notice and its
e-mail exist exactly when the change they describe does. The worker's `send_due_email` hands
queued e-mails to the mail server, records every attempt and retries with backoff (P-LOSS-1).
"""

from __future__ import annotations

import base64
import logging
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, parseaddr
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from server.activity.services import record
from server.auth.models import Role, User
from server.config import Settings
from server.db import utcnow
from server.errors import Conflict, NotFound, ValidationFailed
from server.notifications.models import EmailAttempt, EmailMessage, EmailStatus, Notification

log = logging.getLogger(__name__)

# After the n-th failed try, wait BACKOFF[n-1] (then hourly); give up after MAX_ATTEMPTS tries.
BACKOFF = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
)
LATER_BACKOFF = timedelta(hours=1)
MAX_ATTEMPTS = 10
# A claimed e-mail is hidden from other workers this long; a worker that dies mid-send
# therefore delays the e-mail, never loses it.
CLAIM_LEASE = timedelta(minutes=10)
SMTP_TIMEOUT = 30.0
BATCH_SIZE = 50
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
NO_SMTP = (
    "E-mail is not set up yet, so this is waiting to send. Ask your technician to set "
    "TROLLEY_SMTP_HOST (and the other TROLLEY_SMTP_ settings); it will go out then."
)

_CONTENT_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$")
_FILENAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,119}$")

SmtpFactory = Callable[..., smtplib.SMTP]


@dataclass(frozen=True)
class Attachment:
    """A file to send with each e-mail of a notification (e.g. an .ics meeting invitation)."""

    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class SendReport:
    """What one run of the sender did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    waiting_for_setup: int = 0


# --- queueing (joins the caller's transaction) -------------------------------------------------


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
    attachments: Sequence[Attachment] = (),
) -> list[Notification]:
    """Tell active users in the app and, if `email`, by e-mail (joins the caller's transaction)."""
    title = _one_line(title)
    kind = kind.strip()
    if not title or len(title) > 200:
        raise ValidationFailed("A notification needs a title of 1 to 200 characters.")
    if not kind or len(kind) > 64:
        raise ValidationFailed("A notification needs a kind of 1 to 64 characters.")
    link = _check_link(link)
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
    if email:
        session.add_all(
            EmailMessage(
                school_id=school_id,
                to_address=people[notice.user_id].email,
                subject=title,
                body_text=body,
                link=link,
                attachments=list(stored),
                notification_id=notice.id,
            )
            for notice in notices
            if people[notice.user_id].email
        )
        session.flush()
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
    subject: str,
    body: str,
    link: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    """E-mail someone without a Trolley account (e.g. the data protection officer); joins the
    caller's transaction, and the worker sends and retries it like any other."""
    subject = _one_line(subject)
    if not subject or len(subject) > 200:
        raise ValidationFailed("An e-mail needs a subject of 1 to 200 characters.")
    address = address.strip()
    if "@" not in address or len(address) > 254 or any(c in address for c in "\r\n,;"):
        raise ValidationFailed("That is not an e-mail address.")
    message = EmailMessage(
        school_id=school_id,
        to_address=address,
        subject=subject,
        body_text=body,
        link=_check_link(link),
        attachments=list(_stored_attachments(attachments)),
    )
    session.add(message)
    session.flush()
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
        attachments=attachments,
    )


# --- reading and marking read ------------------------------------------------------------------


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


# --- the outbox as the school's office sees it ------------------------------------------------


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


# --- sending (the worker) ----------------------------------------------------------------------


def backoff_after(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed try."""
    return BACKOFF[attempts - 1] if 0 < attempts <= len(BACKOFF) else LATER_BACKOFF


@dataclass(frozen=True)
class _Outgoing:
    """A claimed e-mail, ready for the wire, so sending touches no database row."""

    email_id: int
    mime: MimeMessage | None
    problem: ValueError | None = None


def _claim(session: Session, settings: Settings, now: datetime, limit: int) -> list[_Outgoing]:
    """Take due e-mails for this worker: others skip rows we lock and, once we commit, the lease."""
    claimed = session.scalars(
        select(EmailMessage)
        .where(EmailMessage.status == EmailStatus.QUEUED, EmailMessage.next_attempt_at <= now)
        .order_by(EmailMessage.next_attempt_at, EmailMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    outgoing = []
    for message in claimed:
        message.attempts += 1
        message.next_attempt_at = now + CLAIM_LEASE
        try:
            outgoing.append(_Outgoing(message.id, build_mime(message, settings)))
        except ValueError as exc:  # a damaged row must not hold up the rest of the queue
            outgoing.append(_Outgoing(message.id, None, exc))
    # Commit before talking to the mail server: no lock is held while we wait for it.
    session.commit()
    return outgoing


def _mark_waiting_for_setup(session: Session, now: datetime) -> int:
    """No mail server configured: keep everything queued, say why, and lose nothing."""
    due = (EmailMessage.status == EmailStatus.QUEUED, EmailMessage.next_attempt_at <= now)
    result = session.execute(
        update(EmailMessage)
        .where(*due, or_(EmailMessage.last_error.is_(None), EmailMessage.last_error != NO_SMTP))
        .values(last_error=NO_SMTP)
        .execution_options(synchronize_session=False)
    )
    waiting = session.scalar(select(func.count()).select_from(EmailMessage).where(*due)) or 0
    session.commit()
    if result.rowcount:  # type: ignore[attr-defined]
        log.warning("%d e-mails are waiting: no mail server is configured", waiting)
    return waiting


def build_mime(message: EmailMessage, settings: Settings) -> MimeMessage:
    """The e-mail as it goes on the wire; the link becomes a full address on this server."""
    mime = MimeMessage()
    mime["From"] = settings.smtp_from
    mime["To"] = message.to_address
    mime["Subject"] = _one_line(message.subject)
    mime["Date"] = format_datetime(message.created_at)
    domain = parseaddr(settings.smtp_from)[1].rpartition("@")[2] or "localhost"
    # Stable per message: a repeat after a crash mid-send is recognisable as the same e-mail.
    mime["Message-ID"] = f"<trolley.{message.id}.{int(message.created_at.timestamp())}@{domain}>"
    text = message.body_text.rstrip()
    if message.link:
        text += f"\n\nOpen it in Trolley: {settings.base_url.rstrip('/')}{message.link}"
    text += "\n\nThis message was sent by Trolley, your school's device register.\n"
    mime.set_content(text)
    for item in message.attachments:
        main, _, rest = item["content_type"].partition("/")
        sub, *raw_params = rest.split(";")
        params = dict(
            (key.strip().lower(), value.strip().strip('"'))
            for key, _, value in (p.partition("=") for p in raw_params)
            if key.strip()
        )
        mime.add_attachment(
            base64.b64decode(item["content_b64"]),
            maintype=main.strip(),
            subtype=sub.strip(),
            filename=item["filename"],
            params=params,
        )
    return mime


def _describe(exc: BaseException, settings: Settings) -> str:
    """Say what went wrong in words the office can act on (and the server's own reply)."""
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    text: str
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = "; ".join(
            f"{code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
            for code, reply in exc.recipients.values()
        )
        text = f"The mail server refused the address ({codes})."
    elif isinstance(exc, smtplib.SMTPAuthenticationError):
        text = (
            "The mail server did not accept Trolley's user name or password "
            "(TROLLEY_SMTP_USER / TROLLEY_SMTP_PASSWORD)."
        )
    elif isinstance(exc, smtplib.SMTPNotSupportedError):
        text = (
            "The mail server does not offer STARTTLS or log-in as configured "
            "(check TROLLEY_SMTP_STARTTLS and TROLLEY_SMTP_USER)."
        )
    elif isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        said = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        text = f"The mail server said: {exc.smtp_code} {said}"
    elif isinstance(exc, smtplib.SMTPServerDisconnected):
        text = f"The mail server at {where} closed the connection."
    elif isinstance(exc, ConnectionRefusedError):
        text = f"Could not connect to the mail server at {where}: nothing is answering there."
    elif isinstance(exc, (TimeoutError, socket.timeout)):
        text = f"The mail server at {where} did not answer in time."
    elif isinstance(exc, ssl.SSLError):
        text = f"A secure connection to the mail server at {where} could not be made."
    elif isinstance(exc, socket.gaierror):
        text = f"Could not find the mail server {settings.smtp_host!r}: check TROLLEY_SMTP_HOST."
    elif isinstance(exc, OSError):
        text = f"Could not reach the mail server at {where}."
    elif isinstance(exc, ValueError):
        text = "This e-mail could not be put together: its address or an attachment is damaged."
    else:
        text = f"Sending failed unexpectedly ({type(exc).__name__})."
    return text[:500]


def _permanent(exc: BaseException) -> bool:
    """The server refused this one e-mail for good (a 5xx reply): more tries would not help."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _reply in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPDataError):
        return exc.smtp_code >= 500
    # A message we could not even put together will not improve by waiting.
    return isinstance(exc, ValueError)


def _record_result(
    session: Session,
    email_id: int,
    now: datetime,
    error: BaseException | None,
    settings: Settings,
) -> EmailStatus:
    """Write one attempt and what happens next; commits so a crash later cannot undo it."""
    message = session.get(EmailMessage, email_id, populate_existing=True)
    assert message is not None  # claimed rows are never deleted by anyone else
    if error is None:
        message.status = EmailStatus.SENT
        message.sent_at = now
        message.last_error = None
        session.add(EmailAttempt(email_id=email_id, at=now, ok=True))
    else:
        reason = _describe(error, settings)
        message.last_error = reason
        session.add(EmailAttempt(email_id=email_id, at=now, ok=False, error=reason))
        if _permanent(error) or message.attempts >= MAX_ATTEMPTS:
            message.status = EmailStatus.FAILED
            log.error(
                "e-mail %s to %s given up after %d attempts: %s",
                email_id,
                message.to_address,
                message.attempts,
                reason,
            )
        else:
            message.next_attempt_at = now + backoff_after(message.attempts)
            log.warning(
                "e-mail %s to %s failed (attempt %d), trying again at %s: %s",
                email_id,
                message.to_address,
                message.attempts,
                message.next_attempt_at.isoformat(),
                reason,
            )
    status = message.status
    session.commit()
    return status


def _release(session: Session, email_ids: Sequence[int], now: datetime) -> None:
    """Give claimed but untried e-mails back to the queue, as if never claimed."""
    if not email_ids:
        return
    session.execute(
        update(EmailMessage)
        .where(EmailMessage.id.in_(list(email_ids)), EmailMessage.status == EmailStatus.QUEUED)
        .values(attempts=EmailMessage.attempts - 1, next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def _open_smtp(settings: Settings, smtp_factory: SmtpFactory) -> smtplib.SMTP:
    smtp = smtp_factory(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT)
    try:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def _connection_lost(exc: BaseException) -> bool:
    # SMTPException is an OSError too, but only socket-level errors end the connection.
    return isinstance(exc, smtplib.SMTPServerDisconnected) or (
        isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException)
    )


def send_due_email(
    session: Session,
    settings: Settings,
    now: datetime,
    *,
    smtp_factory: SmtpFactory = smtplib.SMTP,
    limit: int = BATCH_SIZE,
) -> SendReport:
    """Send queued e-mails due at `now`, record every attempt, reschedule failures; commits."""
    if not settings.smtp_host:
        return SendReport(waiting_for_setup=_mark_waiting_for_setup(session, now))
    claimed = _claim(session, settings, now, limit)
    if not claimed:
        return SendReport()
    counts = dict.fromkeys(EmailStatus, 0)
    # Stop well inside the lease so no other worker can claim an e-mail we are still sending.
    deadline = time.monotonic() + CLAIM_LEASE.total_seconds() / 2
    try:
        smtp = _open_smtp(settings, smtp_factory)
    except OSError as exc:  # includes every SMTPException
        # One connection per batch: if it cannot be made, every e-mail in it waits and retries.
        for item in claimed:
            counts[_record_result(session, item.email_id, now, exc, settings)] += 1
        return _report(counts)
    try:
        for index, item in enumerate(claimed):
            if time.monotonic() > deadline:
                _release(session, [later.email_id for later in claimed[index:]], now)
                break
            error: BaseException | None = item.problem
            if item.mime is not None:
                try:
                    smtp.send_message(item.mime)
                except OSError as exc:
                    error = exc
            counts[_record_result(session, item.email_id, now, error, settings)] += 1
            if error is not None and _connection_lost(error):
                # The rest of the batch goes back to the queue for the next run.
                _release(session, [later.email_id for later in claimed[index + 1 :]], now)
                break
    finally:
        try:
            smtp.quit()
        except OSError:
            smtp.close()
    return _report(counts)


def _report(counts: dict[EmailStatus, int]) -> SendReport:
    return SendReport(
        sent=counts[EmailStatus.SENT],
        retrying=counts[EmailStatus.QUEUED],
        failed=counts[EmailStatus.FAILED],
    )
