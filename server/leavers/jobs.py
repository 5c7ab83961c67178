"""Leaver jobs: note resets the devices acknowledged, and escalate open items on the last day."""

from __future__ import annotations

from datetime import timedelta

from server.jobs import JobContext, job
from server.leavers.services import end_leaver_accounts, escalate, note_acknowledged_resets


@job("leavers.resets", every=timedelta(seconds=30))
def note_resets(ctx: JobContext) -> int:
    """P-LEAVE-1: a factory reset confirmed by the device completes its item on the case."""
    return note_acknowledged_resets(ctx.session, ctx.now)


@job("leavers.escalate", every=timedelta(minutes=15))
def escalate_leavers(ctx: JobContext) -> int:
    """P-LEAVE-1: open items on and after the last day go to the headteacher, once a day."""
    return escalate(ctx.session, ctx.now)


@job("leavers.accounts", every=timedelta(minutes=15))
def end_accounts(ctx: JobContext) -> int:
    """P-LEAVE-1: a leaver signed off before their last day loses their log-in on the day."""
    return end_leaver_accounts(ctx.session, ctx.now)
