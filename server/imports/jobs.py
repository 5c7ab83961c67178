"""Uploaded spreadsheets are deleted once their few hours are up."""

from __future__ import annotations

from datetime import timedelta

from server.imports.services import purge_expired_uploads
from server.jobs import JobContext, job


@job("imports.purge_uploads", every=timedelta(hours=1))
def purge_uploads(ctx: JobContext) -> int:
    """Delete uploads nobody imported within their time."""
    return purge_expired_uploads(ctx.session, ctx.now)
