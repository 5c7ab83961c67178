"""Notifications in the app and by e-mail: queue them with the change, send them from the worker.

Other domains call `notify` / `notify_roles` inside their own transaction, so a notice and its
e-mail exist exactly when the change they describe does. The in-app notice keeps its full text;
the e-mail says only what kind of event, which device or case, when, and links into Trolley
(P-SEC-5). The worker's `send_due_email` hands queued e-mails to the mail server, records every
attempt and retries with backoff (P-LOSS-1).
"""

from server.notifications.services.notices import (
    EMAIL_KINDS,
    EmailKind,
    EmailNotice,
    email_text,
)
from server.notifications.services.queueing import (
    MAX_ATTACHMENT_BYTES,
    Attachment,
    notify,
    notify_address,
    notify_roles,
)
from server.notifications.services.reading import (
    email_counts,
    email_outbox,
    latest_unread,
    list_for_user,
    mark_all_read,
    mark_read,
    retry_email,
    unread_count,
)
from server.notifications.services.sending import (
    BACKOFF,
    BATCH_SIZE,
    CLAIM_LEASE,
    LATER_BACKOFF,
    MAX_ATTEMPTS,
    NO_SMTP,
    SMTP_TIMEOUT,
    SendReport,
    SmtpFactory,
    backoff_after,
    build_mime,
    send_due_email,
)

__all__ = [
    "BACKOFF",
    "BATCH_SIZE",
    "CLAIM_LEASE",
    "EMAIL_KINDS",
    "LATER_BACKOFF",
    "MAX_ATTACHMENT_BYTES",
    "MAX_ATTEMPTS",
    "NO_SMTP",
    "SMTP_TIMEOUT",
    "Attachment",
    "EmailKind",
    "EmailNotice",
    "SendReport",
    "SmtpFactory",
    "backoff_after",
    "build_mime",
    "email_counts",
    "email_outbox",
    "email_text",
    "latest_unread",
    "list_for_user",
    "mark_all_read",
    "mark_read",
    "notify",
    "notify_address",
    "notify_roles",
    "retry_email",
    "send_due_email",
    "unread_count",
]
