"""The 72-hour clock's reminders, and possible losses settling once a device is in hand."""

from __future__ import annotations

from datetime import timedelta

from server.jobs import JobContext, job
from server.losses.services import escalate, settle_possible_losses


@job("losses.escalate", every=timedelta(minutes=1))
def escalate_losses(ctx: JobContext) -> int:
    """P-LOSS-2: remind the headteacher (and from 48 hours the DPO) as the clock runs down."""
    return escalate(ctx.session, ctx.now)


@job("losses.possible", every=timedelta(minutes=5))
def settle_offers(ctx: JobContext) -> int:
    """P-LOSS-1: an offered device since reported, scanned or returned is off the head's list."""
    return settle_possible_losses(ctx.session, ctx.now)
