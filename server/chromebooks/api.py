"""JSON API for Chromebooks through Google."""

from __future__ import annotations

from flask import current_app

from server.auth.permissions import Permission
from server.chromebooks import services
from server.chromebooks.schemas import GoogleFactsOut, LinkOut, SyncOut
from server.devices.services import get_device
from server.extensions import db_session
from server.openapi import current_api_user, endpoint


@endpoint(
    "/chromebooks",
    "GET",
    permission=Permission.GOOGLE_MANAGE,
    summary="The school's Google link and what its last sync found",
    tag="chromebooks",
    response=LinkOut,
)
def google_link() -> LinkOut:
    seen = services.overview(db_session(), current_api_user().school_id)
    link = seen.link
    if link is None:
        return LinkOut(linked=False)
    return LinkOut(
        linked=True,
        client_email=link.client_email,
        admin_email=link.admin_email,
        customer_id=link.customer_id,
        working=link.working,
        tested_at=link.tested_at,
        problems=list(link.test_problems),
        synced_at=link.synced_at,
        sync_problem=link.sync_problem,
        matched=seen.linked,
        not_in_register=len(seen.unknown),
        missing_from_google=[d.asset_tag for d in seen.missing],
    )


@endpoint(
    "/chromebooks/sync",
    "POST",
    permission=Permission.GOOGLE_MANAGE,
    summary="Read every ChromeOS device from Google now and match them to the register",
    tag="chromebooks",
    response=SyncOut,
)
def sync_chromebooks() -> SyncOut:
    user = current_api_user()
    result = services.sync_devices(
        db_session(),
        current_app.extensions["trolley.box"],
        services.GoogleApi(root=current_app.extensions["trolley.settings"].google_api_root),
        user.school_id,
        actor=user,
    )
    return SyncOut(
        seen=result.seen,
        matched=result.matched,
        not_in_register=result.unknown,
        missing_from_google=result.missing,
        message=result.words,
    )


@endpoint(
    "/devices/<asset_tag>/google",
    "GET",
    permission=Permission.DEVICES_READ,
    summary="What Google last reported about a Chromebook",
    tag="chromebooks",
    response=GoogleFactsOut,
)
def google_facts(asset_tag: str) -> GoogleFactsOut:
    session = db_session()
    device = get_device(session, current_api_user().school_id, asset_tag)
    row = services.google_facts(session, device)
    if row is None:
        return GoogleFactsOut(asset_tag=device.asset_tag, in_google=False)
    return GoogleFactsOut(
        asset_tag=device.asset_tag,
        in_google=True,
        status=row.status,
        os_version=row.os_version or None,
        model=row.model or None,
        org_unit=row.org_unit_path or None,
        last_sync=row.last_sync,
        auto_update_expires=row.auto_update_expires,
        off_site=row.off_site,
        recent_users=row.recent_users,
        read_at=row.seen_at,
    )
