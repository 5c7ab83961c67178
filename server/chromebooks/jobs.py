"""Scheduled work for Chromebooks: commands through Google, and the daily device sync."""

from __future__ import annotations

import logging
from datetime import timedelta

from server.chromebooks import services
from server.chromebooks.services.google import GoogleApi
from server.chromebooks.services.link import linked_schools
from server.crypto import SecretBox
from server.jobs import JobContext, job

log = logging.getLogger(__name__)


def _google(ctx: JobContext) -> GoogleApi:
    return GoogleApi(root=ctx.settings.google_api_root)


@job("chromebooks.deliver", every=timedelta(seconds=5))
def deliver_commands(ctx: JobContext) -> None:
    """Queued commands for linked Chromebooks go out through Google; their progress is read."""
    services.deliver(ctx.session, SecretBox(ctx.settings.data_keys), _google(ctx), now=ctx.now)


@job("chromebooks.sync", every=timedelta(hours=1))
def sync_chromebooks(ctx: JobContext) -> None:
    """Each linked school's Chromebooks and Chrome policy read back from Google; one school's
    failure stops no other."""
    box, google = SecretBox(ctx.settings.data_keys), _google(ctx)
    for school_id in linked_schools(ctx.session):
        try:
            services.sync_devices(ctx.session, box, google, school_id, now=ctx.now)
            services.check_policies(ctx.session, box, google, school_id, ctx.now)
        except services.GoogleError as exc:
            log.warning("google sync for school %s failed: %s", school_id, exc.message)


@job("chromebooks.profiles", every=timedelta(seconds=15))
def push_profiles(ctx: JobContext) -> None:
    """A profile assigned to Chromebooks goes to Google soon after it is committed."""
    box, google = SecretBox(ctx.settings.data_keys), _google(ctx)
    for school_id in linked_schools(ctx.session):
        try:
            services.push_changed(ctx.session, box, google, school_id, ctx.now)
        except services.GoogleError as exc:
            ctx.session.rollback()
            log.warning("google profile push for school %s failed: %s", school_id, exc.message)
