"""Scheduled work for the command outbox."""

from __future__ import annotations

from datetime import timedelta

from server.commands.services import expire, resend_unfinished
from server.jobs import JobContext, job


@job("commands.expire", every=timedelta(minutes=1))
def expire_commands(ctx: JobContext) -> None:
    """Commands nobody collected in time become expired, and the device's timeline says so."""
    expire(ctx.session, now=ctx.now)


@job("commands.resend_unfinished", every=timedelta(minutes=1))
def resend_commands(ctx: JobContext) -> None:
    """An ack lost in transit must not leave a command hanging: ask the online device again."""
    resend_unfinished(ctx.session, now=ctx.now)
