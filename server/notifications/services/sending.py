"""Sending: the worker hands queued e-mails to the mail server, records every attempt and
retries with backoff (P-LOSS-1)."""

from __future__ import annotations

import base64
import logging
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, parseaddr

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from server.config import Settings
from server.notifications.models import EmailAttempt, EmailMessage, EmailStatus
from server.notifications.services.queueing import _one_line

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
NO_SMTP = (
    "E-mail is not set up yet, so this is waiting to send. Ask your technician to set "
    "TROLLEY_SMTP_HOST (and the other TROLLEY_SMTP_ settings); it will go out then."
)

SmtpFactory = Callable[..., smtplib.SMTP]


@dataclass(frozen=True)
class SendReport:
    """What one run of the sender did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    waiting_for_setup: int = 0


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
    parts = []
    for item in message.attachments:
        main, _, rest = item["content_type"].partition("/")
        sub, *raw_params = rest.split(";")
        params = dict(
            (key.strip().lower(), value.strip().strip('"'))
            for key, _, value in (p.partition("=") for p in raw_params)
            if key.strip()
        )
        parts.append((item, main.strip(), sub.strip(), params))
    for item, main, sub, params in parts:
        if (main, sub) == ("text", "calendar") and "method" in params:
            # iMIP (RFC 6047): an invitation as an alternative body is what makes Outlook and
            # Gmail show Accept/Decline; the attached copy stays for other calendars.
            mime.add_alternative(
                base64.b64decode(item["content_b64"]).decode(errors="replace"),
                subtype="calendar",
                params={"method": params["method"]},
            )
    for item, main, sub, params in parts:
        mime.add_attachment(
            base64.b64decode(item["content_b64"]),
            maintype=main,
            subtype=sub,
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
