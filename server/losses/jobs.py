"""The 72-hour clock's reminders: at 24 hours, at 48 hours and when a case is overdue."""

from __future__ import annotations

from datetime import timedelta

from server.losses.services import escalate
from server.worker import JobContext, job


@job("losses.escalate", every=timedelta(minutes=1))
def escalate_losses(ctx: JobContext) -> int:
    """P-LOSS-2: remind the headteacher (and from 48 hours the DPO) as the clock runs down."""
    return escalate(ctx.session, ctx.now)
