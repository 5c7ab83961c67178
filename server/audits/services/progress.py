"""How far an audit has got: found against expected, per place and overall."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, aliased

from server.audits.models import AuditItem, AuditState, AuditUnknownTag
from server.audits.pages import PlaceProgress, Progress, RecentScan
from server.audits.services.starting import get_audit
from server.auth.models import User
from server.devices.models import Device
from server.schools.models import Location


def _progress_rows(
    session: Session, audit_id: int, location_id: int | str | None = "all"
) -> list[PlaceProgress]:
    query = (
        select(
            AuditItem.expected_location_id,
            Location.name,
            func.count(),
            func.sum(case((AuditItem.state != AuditState.MISSING, 1), else_=0)),
        )
        .outerjoin(Location, Location.id == AuditItem.expected_location_id)
        .where(AuditItem.audit_id == audit_id, AuditItem.expected.is_(True))
        .group_by(AuditItem.expected_location_id, Location.name)
    )
    if location_id is None:
        query = query.where(AuditItem.expected_location_id.is_(None))
    elif isinstance(location_id, int):
        query = query.where(AuditItem.expected_location_id == location_id)
    rows = [
        PlaceProgress(loc, name or "No home set", int(found or 0), int(total))
        for loc, name, total, found in session.execute(query).all()
    ]
    return sorted(rows, key=lambda p: (p.location_id is None, p.name.lower()))


def _totals_found(session: Session, audit_id: int) -> tuple[int, int]:
    found, total = session.execute(
        select(
            func.sum(case((AuditItem.state != AuditState.MISSING, 1), else_=0)), func.count()
        ).where(AuditItem.audit_id == audit_id, AuditItem.expected.is_(True))
    ).one()
    return int(found or 0), int(total or 0)


def progress(session: Session, school_id: int, audit_id: int, *, recent: int = 10) -> Progress:
    """Live progress per place, for the scan page's polling and the audit page."""
    audit = get_audit(session, school_id, audit_id)
    places = _progress_rows(session, audit.id)
    found, total = _totals_found(session, audit.id)
    not_expected = (
        session.scalar(
            select(func.count()).where(
                AuditItem.audit_id == audit.id, AuditItem.expected.is_(False)
            )
        )
        or 0
    )
    unknown = session.scalar(select(func.count()).where(AuditUnknownTag.audit_id == audit.id)) or 0
    scanned_place = aliased(Location)
    rows = session.execute(
        select(
            Device.asset_tag, AuditItem.state, scanned_place.name, User.name, AuditItem.scanned_at
        )
        .join(Device, Device.id == AuditItem.device_id)
        .outerjoin(scanned_place, scanned_place.id == AuditItem.scanned_location_id)
        .outerjoin(User, User.id == AuditItem.scanned_by_id)
        .where(AuditItem.audit_id == audit.id, AuditItem.scanned_at.is_not(None))
        .order_by(AuditItem.scanned_at.desc(), AuditItem.id.desc())
        .limit(recent)
    ).all()
    return Progress(
        audit=audit,
        places=places,
        found=found,
        expected=total,
        not_expected=int(not_expected),
        unknown=int(unknown),
        recent=[
            RecentScan(tag, state, where, by, at)
            for tag, state, where, by, at in rows
            if at is not None
        ],
    )
