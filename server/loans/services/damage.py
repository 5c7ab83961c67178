"""Damage reports: devices that came back with a problem, put in repair and closed."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from server.activity.services import record
from server.auth.models import User
from server.auth.permissions import Permission, has_permission
from server.db import utcnow
from server.devices.models import DeviceStatus
from server.devices.services import change_status
from server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from server.loans.models import ConditionFlag, DamageReport, DamageStatus
from server.loans.services.common import MAX_ID


def damage_reports(
    session: Session, school_id: int, *, open_only: bool = True
) -> Sequence[DamageReport]:
    query = select(DamageReport).where(DamageReport.school_id == school_id)
    if open_only:
        query = query.where(DamageReport.status != DamageStatus.RESOLVED)
    return session.scalars(
        query.options(joinedload(DamageReport.device), joinedload(DamageReport.reported_by))
        .order_by(DamageReport.reported_at.desc())
        .limit(200)
    ).all()


def _damage(session: Session, school_id: int, report_id: int) -> DamageReport:
    if not 1 <= report_id <= MAX_ID:
        raise NotFound("No such damage report in your school.")
    report = session.scalar(
        select(DamageReport).where(
            DamageReport.id == report_id, DamageReport.school_id == school_id
        )
    )
    if report is None:
        raise NotFound("No such damage report in your school.")
    return report


def put_in_repair(session: Session, actor: User, report_id: int) -> DamageReport:
    """Take a damaged device out of the loanable pool (P-AUDIT-2)."""
    report = _damage(session, actor.school_id, report_id)
    if report.status is not DamageStatus.OPEN:
        raise Conflict(f"This report is already {report.status.label.lower()}.")
    device = report.device
    words = ", ".join(ConditionFlag(f).label.lower() for f in report.flags) or "damage"
    if device.status is not DeviceStatus.IN_REPAIR:
        change_status(
            session, actor, device, DeviceStatus.IN_REPAIR, f"Damage report: {words}", commit=False
        )
    report.status = DamageStatus.IN_REPAIR
    session.commit()
    return report


def resolve_damage(session: Session, actor: User, report_id: int, note: str) -> DamageReport:
    """Close a damage report with what was done (the computing lead, SBM or technician)."""
    report = _damage(session, actor.school_id, report_id)
    if not (
        has_permission(actor.role, Permission.REPORTS_READ)
        or has_permission(actor.role, Permission.DEVICES_WRITE)
    ):
        raise Forbidden("The computing lead, SBM or technician closes damage reports.")
    if report.status is DamageStatus.RESOLVED:
        raise Conflict("This report is already closed.")
    if not note.strip():
        raise ValidationFailed("Say what was done about it.")
    report.status = DamageStatus.RESOLVED
    report.resolved_by_id = actor.id
    report.resolved_at = utcnow()
    report.resolution = note.strip()[:500]
    record(
        session,
        actor=actor,
        action="loans.damage_resolved",
        school_id=actor.school_id,
        target_type="device",
        target_id=report.device.asset_tag,
        details={"report_id": report.id, "note": report.resolution},
    )
    session.commit()
    return report
