"""The worker's job for staff devices: chase days of photo use nobody confirmed (P-PHOTO-4)."""

from __future__ import annotations

from datetime import timedelta

from server.jobs import JobContext, job
from server.personal_devices.services import chase_unconfirmed_days


@job("personal_devices.photo_days", every=timedelta(minutes=15))
def chase_photo_days(ctx: JobContext) -> int:
    """P-PHOTO-4: the owner the next school morning, the headteacher the morning after."""
    return chase_unconfirmed_days(ctx.session, ctx.now)
