"""The worker's e-mail sender: every few seconds, so a loss report reaches the head at once."""

from __future__ import annotations

from datetime import timedelta

from server.jobs import JobContext, job
from server.notifications.services import SendReport, send_due_email


@job("notifications.send_email", every=timedelta(seconds=5))
def send_email(ctx: JobContext) -> SendReport:
    """P-LOSS-1: hand queued e-mails to the mail server, retrying failures with backoff."""
    return send_due_email(ctx.session, ctx.settings, ctx.now)
