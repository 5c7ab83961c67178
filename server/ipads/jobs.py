"""Scheduled work for iPads: waking those with commands waiting, through Apple's push service."""

from __future__ import annotations

from datetime import timedelta

from server.crypto import SecretBox
from server.ipads import services
from server.jobs import JobContext, job


@job("ipads.wake", every=timedelta(seconds=5))
def wake_ipads(ctx: JobContext) -> None:
    """iPads with newly queued commands are pushed, so they check in now rather than later."""
    services.wake_waiting(ctx.session, SecretBox(ctx.settings.data_keys), ctx.settings, now=ctx.now)
