"""The worker's loan jobs: remind, escalate at the day's end (P-TROLLEY-1/2), forget (P-SEC-3)."""

from __future__ import annotations

from datetime import timedelta

from server.jobs import JobContext, job
from server.loans.services import Purged, Reconciliation, run_reconciliation, run_retention


@job("loans.reconcile", every=timedelta(minutes=1))
def reconcile(ctx: JobContext) -> Reconciliation:
    """P-TROLLEY-1, P-TROLLEY-2: chase devices that are not back, at `ctx.now`."""
    return run_reconciliation(ctx.session, now=ctx.now)


@job("loans.retention", every=timedelta(hours=24))
def retention(ctx: JobContext) -> dict[int, Purged]:
    """P-SEC-3: loan history older than each school keeps is deleted, once a day."""
    return run_retention(ctx.session, now=ctx.now)
