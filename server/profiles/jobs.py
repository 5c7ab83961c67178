"""Scheduled jobs: temporary filter exceptions end on time, desired state stays current."""

from __future__ import annotations

import logging
from datetime import timedelta

from server.jobs import JobContext, job
from server.profiles import services

log = logging.getLogger(__name__)


@job("profiles.expire_filter_exceptions", every=timedelta(minutes=1))
def expire_filter_exceptions(ctx: JobContext) -> int:
    """P-PROFILE-3: revert exceptions whose period ended and start those whose period began."""
    changed = services.expire_exceptions(ctx.session, ctx.now)
    if changed:
        log.info("%d filter exceptions started or ended", changed)
    return changed


@job("profiles.reconcile_desired_state", every=timedelta(minutes=10))
def reconcile_desired_state(ctx: JobContext) -> int:
    """Catch devices that were added or moved home since their desired state was worked out."""
    return services.reconcile_all(ctx.session, ctx.now)
