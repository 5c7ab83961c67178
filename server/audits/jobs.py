"""Audit reminders: before and on the due date, overdue, and the half-termly photo check."""

from __future__ import annotations

from datetime import timedelta

from server.audits.services import send_reminders
from server.jobs import JobContext, job


@job("audits.reminders", every=timedelta(hours=1))
def audit_reminders(ctx: JobContext) -> int:
    """P-AUDIT-1 / P-PHOTO-2: tell the computing lead (and, once overdue, the headteacher)."""
    return send_reminders(ctx.session, ctx.now)
