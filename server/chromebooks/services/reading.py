"""What the Chromebooks page and a Chromebook's device page show, and adding one to the register."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from server.auth.models import User
from server.chromebooks.models import GoogleDevice, GoogleLink
from server.chromebooks.services.link import get_link
from server.chromebooks.services.sync import missing_from_google
from server.devices.models import Device, Platform
from server.devices.services import DeviceFields, create_device
from server.errors import NotFound

# P-REG-8: a Chromebook within this long of its auto-update expiry is listed as due to replace.
EXPIRY_WARNING = timedelta(days=365)
# P-REG-3: a Chromebook Google has not heard from for this long may have lost its management.
STALE_SYNC = timedelta(days=30)


@dataclass(frozen=True)
class AuditFlags:
    """What the termly audit checks against Google: register Chromebooks it does not list, and
    those it last heard from long ago (only once the school has synced with Google)."""

    synced_at: datetime | None
    missing: Sequence[Device]
    stale: Sequence[GoogleDevice]


def audit_flags(session: Session, school_id: int, now: datetime) -> AuditFlags:
    """P-REG-3, P-AUDIT-1: the audit's cross-checks against Google's directory."""
    link = get_link(session, school_id)
    if link is None or link.synced_at is None:
        return AuditFlags(None, [], [])
    stale = session.scalars(
        select(GoogleDevice)
        .where(
            GoogleDevice.school_id == school_id,
            GoogleDevice.device_id.is_not(None),
            (GoogleDevice.last_sync.is_(None)) | (GoogleDevice.last_sync < now - STALE_SYNC),
        )
        .options(joinedload(GoogleDevice.device))
        .order_by(GoogleDevice.last_sync)
    ).all()
    return AuditFlags(link.synced_at, missing_from_google(session, school_id), stale)


@dataclass(frozen=True)
class Overview:
    """The school's Google link and what needs a person's attention."""

    link: GoogleLink | None
    linked: int
    unknown: Sequence[GoogleDevice]
    missing: Sequence[Device]
    off_site: Sequence[GoogleDevice]
    expiring: Sequence[GoogleDevice]


def overview(session: Session, school_id: int, *, today: date | None = None) -> Overview:
    today = today or date.today()
    rows = session.scalars(
        select(GoogleDevice)
        .where(GoogleDevice.school_id == school_id)
        .options(joinedload(GoogleDevice.device))
        .order_by(GoogleDevice.serial)
    ).all()
    known = [r for r in rows if r.device is not None]
    return Overview(
        link=get_link(session, school_id),
        linked=len(known),
        unknown=[r for r in rows if r.device is None],
        missing=missing_from_google(session, school_id) if rows else [],
        off_site=[r for r in known if r.off_site],
        expiring=[
            r
            for r in known
            if r.auto_update_expires is not None and r.auto_update_expires <= today + EXPIRY_WARNING
        ],
    )


def google_facts(session: Session, device: Device) -> GoogleDevice | None:
    """What Google last said about this device, if it is one of the domain's Chromebooks."""
    return session.scalar(select(GoogleDevice).where(GoogleDevice.device_id == device.id))


def add_to_register(session: Session, actor: User, row_id: int, asset_tag: str) -> Device:
    """Put a Chromebook Google knows, and the register does not, into the register."""
    row = session.scalar(
        select(GoogleDevice).where(
            GoogleDevice.id == row_id,
            GoogleDevice.school_id == actor.school_id,
            GoogleDevice.device_id.is_(None),
        )
    )
    if row is None:
        raise NotFound("That Chromebook is not waiting to be added any more. Reload the page.")
    model = row.model or "Chromebook"
    device, _check = create_device(
        session,
        actor,
        DeviceFields(
            asset_tag=asset_tag.strip(),
            serial=row.serial,
            platform=Platform.CHROMEOS,
            make=model.split()[0],
            model=model,
            os_version=row.os_version or None,
        ),
    )
    row.device_id = device.id
    session.commit()
    return device
